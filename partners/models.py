"""Every network the service knows, and the webhook tokens staff issue for them in the admin.

A Network row exists for each network: the built-in ones (partners.registry) get theirs after every
migrate, marked built-in, their postbacks described by their code; the others are described by their
row, as staff configured them in the admin (read by partners.configured.ConfiguredPartner). Every
network may have NetworkTokens, beside the environment's tokens (settings.WEBHOOK_TOKENS). A token is
stored only as its SHA-256: its clear text is shown once, when it is issued, and never again.

ApiSession keeps a network's API tokens between reconciliation runs (partners.api).
"""

import hashlib
import re
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .api import Tokens
from .base import CURRENCY_CODE, DECIMAL_SEPARATORS, STATUS_WORD_LENGTH, OrderStatus
from .configured import LEDGER_FIELDS, DateFormat, MacroSyntax, NetworkConfig

# 32 random bytes: the strength asked of every webhook token (see orders.checks).
TOKEN_BYTES = 32
SLUG = re.compile(r"\A[a-z0-9_]{1,32}\Z")
# A parameter's name is also the macro's in the URL to paste, so it holds only characters that need no
# escaping in a URL.
PARAMETER_NAME = re.compile(r"\A[A-Za-z0-9_.~-]{1,64}\Z")

def parameter_field(label):
    """The name of the parameter that carries a ledger field in the network's postbacks (see the admin's
    description of them); empty when the network does not send it."""
    return models.CharField(label, max_length=64, blank=True,
                            validators=[RegexValidator(PARAMETER_NAME, _("Letters, digits and _ . ~ - only."))])


def status_words_field(label):
    return models.TextField(
        label, blank=True,
        help_text=_("The network's words for this status, comma-separated; case is ignored."),
    )


def token_digest(token: str) -> bytes:
    """The SHA-256 of a webhook token: what is stored, and what a candidate is compared by."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Network(models.Model):
    slug = models.CharField(
        _("slug"), max_length=32, unique=True, validators=[RegexValidator(SLUG, _("a-z, 0-9 and _ only."))],
        help_text=_("The network's name in the ledger (every order and delivery carries it): lower-case letters, "
                    "digits and _, up to 32. It cannot change once the network has sent a postback."),
    )
    name = models.CharField(_("name"), max_length=100)
    # A network whose parser is code (partners.registry): its row is kept in step with the code after
    # every migrate, and only its tokens are managed here.
    built_in = models.BooleanField(_("built in"), default=False, editable=False)

    uniq_id_parameter = parameter_field(_("unique id"))
    click_id_parameter = parameter_field(_("click id (user)"))
    status_parameter = models.CharField(
        _("status"), max_length=64, blank=True,
        validators=[RegexValidator(PARAMETER_NAME, _("Letters, digits and _ . ~ - only."))],
        help_text=_("The parameter that carries the network's status word. Empty for a network that calls one URL "
                    "per event (such as ActionPay): then each of its tokens says which status its URL means."),
    )
    order_number_parameter = parameter_field(_("order number"))
    revenue_parameter = parameter_field(_("revenue"))
    commission_fee_parameter = parameter_field(_("commission"))
    currency_parameter = parameter_field(_("currency"))
    offer_id_parameter = parameter_field(_("offer id"))
    offer_name_parameter = parameter_field(_("offer name"))
    sub_parameter = parameter_field("sub")
    sub2_parameter = parameter_field("sub2")
    sub3_parameter = parameter_field("sub3")
    sub4_parameter = parameter_field("sub4")
    sub5_parameter = parameter_field("sub5")
    ip_parameter = parameter_field(_("click IP"))
    user_agent_parameter = parameter_field(_("click user agent"))
    click_time_parameter = parameter_field(_("click time"))
    time_of_order_parameter = parameter_field(_("time of order"))

    waiting_words = status_words_field(_("words for waiting (new)"))
    pending_words = status_words_field(_("words for pending (on hold)"))
    completed_words = status_words_field(_("words for completed (confirmed)"))
    rejected_words = status_words_field(_("words for rejected (cancelled)"))

    timezone = models.CharField(_("time zone"), max_length=64, default="Europe/Moscow",
                                help_text=_("The zone of times sent without an offset, such as Europe/Moscow or UTC."))
    date_format = models.CharField(_("date format"), max_length=16, choices=DateFormat.choices,
                                   default=DateFormat.ANY)
    decimal_separator = models.CharField(_("decimal separator"), max_length=1, default=".",
                                         choices=[(separator, separator) for separator in DECIMAL_SEPARATORS])
    default_currency = models.CharField(
        _("default currency"), max_length=3, blank=True,
        help_text=_("The currency of a postback that names none, such as RUB. Empty: the currency parameter is "
                    "required."),
    )
    macro = models.CharField(
        _("macro syntax"), max_length=16, choices=MacroSyntax.choices, default=MacroSyntax.BRACES,
        help_text=_("How the network's dashboard writes a macro: the URL to paste holds parameter=macro for every "
                    "mapped parameter."),
    )

    class Meta:
        verbose_name = _("partner network")
        verbose_name_plural = _("partner networks")
        ordering = ("-built_in", "name")

    def __str__(self):
        return self.name

    def parameters(self) -> dict[str, str]:
        """Ledger field -> the parameter that carries it, for the mapped fields."""
        mapped = {ledger_field.name: getattr(self, f"{ledger_field.name}_parameter") for ledger_field in LEDGER_FIELDS}
        return {name: parameter for name, parameter in mapped.items() if parameter}

    def status_words(self) -> dict[str, str]:
        """The network's status word -> ours."""
        return {word: status for status in OrderStatus for word in split_words(getattr(self, f"{status}_words"))}

    def config(self) -> NetworkConfig:
        return NetworkConfig(
            slug=self.slug, name=self.name, parameters=self.parameters(), status_parameter=self.status_parameter,
            statuses=self.status_words(), timezone=self.timezone, date_format=self.date_format,
            decimal_separator=self.decimal_separator, default_currency=self.default_currency, macro=self.macro,
        )

    def clean(self):
        """What a configured network needs to parse every postback: its required fields mapped, a status
        for every postback, each status word once, a time zone that exists and a currency.
        A built-in network's postbacks are its code's business."""
        if self.built_in:
            return
        errors = {}
        if self.slug and Network.objects.filter(slug=self.slug, built_in=True).exclude(pk=self.pk).exists():
            errors["slug"] = gettext("%(slug)s is a built-in network's.") % {"slug": self.slug}
        missing = [ledger_field for ledger_field in LEDGER_FIELDS
                   if ledger_field.required and not getattr(self, f"{ledger_field.name}_parameter")]
        for ledger_field in missing:
            errors[f"{ledger_field.name}_parameter"] = gettext("Required: map the parameter that carries %(field)s.") \
                % {"field": ledger_field.label}
        if missing:
            errors[NON_FIELD_ERRORS] = gettext("Required fields not mapped: %(fields)s.") % {
                "fields": ", ".join(str(ledger_field.label) for ledger_field in missing)}
        errors.update(self._clean_statuses())
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = gettext("%(zone)s is not a time zone such as Europe/Moscow or UTC.") \
                % {"zone": self.timezone}
        self.default_currency = self.default_currency.strip().upper()
        if self.default_currency and not CURRENCY_CODE.fullmatch(self.default_currency):
            errors["default_currency"] = gettext("A currency code of three letters, such as RUB.")
        elif not self.default_currency and not self.currency_parameter:
            errors["currency_parameter"] = gettext(
                "Map the parameter that carries the currency, or give the network a default currency.")
        if errors:
            raise ValidationError(errors)

    def _clean_statuses(self) -> dict[str, str]:
        errors = {}
        seen = {}
        for status in OrderStatus:
            name = f"{status}_words"
            words = split_words(getattr(self, name))
            long = [word for word in words if len(word) > STATUS_WORD_LENGTH]
            twice = [word for word in words if seen.setdefault(word, status) != status]
            if long:
                errors[name] = gettext("Longer than %(length)s characters: %(words)s.") \
                    % {"length": STATUS_WORD_LENGTH, "words": ", ".join(long)}
            elif twice:
                errors[name] = gettext("Already a word for another status: %(words)s.") % {"words": ", ".join(twice)}
            setattr(self, name, ", ".join(words))
        if self.status_parameter and not seen:
            errors["waiting_words"] = gettext("Give the network's words for our statuses: its status parameter "
                                              "carries them.")
        elif seen and not self.status_parameter:
            errors["status_parameter"] = gettext("Map the parameter that carries the status words.")
        elif not self.status_parameter and self.pk and self.tokens.filter(revoked_at=None, implied_status="").exists():
            errors["status_parameter"] = gettext(
                "Required: map the parameter that carries the status, since a token of this network implies none.")
        return errors


def split_words(text: str) -> list[str]:
    """Status words as staff type them, comma-separated, in any case: lower-case, each once, in order."""
    return list(dict.fromkeys(word.strip().lower() for word in text.split(",") if word.strip()))


class NetworkToken(models.Model):
    """A webhook token issued in the admin: https://<domain>/webhook/<token> calls the network's parser."""

    network = models.ForeignKey(Network, verbose_name=_("partner network"), on_delete=models.CASCADE,
                                related_name="tokens")
    # The SHA-256 of the token, in hex: unique, since a token names exactly one network.
    digest = models.CharField(_("hash"), max_length=64, unique=True, editable=False)
    # The SHA-256 of the token in lower case, so that a URL calling it in the wrong case is recognised as a
    # near miss (partners.tokens.near_miss) rather than a stranger's guess.
    casefolded_digest = models.CharField(_("hash in lower case"), max_length=64, editable=False)
    implied_status = models.CharField(
        _("status implied by the URL"), max_length=16, choices=OrderStatus.choices, blank=True,
        help_text=_("For a network that calls one URL per event (ActionPay: created, accepted, rejected): the "
                    "status that a postback to this token's URL has."),
    )
    label = models.CharField(_("label"), max_length=64, blank=True,
                             help_text=_("What the token is for, such as the event its URL is given for."))
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    # A revoked token is answered 404 like any wrong token; the row stays for the record.
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)
    # To the minute: each process writes the uses it saw at most once a minute (partners.snapshot).
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("webhook token")
        verbose_name_plural = _("webhook tokens")
        ordering = ("created_at", "pk")

    def __str__(self):
        return self.label or gettext("token #%(id)s") % {"id": self.pk}

    def clean(self):
        network = self.network
        if not self.implied_status and not network.built_in and not network.status_parameter:
            raise ValidationError({"implied_status": gettext(
                "Required: %(network)s sends no status word, so each of its URLs must imply a status."
            ) % {"network": network.name}})

    @classmethod
    def issue(cls, network: Network, *, label: str = "", implied_status: str = "") -> tuple["NetworkToken", str]:
        """A new token of `network`, saved, and its clear text, which is not kept anywhere."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = cls.objects.create(network=network, label=label, implied_status=implied_status,
                                 digest=token_digest(token).hex(),
                                 casefolded_digest=token_digest(token.casefold()).hex())
        return row, token

    @property
    def live(self) -> bool:
        return self.revoked_at is None


class ApiSession(models.Model):
    """The tokens of a network's API, one row per partner, kept by partners.api.ApiClient through
    DatabaseTokenStore. EPN.bz gives a new login (its ssid) about once a day per address, so the refresh
    token must outlive the process that received it.

    The tokens are secrets: no admin shows them, no str() or repr() contains them, and the settings
    dump of an error report never sees them (they are not settings). The client credentials are not
    here: they are configuration, in the environment (EPN_API_CLIENT_SECRET, ADMITAD_CLIENT_SECRET).
    """

    partner = models.CharField(_("partner"), max_length=32, unique=True)
    access_token = models.TextField(_("access token"), blank=True)
    access_expires_at = models.DateTimeField(_("access token expires"), null=True, blank=True)
    refresh_token = models.TextField(_("refresh token"), blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("API session")
        verbose_name_plural = _("API sessions")

    def __str__(self):
        return self.partner

    def __repr__(self):
        return f"<ApiSession {self.partner}>"


class DatabaseTokenStore:
    """partners.api.TokenStore on ApiSession. Clients save outside any transaction (orders.reconcile
    fetches between its writes), so each save commits at once: a refresh token the network has just used
    up is never the one kept."""

    def __init__(self, partner: str):
        self.partner = partner

    def load(self) -> Tokens:
        session = ApiSession.objects.filter(partner=self.partner).first()
        if session is None:
            return Tokens()
        return Tokens(session.access_token, session.access_expires_at, session.refresh_token)

    def save(self, tokens: Tokens) -> None:
        ApiSession.objects.update_or_create(partner=self.partner, defaults={
            "access_token": tokens.access_token, "access_expires_at": tokens.access_expires_at,
            "refresh_token": tokens.refresh_token,
        })
