"""The admin's page of every network: a configured network's description (added and changed here, without
a release), a built-in one's as its code has it, and for each the URL to paste into its dashboard, its
tokens (issued here, shown once, revocable), "Try a postback" (what would be stored, storing nothing),
and the replay of its invalid deliveries after its mapping changed.

Only staff with the model permissions see any of it: partners.view_network (and change/add/delete) for
networks, partners.add_networktoken to issue a token and partners.change_networktoken to revoke one. The
`viewer` group has none of them. Every change is in the admin's history (LogEntry), the tokens' too: an
issued or revoked token is logged as a change of its network.
"""

import json
from urllib.parse import unquote, urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone, translation
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from orders.admin import REPLAY_LIMIT, replay_and_report
from orders.ingest import preview, read_postback
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from orders.replay import describe

from . import snapshot
from .base import OrderStatus, ParsedOrder
from .configured import LEDGER_FIELDS
from .models import Network, NetworkToken
from .registry import find_partner
from .tokens import token_in_url, webhook_url

# The fields that say how a configured network's postbacks are read: a change to any of them is a reason
# to replay the network's invalid deliveries.
MAPPING_FIELDS = (
    *(f"{ledger_field.name}_parameter" for ledger_field in LEDGER_FIELDS), "status_parameter",
    *(f"{status}_words" for status in OrderStatus),
    "timezone", "date_format", "decimal_separator", "default_currency",
)
TOKEN_PLACEHOLDER = "<token>"


def configured_fieldsets():
    parameters = [f"{ledger_field.name}_parameter" for ledger_field in LEDGER_FIELDS]
    parameters.insert(2, "status_parameter")  # after the required ones, as in the URL to paste
    return (
        (None, {"fields": ("name", "slug")}),
        (_("Which parameter carries each field"), {
            "fields": parameters,
            "description": _("For each of our fields, the name of the parameter that carries it in the network's "
                             "postback; empty if the network does not send it. Trackers name the parameter after "
                             "the network's macro for the value: for {uniqueid}, write uniqueid. Unique id and click "
                             "id are required, and the status: its parameter, or a status implied by each token's "
                             "URL. Parameters that are not mapped are kept in each order's raw payload."),
        }),
        (_("Status words"), {"fields": [f"{status}_words" for status in OrderStatus]}),
        (_("Formats"), {"fields": ("timezone", "date_format", "decimal_separator", "default_currency", "macro")}),
    )


BUILT_IN_FIELDSETS = (
    (None, {"fields": ("name", "slug")}),
    (_("How its code reads a postback"), {"fields": ("code_statuses", "code_parameters", "code_formats")}),
)


def base_url(request) -> str:
    """This service's address as the admin is reached: where the networks call the webhook."""
    return request.build_absolute_uri("/").rstrip("/")


def has_deliveries(network: Network) -> bool:
    """Whether the ledger already holds anything of the network: its slug is then part of the record."""
    return Order.objects.filter(partner=network.slug).exists() or Delivery.objects.filter(partner=network.slug).exists()


def invalid_deliveries(network: Network):
    return Delivery.objects.filter(partner=network.slug, outcome=Delivery.Outcome.INVALID)


class NetworkTokenForm(forms.ModelForm):
    class Meta:
        model = NetworkToken
        fields = ("label", "implied_status")


class TryPostbackForm(forms.Form):
    postback = forms.CharField(
        label=_("Postback"), widget=forms.Textarea(attrs={"rows": 4, "cols": 100}),
        help_text=_("A whole URL as the network called it, or its query string."),
    )
    implied_status = forms.ChoiceField(
        label=_("status implied by the URL"), required=False,
        choices=[("", _("none: the postback carries its status word")), *OrderStatus.choices],
        help_text=_("For a network that calls one URL per event. A pasted URL with a token of this network "
                    "implies its token's status."),
    )


@admin.register(Network)
class NetworkAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "live_tokens")
    search_fields = ("^name", "^slug")
    change_form_template = "admin/partners/network/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            live_token_count=Count("tokens", filter=Q(tokens__revoked_at=None)))

    def get_fieldsets(self, request, obj=None):
        return BUILT_IN_FIELDSETS if obj is not None and obj.built_in else configured_fieldsets()

    def get_readonly_fields(self, request, obj=None):
        readonly = ["code_statuses", "code_parameters", "code_formats"]
        if obj is not None and (obj.built_in or has_deliveries(obj)):
            readonly.append("slug")  # the ledger's rows carry it
        return readonly

    # A built-in network is described by its code: only its tokens are managed here (on its page, which
    # is read-only), and its row is never deleted.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj is not None and obj.built_in)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.built_in or has_deliveries(obj)):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("kind"))
    def kind(self, network):
        return gettext("built in") if network.built_in else gettext("added in the admin")

    @admin.display(description=_("live tokens"), ordering="live_token_count")
    def live_tokens(self, network):
        return network.live_token_count

    # A built-in network's page shows its code's description (a row whose code is gone shows none).
    @admin.display(description=_("status words"))
    def code_statuses(self, network):
        partner = find_partner(network.slug)
        if partner is None:
            return "-"
        words = {status: [word for word, ours in partner.statuses.items() if ours == status] for status in OrderStatus}
        return format_html_join("", "<div>{}: {}</div>", ((status.label, ", ".join(found) or "-")
                                                         for status, found in words.items()))

    @admin.display(description=_("parameters"))
    def code_parameters(self, network):
        partner = find_partner(network.slug)
        if partner is None:
            return "-"
        return format_html("<code>{}</code><br>{}", ", ".join(partner.parameters),
                           gettext("the status word in %(parameter)s") % {"parameter": partner.status_parameter})

    @admin.display(description=_("formats"))
    def code_formats(self, network):
        partner = find_partner(network.slug)
        if partner is None:
            return "-"
        return gettext("time zone %(zone)s; decimal separator %(separator)s; currency %(currency)s") % {
            "zone": partner.timezone, "separator": partner.decimal_separator,
            "currency": partner.default_currency or gettext("required")}

    # The pages' titles are whole phrases of their own: Django's "Add %s" would put the network in the
    # nominative in Russian ("Добавить партнёрская сеть").
    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": gettext("Partner networks"), **(extra_context or {})})

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, {"title": gettext("Add a partner network"),
                                                    **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        snapshot.refresh()  # the URL to paste as the latest description makes it, whichever worker saved it
        network = self.get_object(request, object_id)
        extra = postback_section(request, network) if network is not None else {}
        if network is not None:
            extra["title"] = gettext("Partner network %(network)s") % {"network": network.name}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        request.network_mapping_changed = change and bool(set(form.changed_data) & set(MAPPING_FIELDS))

    def response_add(self, request, obj, post_url_continue=None):
        """To the new network's page, where its tokens are issued, rather than back to the list."""
        response = super().response_add(request, obj, post_url_continue)
        if "_addanother" in request.POST or "_popup" in request.POST:
            return response
        self.message_user(request, gettext("Now issue a token: its URL is what goes into %(network)s's dashboard.")
                          % {"network": obj.name})
        return HttpResponseRedirect(reverse("admin:partners_network_change", args=[obj.pk]))

    def response_change(self, request, obj):
        if getattr(request, "network_mapping_changed", False) and invalid_deliveries(obj).exists():
            url = reverse("admin:partners_network_replay", args=[obj.pk])
            self.message_user(request, format_html(
                '{} <a href="{}" id="replay-offer">{}</a>',
                gettext("The mapping changed, and %(network)s has invalid deliveries that it may now read.")
                % {"network": obj.name}, url, gettext("Replay them")), messages.WARNING)
        return super().response_change(request, obj)

    # --- Pages of their own: issue and revoke a token, try a postback, replay -----------------------

    def get_urls(self):
        def page(route, view, name):
            return path(route, self.admin_site.admin_view(view), name=f"partners_network_{name}")

        return [
            page("<int:network_id>/tokens/new/", self.issue_token_view, "issue_token"),
            page("<int:network_id>/tokens/<int:token_id>/revoke/", self.revoke_token_view, "revoke_token"),
            page("<int:network_id>/try/", self.try_postback_view, "try_postback"),
            page("<int:network_id>/replay/", self.replay_view, "replay"),
            *super().get_urls(),
        ]

    def page(self, request, network, template, title, **context):
        return TemplateResponse(request, f"admin/partners/network/{template}", {
            **self.admin_site.each_context(request), "opts": self.opts, "original": network, "title": title,
            **context,
        })

    def network_or_denied(self, request, network_id, permission: str) -> Network:
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return get_object_or_404(Network, pk=network_id)

    def issue_token_view(self, request, network_id):
        """A form for the token's label and implied status; once posted, the new token's URL, shown once."""
        network = self.network_or_denied(request, network_id, "partners.add_networktoken")
        title = gettext("Issue a webhook token for %(network)s") % {"network": network.name}
        form = NetworkTokenForm(request.POST or None, instance=NetworkToken(network=network))
        if request.method != "POST" or not form.is_valid():
            return self.page(request, network, "issue_token.html", title, form=form)
        token, clear = NetworkToken.issue(network, label=form.cleaned_data["label"],
                                          implied_status=form.cleaned_data["implied_status"])
        log_token_change(self, request, network, token, "added")
        partner = find_partner(network.slug)
        url = partner.postback_url(webhook_url(base_url(request), clear)) if partner else ""
        # The token's only copy: admin_view's never_cache keeps it out of any browser or proxy cache.
        return self.page(request, network, "token_issued.html", title, token=token, postback_url=url)

    def revoke_token_view(self, request, network_id, token_id):
        network = self.network_or_denied(request, network_id, "partners.change_networktoken")
        token = get_object_or_404(NetworkToken, pk=token_id, network=network, revoked_at=None)
        if request.method != "POST":
            return self.page(request, network, "revoke_token.html",
                             gettext("Revoke token %(token)s") % {"token": token}, token=token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        log_token_change(self, request, network, token, "changed", fields=["revoked"])
        self.message_user(request, gettext("Token %(token)s is revoked: its URL is answered 404 from now on, by "
                                           "every worker within seconds.") % {"token": token}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:partners_network_change", args=[network.pk]))

    @method_decorator(sensitive_post_parameters("postback"))  # a pasted URL holds a token: never in an error report
    def try_postback_view(self, request, network_id):
        """What a postback would become, stored or refused, as the webhook would answer it; stores nothing."""
        network = self.network_or_denied(request, network_id, "partners.view_network")
        snapshot.refresh()  # the network as it is described now, whichever worker saved it
        partner = find_partner(network.slug)
        title = gettext("Try a postback to %(network)s") % {"network": network.name}
        initial = {"postback": urlencode(partner.example) if partner else ""}
        form = TryPostbackForm(request.POST or None, initial=initial)
        if request.method != "POST" or not form.is_valid():
            return self.page(request, network, "try_postback.html", title, form=form)
        text = form.cleaned_data["postback"]
        implied, note = form.cleaned_data["implied_status"], ""
        token = token_in_url(text)
        if token is not None and token.partner != network.slug:
            note = gettext("The URL's token is a token of another network, %(network)s.") % {"network": token.partner}
        elif token is not None and not implied:
            implied = token.implied_status
        raw = RawRequest(partner=network.slug, method="GET", query_string=text.strip().split("?", 1)[-1],
                         implied_status=implied, source=Delivery.Source.MANUAL)
        return self.page(request, network, "try_postback.html", title, form=form, note=note, **tried(raw))

    def replay_view(self, request, network_id):
        """Replay the network's invalid deliveries through the one write path (asked for after its mapping
        changed); a page that says how many there are, then the replay itself, bounded as the delivery list's."""
        network = self.network_or_denied(request, network_id, "partners.change_network")
        snapshot.refresh()  # replayed with the mapping as it is now, whichever worker saved it
        deliveries = invalid_deliveries(network)
        if request.method != "POST":
            count = deliveries.values("pk").order_by()[: REPLAY_LIMIT + 1].count()
            return self.page(request, network, "replay.html", gettext("Replay the invalid deliveries of %(network)s")
                             % {"network": network.name}, count=count, limit=REPLAY_LIMIT)
        replay_and_report(self, request, deliveries)
        return HttpResponseRedirect(reverse("admin:partners_network_change", args=[network.pk]))


def postback_section(request, network: Network) -> dict:
    """The change page's section on postbacks: the URL to paste (with a placeholder for the token), the
    environment's tokens (counted, never shown), the tokens issued here, and what this user may do."""
    partner = find_partner(network.slug)
    user = request.user
    may_revoke = user.has_perm("partners.change_networktoken")
    tokens = [
        {"token": token, "created": minute(token.created_at),
         "last_used": minute(token.last_used_at) if token.last_used_at else "",
         "revoked": minute(token.revoked_at) if token.revoked_at else "",
         "revoke_url": reverse("admin:partners_network_revoke_token", args=[network.pk, token.pk])
         if token.live and may_revoke else ""}
        for token in network.tokens.order_by("revoked_at", "-created_at")
    ]
    may_replay = user.has_perm("partners.change_network")
    return {
        "url_template": partner.postback_url(unquote(webhook_url(base_url(request), TOKEN_PLACEHOLDER)))
        if partner else "",
        "environment_tokens": sum(1 for slug, _token in settings.WEBHOOK_TOKENS if slug == network.slug),
        "tokens": tokens,
        "issue_url": reverse("admin:partners_network_issue_token", args=[network.pk])
        if user.has_perm("partners.add_networktoken") else "",
        "try_url": reverse("admin:partners_network_try_postback", args=[network.pk]),
        "invalid_count": invalid_deliveries(network).values("pk").order_by()[: REPLAY_LIMIT + 1].count()
        if may_replay else 0,
        "replay_url": reverse("admin:partners_network_replay", args=[network.pk]) if may_replay else "",
        "replay_limit": REPLAY_LIMIT,
    }


def log_token_change(model_admin, request, network: Network, token: NetworkToken, action: str, **details) -> None:
    """An issued or revoked token in its network's history, worded like the admin's own changes (in English
    when stored, translated when shown)."""
    with translation.override(None):
        message = {action: {"name": str(NetworkToken._meta.verbose_name), "object": str(token), **details}}
    model_admin.log_change(request, network, [message])


def tried(raw: RawRequest) -> dict:
    """What the webhook would answer `raw` and what would be stored, for the "Try a postback" page."""
    result = preview(raw)
    if result.outcome == Delivery.Outcome.INVALID:
        return {"status_code": 400, "answer": json.dumps({"error": result.error, "field": result.field},
                                                         ensure_ascii=False),
                "outcome": describe(result), "invalid": True}
    params, parsed = read_postback(raw)
    answer = {"status": result.outcome, "order_id": result.order_id}
    return {"status_code": 200, "answer": json.dumps(answer), "outcome": describe(result), "invalid": False,
            "stored": stored_fields(parsed), "raw_payload": json.dumps(params, ensure_ascii=False, indent=2)}


def stored_fields(parsed: ParsedOrder) -> list[tuple[str, str, str]]:
    """(field, label, value as stored) for every field of the order a postback would store."""
    rows = []
    for name in ParsedOrder.__dataclass_fields__:
        value = getattr(parsed, name)
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        rows.append((name, str(Order._meta.get_field(name).verbose_name), "" if value is None else str(value)))
    return rows


def minute(moment) -> str:
    """A time in the admin's zone, to the minute (last use is not known any closer)."""
    return formats.date_format(timezone.localtime(moment), "Y-m-d H:i")
