"""What gunicorn writes, without the webhook token: its access log, which leaves out webhook requests
(the application logs each of them), and the page it answers a request it cannot parse with.

Every line gunicorn logs goes through epnhook.logging's formatters (gunicorn.conf.py's logconfig_dict),
which redact tokens, escape control characters and write the time in UTC, as for the application.
"""

from gunicorn.glogging import Logger
from gunicorn.http.errors import ParseException
from gunicorn.workers.gthread import ThreadWorker

from epnhook.logging import WEBHOOK_PATH_PREFIX, redact


class RedactingLogger(Logger):
    def access(self, resp, req, environ, request_time):
        # Every webhook request already has one line from the application: the postback's outcome
        # (orders.views), or Django's "Not Found"/"Bad Request" warning for a refused one. gunicorn's
        # line would repeat it at about a tenth of a millisecond of CPU per postback (docs/PERFORMANCE.md).
        # A near miss (/Webhook/..., /webhook//...) is not skipped: it is written, redacted, like any path.
        if environ.get("PATH_INFO", "").startswith(WEBHOOK_PATH_PREFIX):
            return
        super().access(resp, req, environ, request_time)


class RedactingThreadWorker(ThreadWorker):
    """gunicorn's threaded worker (gthread), whose 400 page for a request it cannot parse does not echo a
    token back: gunicorn writes the parse error's text, which quotes the request line or a header (raw
    UTF-8 bytes in a webhook URL's query, say), into the page as well as into its log."""

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, ParseException):
            # Each of gunicorn's parse errors keeps the text it quotes in its attributes.
            for name, value in vars(exc).items():
                if isinstance(value, str):
                    setattr(exc, name, redact(value))
        super().handle_error(req, client, addr, exc)
