"""gunicorn's access log, with the webhook token removed from every field that can carry it, and
without webhook requests, which the application logs itself."""

from gunicorn.glogging import Logger

from epnhook.logging import WEBHOOK_PATH_PREFIX, redact

# Atoms that contain the request path: %(U)s path, %(r)s request line, %(f)s referer, {raw_uri}.
_PATH_ATOMS = ("U", "r", "f", "{raw_uri}e")


class RedactingLogger(Logger):
    def access(self, resp, req, environ, request_time):
        # Every webhook request already has one line from the application: the postback's outcome
        # (orders.views), or Django's "Not Found"/"Bad Request" warning for a refused one. gunicorn's
        # line would repeat it at about a tenth of a millisecond of CPU per postback (docs/PERFORMANCE.md).
        if environ.get("PATH_INFO", "").startswith(WEBHOOK_PATH_PREFIX):
            return
        super().access(resp, req, environ, request_time)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in _PATH_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
