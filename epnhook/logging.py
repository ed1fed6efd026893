"""Logging pieces that keep webhook tokens out of every log line and email."""

import json
import logging
import re

from django.views.debug import SafeExceptionReporterFilter

# The token is the path segment after /webhook/; it must never reach a log line or an email.
WEBHOOK_PATH_PREFIX = "/webhook/"
_WEBHOOK_PATH = re.compile(f"({WEBHOOK_PATH_PREFIX})" + r"[^/?#\s\"']+")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """Return `text` with every webhook token replaced by a placeholder."""
    return _WEBHOOK_PATH.sub(r"\1" + REDACTED, text)


class RedactTokensFilter(logging.Filter):
    """Rewrites a record so that neither its message nor its attached request can leak a token.

    Django's request logger passes the path as an argument and attaches the request, from which
    AdminEmailHandler renders the URL and META; for webhook paths the request is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        request = getattr(record, "request", None)
        if request is not None and WEBHOOK_PATH_PREFIX in getattr(request, "path", ""):
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


class OneLineFormatter(logging.Formatter):
    """The text format: one line per record, whatever the message holds (a traceback still follows
    on its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_CONTROL_ESCAPES)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (LOG_FORMAT=json)."""

    _STANDARD = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in ("request", "message") and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class SafeReporterFilter(SafeExceptionReporterFilter):
    """Django's filter for error reports (the settings dump in every 500 email), also hiding the
    settings that carry credentials inside a URL: EMAIL_URL is smtp://user:password@host."""

    hidden_settings = re.compile(SafeExceptionReporterFilter.hidden_settings.pattern + "|EMAIL_URL|DATABASE_URL",
                                 flags=re.IGNORECASE)
