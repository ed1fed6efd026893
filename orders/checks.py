"""System checks: configuration mistakes that would lose postbacks are reported at start-up.

They read the settings and the code only, never the database (checks run before a database may exist):
so a partner named in the environment must be a built-in one (partners.registry.PARTNERS). A network
configured in the admin gets its tokens there, and is checked there (partners.models.Network.clean).
"""

import math
import re

from django.conf import settings
from django.core.checks import Error, Warning, register

from partners.registry import PARTNERS
from partners.tokens import URL_SAFE_TOKEN

# 32 random bytes: 43 characters of URL-safe base64, 64 of hex.
MIN_TOKEN_BITS = 256
# Alphabets a generated token is written in, smallest first, with the bits each character carries;
# anything else is rated as the URL-safe alphabet (66 characters), the largest a working token can use.
_ALPHABETS = ((re.compile(r"[0-9]+"), math.log2(10)), (re.compile(r"[0-9a-fA-F]+"), 4.0),
              (re.compile(r"[A-Za-z0-9_-]+"), 6.0))
_URL_SAFE_BITS = math.log2(66)


@register()
def check_webhook_tokens(app_configs, **kwargs):
    problems = []
    if not settings.WEBHOOK_TOKENS:
        problems.append(Warning(
            "No webhook token is configured in the environment, so every postback is answered 404 unless its "
            "token was issued in the admin.",
            hint="Set WEBHOOK_SECRET_TOKEN (make run and manage.py setup generate one), or issue a token on a "
                 "network's page in the admin.",
            id="epnhook.W001",
        ))
    seen = set()
    for partner, token in settings.WEBHOOK_TOKENS:
        if partner not in PARTNERS:
            problems.append(Error(
                f"WEBHOOK_TOKENS names an unknown partner {partner!r}.",
                hint=f"Known partners: {', '.join(PARTNERS)}. A network configured in the admin gets its tokens "
                     "there, not in the environment.",
                id="epnhook.E001",
            ))
        if token_strength_bits(token) < MIN_TOKEN_BITS:
            problems.append(Warning(
                f"A webhook token for {partner} is {len(token)} characters long and does not look like "
                f"{MIN_TOKEN_BITS // 8} random bytes; it can be guessed.",
                hint="Use 32 random bytes: python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                id="epnhook.W002",
            ))
        if not URL_SAFE_TOKEN.fullmatch(token):
            problems.append(Error(
                f"A webhook token for {partner} has characters that do not survive in a URL path "
                "(only letters, digits and - . _ ~ do), so every postback with it would be answered 404.",
                hint="Generate it with secrets.token_urlsafe(32).",
                id="epnhook.E003",
            ))
        if token in seen:
            problems.append(Error("The same webhook token is configured twice.", id="epnhook.E002"))
        seen.add(token)
    return problems


def token_strength_bits(token: str) -> float:
    """An upper bound on the randomness in `token`: its length times the bits per character of the
    smallest usual alphabet it fits (decimal, hex, URL-safe base64), and 0 when it repeats so few
    distinct characters that it cannot have come from a random generator ("aaaa...")."""
    if len(set(token)) < 10:
        return 0.0
    per_character = next((bits for alphabet, bits in _ALPHABETS if alphabet.fullmatch(token)), _URL_SAFE_BITS)
    return len(token) * per_character


@register()
def check_per_partner_settings(app_configs, **kwargs):
    """A per-partner setting naming a partner that does not exist is a typo that leaves the real one
    unconfigured (an allowlist not applied, a staleness limit not checked)."""
    per_partner = {
        "STALE_AFTER_HOURS": settings.STALE_AFTER_HOURS_BY_PARTNER,
        "WEBHOOK_ALLOWED_IPS": settings.WEBHOOK_ALLOWED_IPS,
    }
    return [
        Error(
            f"{variable} names an unknown partner {partner!r}.",
            hint=f"Known partners (the built-in ones: these settings do not apply to a network configured in the "
                 f"admin): {', '.join(PARTNERS)}.",
            id="epnhook.E004",
        )
        for variable, values in per_partner.items()
        for partner in values
        if partner not in PARTNERS
    ]


@register()
def check_ingest_deadline(app_configs, **kwargs):
    from orders.ingest import longest_attempt

    if longest_attempt() < settings.INGEST_DEADLINE:
        return []
    return [Warning(
        f"A postback can take longer than INGEST_DEADLINE ({settings.INGEST_DEADLINE:g} s): one database "
        f"attempt may last DATABASE_CONNECT_TIMEOUT + DATABASE_READ_TIMEOUT = {longest_attempt():g} s.",
        hint="Keep DATABASE_CONNECT_TIMEOUT + DATABASE_READ_TIMEOUT below INGEST_DEADLINE (defaults: 1 + 3 < 5); "
             "DATABASE_READ_TIMEOUT=0 is for a one-off migration only.",
        id="epnhook.W010",
    )]
