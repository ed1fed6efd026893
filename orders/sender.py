"""Sending the outbox (orders.outbox) to the site: Standard Webhooks, signed, in order per order, retried.

Contract of `Sender.run_pass()`: every pending event that is due, and has no undelivered event of its order
before it, is posted once, in the order of the events' ids, and the outcome recorded:
- a 2xx answer delivers it;
- anything else (another status, a timeout, a refused connection, a TLS error) is an attempt that failed:
  the next one waits OUTBOUND_RETRY_SCHEDULE's next delay (at least the Retry-After of a 429 or 503), and
  after the last the event is failed and the admins are alerted (throttled);
- a failing or failed event holds back the later events of its order (never other orders'), so a receiver
  sees each order's statuses in the order they were written. A failed one holds them back until it is
  resent from the admin.

Delivery is at least once: the event is marked delivered after the answer, so a sender that dies (or a
database that fails) between the two sends the event again, with the same `webhook-id` and body, and the
receiver drops the repeat.

One sender at a time (see `exclusive()`): ordering per order then needs no locking between senders. Row locks
(SELECT ... FOR UPDATE SKIP LOCKED) would not keep it: a second sender skipping an order's locked head would
take that order's next event. One sender posting over a kept-alive connection is fast enough for the ledger's
rate (the drain bench in docs/PERFORMANCE.md), and a second one started by mistake simply waits.
"""

import email.utils
import fcntl
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from . import alerts
from .models import OutboundAttempt, OutboundEvent

log = logging.getLogger("epnhook.sender")

# Events read per query while walking the outbox: bounds the sender's memory whatever the backlog.
CHUNK = 500
# The longest Retry-After honoured; a receiver asking for more gets the schedule's own delays.
MAX_RETRY_AFTER = timedelta(hours=24)
LOCK_NAME = ".deliver_events.lock"


@dataclass
class PassReport:
    delivered: int = 0
    failed_attempts: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed_attempts


@contextmanager
def exclusive():
    """Hold the sender's lock (a file lock beside the spool's, on the host that runs the service) for the
    block; yields False, holding nothing, when another sender holds it."""
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.SPOOL_DIR / LOCK_NAME, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


class Sender:
    def __init__(self):
        self.url = settings.OUTBOUND_URL
        self.webhook = Webhook(settings.OUTBOUND_SECRET)
        self.schedule = settings.OUTBOUND_RETRY_SCHEDULE
        # One session: the connection to the site is kept alive between events.
        self.session = requests.Session()

    def run_pass(self, should_stop=lambda: False) -> PassReport:
        """Walk the undelivered events once, oldest first, sending those that may go now (module docstring)."""
        report = PassReport()
        # Orders whose head cannot go now: a failed event, one not due yet, or one that just failed.
        held = set(OutboundEvent.objects.filter(state=OutboundEvent.State.FAILED)
                   .values_list("partner", "uniq_id").distinct())
        after = 0
        while not should_stop():
            chunk = list(OutboundEvent.objects.filter(state=OutboundEvent.State.PENDING, pk__gt=after)
                         .order_by("pk").values_list("pk", "partner", "uniq_id", "next_attempt_at")[:CHUNK])
            if not chunk:
                break
            for pk, partner, uniq_id, due in chunk:
                if should_stop():
                    break
                key = (partner, uniq_id)
                if key in held:
                    continue
                if due > timezone.now():
                    held.add(key)
                    continue
                outcome = self.send(pk)
                if outcome is None:
                    continue
                if outcome:
                    report.delivered += 1
                else:
                    report.failed_attempts += 1
                    held.add(key)
            after = chunk[-1][0]
        return report

    def send(self, pk: int) -> bool | None:
        """Post one event and record the attempt: True when delivered, False when it failed (and is
        rescheduled or given up), None when it is no longer pending."""
        event = OutboundEvent.objects.filter(pk=pk, state=OutboundEvent.State.PENDING).first()
        if event is None:
            return None
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "epnhook",
            "webhook-id": event.public_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self.webhook.sign(event.public_id, sent_at, event.body),
        }
        started = time.monotonic()
        status_code, error, retry_after = None, "", None
        try:
            # verify=True is requests' default and stays so: the body is the ledger, the URL https.
            response = self.session.post(self.url, data=event.body.encode(), headers=headers,
                                         timeout=settings.OUTBOUND_TIMEOUT, allow_redirects=False)
        except requests.RequestException as failure:
            error = f"{type(failure).__name__}: {failure}"[:1000]
        else:
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
                if status_code in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
        duration_ms = round((time.monotonic() - started) * 1000)
        self._record(event, sent_at, status_code, error, duration_ms, retry_after)
        return not error

    def _record(self, event: OutboundEvent, sent_at: datetime, status_code: int | None, error: str,
                duration_ms: int, retry_after: timedelta | None) -> None:
        now = timezone.now()
        attempts = event.attempts + 1
        if not error:
            changes = {"state": OutboundEvent.State.DELIVERED, "delivered_at": now, "last_error": ""}
        elif attempts >= len(self.schedule):
            changes = {"state": OutboundEvent.State.FAILED, "last_error": error}
        else:
            delay = timedelta(seconds=self.schedule[attempts])
            if retry_after is not None:
                delay = max(delay, retry_after)
            changes = {"next_attempt_at": now + delay, "last_error": error}
        with transaction.atomic():
            OutboundAttempt.objects.create(event=event, at=sent_at, status_code=status_code, error=error,
                                           duration_ms=duration_ms)
            OutboundEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1, **changes)
        if error:
            log.warning("event %s attempt %d failed: %s", event.public_id, attempts, error,
                        extra={"partner": event.partner, "uniq_id": event.uniq_id, "attempt": attempts})
        if changes.get("state") == OutboundEvent.State.FAILED:
            alerts.alert(
                "outbound-failed", f"Event {event.public_id} could not be delivered to the site",
                f"{event.type} of {event.partner} {event.uniq_id} failed {attempts} attempts; the last: {error}.\n"
                "The later events of this order wait behind it. Once the site answers, resend it from the admin "
                "(Outbound events, action \"Resend\").",
            )


def parse_retry_after(value: str | None) -> timedelta | None:
    """Retry-After as seconds or an HTTP date, capped at MAX_RETRY_AFTER; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - datetime.now(UTC)
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)
