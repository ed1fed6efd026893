"""Emails to the admins, throttled per kind across every process of the service.

The throttle lives in small files under ALERT_STATE_DIR guarded by flock, not in the database:
the database is usually what the alert is about. Sending happens on a background thread so that a
slow or hung mail server never delays the response to a postback. Django's own error emails (the
500s) go through the same throttle: settings.LOGGING names ThrottledAdminEmailHandler, from here.
"""

import atexit
import fcntl
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.mail import mail_admins
from django.utils.log import AdminEmailHandler

from epnhook.logging import redact

log = logging.getLogger("epnhook.alerts")
_pending: list[threading.Thread] = []


def alert(kind: str, subject: str, message: str, *, background: bool = True) -> bool:
    """Mail the admins about `kind` unless one went out in the last ALERT_THROTTLE_SECONDS.

    Returns whether an email was sent (or queued). The next email after a quiet period says how
    many alerts of the kind were suppressed meanwhile.
    """
    suppressed = claim(kind)
    if suppressed is None:
        return False
    if suppressed:
        message += f"\n\n{suppressed} more alert(s) of this kind were suppressed since the previous email."
    subject, message = redact(subject), redact(message)
    if background:
        in_background(f"alert-{kind}", _send, subject, message)
    else:
        _send(subject, message)
    return True


def claim(kind: str) -> int | None:
    """Take the right to send an alert of `kind` now: the number suppressed since the last one, or
    None when the throttle says not yet (and that one more was suppressed)."""
    try:
        with _state(kind) as state:
            now = time.time()
            if now - state.get("last_sent", 0) < settings.ALERT_THROTTLE_SECONDS:
                state["suppressed"] = state.get("suppressed", 0) + 1
                return None
            suppressed = state.get("suppressed", 0)
            state.update(last_sent=now, suppressed=0)
            return suppressed
    except OSError:
        # Fail open: an alert that cannot be throttled is better than one that is never sent.
        log.exception("alert throttle state unavailable; sending %s unthrottled", kind)
        return 0


def in_background(name: str, send, *args, **kwargs) -> None:
    """Run `send` (an email) on a daemon thread, so that the request never waits for the mail server;
    wait_for_pending() joins it."""
    thread = threading.Thread(target=send, args=args, kwargs=kwargs, name=name, daemon=True)
    _pending[:] = [*(pending for pending in _pending if pending.is_alive()), thread]
    thread.start()


class ThrottledAdminEmailHandler(AdminEmailHandler):
    """Django's error emails (settings.LOGGING's mail_admins), throttled like every other alert: a crash
    loop must not mail-bomb."""

    def send_mail(self, subject, message, *args, **kwargs):
        suppressed = claim("unhandled-error")
        if suppressed is None:
            return
        if suppressed:
            message += f"\n\n{suppressed} more error email(s) were suppressed since the previous one."
        # Like every alert, sent off the request thread: a hung mail server must not hold the 500.
        in_background("alert-unhandled-error", super().send_mail, redact(subject), redact(message), *args, **kwargs)


def wait_for_pending(timeout: float = 10.0) -> None:
    """Let queued emails finish (management commands and tests call this before exiting)."""
    deadline = time.monotonic() + timeout
    while _pending:
        _pending.pop().join(max(0.0, deadline - time.monotonic()))


# Daemon threads die when the interpreter exits, and atexit runs before that: a management command
# that queued an alert (a quarantined spool entry, say) still sends it on its way out.
atexit.register(wait_for_pending)


@contextmanager
def _state(kind: str):
    directory = settings.ALERT_STATE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{re.sub(r'[^a-z0-9_-]', '_', kind.lower())}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            state = json.loads(handle.read() or "{}")
        except ValueError:
            state = {}
        yield state
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(state))


def _send(subject: str, message: str) -> None:
    try:
        mail_admins(subject, message, fail_silently=False)
    except Exception:
        log.exception("could not send the alert email %r", subject)
