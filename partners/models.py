"""What the partners app keeps in the database: each network's API session between reconciliation runs."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .api import Tokens


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
