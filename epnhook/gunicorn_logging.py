"""gunicorn's access log, with the webhook token removed from every field that can carry it."""

from gunicorn.glogging import Logger

from epnhook.logging import redact

# Atoms that contain the request path: %(U)s path, %(r)s request line, %(f)s referer, {raw_uri}.
_PATH_ATOMS = ("U", "r", "f", "{raw_uri}e")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in _PATH_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
