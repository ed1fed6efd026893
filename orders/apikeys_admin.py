"""The admin of the read API's keys: create one (its key shown once, on the page after saving), revoke.

Keys are managed by superusers, or staff given the API key permissions; the viewer group has none.
A key is never deleted, only revoked, so that the list keeps who had access and until when.
"""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from . import readapi
from .models import ApiKey


class KeyStateFilter(admin.SimpleListFilter):
    """Valid or revoked keys, in words: Django's empty-field filter offered «Пусто» / «Не пусто» under
    «По отозван»."""

    # The same entry as orders.admin's FILTER_TITLES["state"] (importing that module here would be a cycle).
    title = pgettext_lazy("filter title after 'By'", "state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("valid", _("valid")), ("revoked", _("revoked"))]

    def queryset(self, request, queryset):
        if self.value() in ("valid", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "valid")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("consumer", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (KeyStateFilter,)
    search_fields = ("consumer", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke_keys"]

    def get_fields(self, request, obj=None):
        return ("consumer",) if obj is None else ("consumer", *self.readonly_fields)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not change:
            # Kept on the instance for response_add only: this request is the one time it is known.
            obj.plain_key = readapi.assign_new_key(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        """Instead of the usual redirect, a page that shows the new key: the only time it is shown. The
        admin's views are never cached (never_cache), so the page is not kept by the browser either."""
        context = {**self.admin_site.each_context(request), "opts": self.opts, "api_key": obj,
                   "key": obj.plain_key, "title": _("API key created")}
        return TemplateResponse(request, "admin/orders/apikey/created.html", context)

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = readapi.revoke(queryset)
        self.message_user(request, ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count)
                          % {"count": count})
