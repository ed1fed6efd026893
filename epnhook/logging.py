"""Logging pieces shared by the application (settings.LOGGING) and gunicorn (gunicorn.conf.py), so that
one stream of logs has one format: each record one line, its time in UTC with the offset written out,
and no webhook token in it; plus error reports without credentials.
"""

import json
import logging
import re
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.debug import SafeExceptionReporterFilter

WEBHOOK_PATH_PREFIX = "/webhook/"
REDACTED = "<redacted>"
# Whatever follows a webhook path is taken for a token, so that one nobody has configured (a guess, a
# rotated-out token) is hidden too: in any case, after doubled slashes, and also after stray characters
# (a quote, a space or an escape of either: /webhook/%22<token>, /webhook/\"<token> in gunicorn's access
# line) when a long run of URL-safe characters follows them.
_WEBHOOK_PATH = r"(/+webhook/+)(?:[^/?#\s\"'\\]+|(?:[\s\"'\\]|%[0-9a-f]{2})+[\w.~%-]{16,})"


def configured_tokens() -> tuple[str, ...]:
    """The tokens of settings.WEBHOOK_TOKENS; none while the settings are not loaded (gunicorn's master
    process never loads them, and it reads no request)."""
    return _settings_tokens() if settings.configured else ()


@lru_cache(maxsize=1)
def _settings_tokens() -> tuple[str, ...]:
    return tuple(token for _partner, token in settings.WEBHOOK_TOKENS)


@receiver(setting_changed)
def _forget_tokens(setting, **kwargs):
    if setting == "WEBHOOK_TOKENS":
        _settings_tokens.cache_clear()


def configured_api_secrets() -> tuple[str, ...]:
    """The client secrets of the networks' APIs (settings.RECONCILE_APIS, for reconciliation)."""
    if not settings.configured:
        return ()
    return tuple(config["client_secret"] for config in getattr(settings, "RECONCILE_APIS", {}).values())


# Where redact() learns the tokens to find anywhere in a line, not just after /webhook/; each is called for
# every line written, so it must be cheap. The partners app adds the API tokens this process holds
# (partners.api.held_secrets). The tokens issued in the admin are not among them: no process knows them in
# clear once their page is shown (partners.models.NetworkToken keeps a hash), so they are hidden by the
# /webhook/ rule alone, which covers every line the service itself writes them in.
TOKEN_SOURCES = [configured_tokens, configured_api_secrets]


def redact(text: str) -> str:
    """Return `text` with every webhook token replaced by a placeholder: any path segment after /webhook/,
    and each known token wherever it appears, in any case and percent-encoded or not."""
    pattern, lowered_tokens = _redaction(tuple(token for source in TOKEN_SOURCES for token in source()))
    # Most lines hold no webhook path, no token and no "%": three substring searches spare them the
    # pattern, which tries every spelling of every token at each character (about 20 µs a line).
    lowered = text.lower()
    if "webhook/" not in lowered and "%" not in text and not any(token in lowered for token in lowered_tokens):
        return text
    return pattern.sub(_placeholder, text)


def _placeholder(match: re.Match) -> str:
    return (match.group(1) or "") + REDACTED  # a webhook path keeps its prefix


@lru_cache(maxsize=4)
def _redaction(tokens: tuple[str, ...]) -> tuple[re.Pattern, tuple[str, ...]]:
    """One pattern for the webhook path and every token, so that a line is scanned once; and the tokens
    in lower case."""
    spellings = map(_any_spelling, sorted(set(tokens), key=len, reverse=True))
    return re.compile("|".join([_WEBHOOK_PATH, *spellings]), re.IGNORECASE), tuple(map(str.lower, tokens))


def _any_spelling(token: str) -> str:
    """A pattern for `token` with each character as itself or percent-encoded, in either case (the
    pattern is compiled case-insensitive, which covers the hex digits too)."""
    return "".join(
        "(?:" + "|".join([re.escape(character), *{_percent_encoded(variant)
                                                  for variant in (character.lower(), character.upper())}]) + ")"
        for character in token
    )


def _percent_encoded(character: str) -> str:
    return "".join(f"%{byte:02x}" for byte in character.encode())


class RedactTokensFilter(logging.Filter):
    """Rewrites a record so that neither its message nor its attached request can leak a token, for
    the handlers that see it next and for error emails (the formatters below also redact each whole line
    they write, extra fields and tracebacks included).

    Django's request logger passes the path as an argument and attaches the request, from which
    AdminEmailHandler renders the URL and META; for a path that carries a token the request is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        path = getattr(getattr(record, "request", None), "path", "")
        if path and redact(path) != path:
            record.request = None
        if record.exc_info and record.exc_text is None and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class OnlyExceptions(logging.Filter):
    """Passes records that carry a traceback: a 503 we answered on purpose has already sent its own
    (throttled) alert, so Django's "Service Unavailable" log line must not email again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None and record.exc_info[0] is not None


# Control characters written as escapes: a newline in a sender's uniq_id, or a %0A in a request path
# (Django logs 404s with the decoded path), must not start a forged log line.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def utc_time(record: logging.LogRecord) -> str:
    """When the record was made, in UTC with the offset written out: 2026-11-28T09:30:00.123+00:00.

    UTC rather than TIME_ZONE: gunicorn's master process never loads the settings, and log tools
    expect UTC. (Django sets the process's local zone to TIME_ZONE, so time.localtime would differ
    between gunicorn's master and its workers.)
    """
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class OneLineFormatter(logging.Formatter):
    """The text format (LOG_FORMAT=text): one line per record, whatever the message holds (a traceback
    still follows on its own lines), its time in UTC, no token in it."""

    def __init__(self, fmt: str = TEXT_FORMAT, **kwargs):
        super().__init__(fmt, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_CONTROL_ESCAPES)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (LOG_FORMAT=json); its time in UTC, no token in it."""

    _STANDARD = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in ("request", "message") and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        # Redacted as a whole line, so that the extra fields cannot carry a token either.
        return redact(json.dumps(data, ensure_ascii=False, default=str))


class SafeReporterFilter(SafeExceptionReporterFilter):
    """Django's filter for error reports (the settings dump in every 500 email), also hiding the
    settings that carry credentials inside a URL: EMAIL_URL is smtp://user:password@host."""

    hidden_settings = re.compile(SafeExceptionReporterFilter.hidden_settings.pattern + "|EMAIL_URL|DATABASE_URL",
                                 flags=re.IGNORECASE)
