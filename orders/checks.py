"""System checks: configuration mistakes that would lose postbacks are reported at start-up."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from partners.registry import PARTNERS

# 32 random bytes written as URL-safe base64 or hex are at least 43 characters.
MIN_TOKEN_LENGTH = 43


@register()
def check_webhook_tokens(app_configs, **kwargs):
    problems = []
    if not settings.WEBHOOK_TOKENS:
        problems.append(Warning(
            "No webhook token is configured, so every postback is answered 404.",
            hint="Set WEBHOOK_SECRET_TOKEN (make run and manage.py setup generate one).",
            id="epnhook.W001",
        ))
    seen = set()
    for partner, token in settings.WEBHOOK_TOKENS:
        if partner not in PARTNERS:
            problems.append(Error(
                f"WEBHOOK_TOKENS names an unknown partner {partner!r}.",
                hint=f"Known partners: {', '.join(PARTNERS)}.",
                id="epnhook.E001",
            ))
        if len(token) < MIN_TOKEN_LENGTH:
            problems.append(Warning(
                f"A webhook token for {partner} is {len(token)} characters long; it can be guessed.",
                hint="Use 32 random bytes: python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                id="epnhook.W002",
            ))
        if token in seen:
            problems.append(Error("The same webhook token is configured twice.", id="epnhook.E002"))
        seen.add(token)
    return problems


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
