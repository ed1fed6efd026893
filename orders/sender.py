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

Delivery is at least once: the event is marked delivered after the answer (attempts are recorded in small
batches, RECORD_BATCH), so a sender that dies (or a database that fails) before that sends the event again,
with the same `webhook-id` and body, and the receiver drops the repeat.

One sender at a time (see `exclusive()`): ordering per order then needs no locking between senders. Row locks
(SELECT ... FOR UPDATE SKIP LOCKED) would not keep it: a second sender skipping an order's locked head would
take that order's next event. One sender posting over a kept-alive connection is fast enough for the ledger's
rate (tests/test_command_deliver_events.py prints its drain rate), and a second one started by mistake
simply waits.
"""

import email.utils
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

from . import alerts, filelock
from .models import OutboundAttempt, OutboundEvent

log = logging.getLogger("epnhook.sender")

# Events read per query while walking the outbox (bodies included): bounds the sender's memory whatever the
# backlog.
CHUNK = 500
# Attempts recorded per transaction, or after this many seconds: one commit (one fsync) per event capped the
# sender at the disk's commit rate. A sender that dies loses at most these records, and resends their events.
RECORD_BATCH = 100
RECORD_SECONDS = 1.0
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
    with filelock.held(settings.SPOOL_DIR / LOCK_NAME) as held:
        yield held


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
        unrecorded: list[Attempt] = []
        after = 0
        try:
            while not should_stop():
                chunk = list(OutboundEvent.objects.filter(state=OutboundEvent.State.PENDING, pk__gt=after)
                             .order_by("pk")[:CHUNK])
                if not chunk:
                    break
                for event in chunk:
                    if should_stop():
                        break
                    key = (event.partner, event.uniq_id)
                    if key in held:
                        continue
                    if event.next_attempt_at > timezone.now():
                        held.add(key)
                        continue
                    attempt = self.post(event)
                    unrecorded.append(attempt)
                    if attempt.delivered:
                        report.delivered += 1
                    else:
                        report.failed_attempts += 1
                        held.add(key)
                    if len(unrecorded) >= RECORD_BATCH or time.monotonic() - unrecorded[0].started > RECORD_SECONDS:
                        self.record(unrecorded)
                        unrecorded = []
                after = chunk[-1].pk
        finally:
            if unrecorded:
                self.record(unrecorded)
        return report

    def send(self, event: OutboundEvent) -> bool:
        """Post one event now and record the attempt; whether it was delivered."""
        attempt = self.post(event)
        self.record([attempt])
        return attempt.delivered

    def post(self, event: OutboundEvent) -> "Attempt":
        """One signed POST of the event; what came of it, not recorded yet."""
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "epnhook",
            "webhook-id": event.public_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self.webhook.sign(event.public_id, sent_at, event.body),
        }
        attempt = Attempt(event, sent_at, started=time.monotonic())
        try:
            # verify=True is requests' default and stays so: the body is the ledger, the URL https.
            response = self.session.post(self.url, data=event.body.encode(), headers=headers,
                                         timeout=settings.OUTBOUND_TIMEOUT, allow_redirects=False)
        except requests.RequestException as failure:
            attempt.error = f"{type(failure).__name__}: {failure}"[:1000]
        else:
            attempt.status_code = response.status_code
            if not 200 <= response.status_code < 300:
                attempt.error = f"HTTP {response.status_code}"
                if response.status_code in (429, 503):
                    attempt.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        attempt.duration_ms = round((time.monotonic() - attempt.started) * 1000)
        return attempt

    def record(self, attempts: list["Attempt"]) -> None:
        """Write the attempts and their events' new states, in one transaction: one commit for many deliveries.
        Until it commits they are not recorded, and a sender that dies first sends them again (same ids)."""
        now = timezone.now()
        delivered = [attempt.event.pk for attempt in attempts if attempt.delivered]
        given_up = []
        with transaction.atomic():
            OutboundAttempt.objects.bulk_create(
                OutboundAttempt(event=attempt.event, at=attempt.sent_at, status_code=attempt.status_code,
                                error=attempt.error, duration_ms=attempt.duration_ms) for attempt in attempts)
            if delivered:
                OutboundEvent.objects.filter(pk__in=delivered).update(
                    state=OutboundEvent.State.DELIVERED, delivered_at=now, last_error="", attempts=F("attempts") + 1)
            for attempt in attempts:
                if attempt.delivered:
                    continue
                number = attempt.event.attempts + 1
                if number >= len(self.schedule):
                    changes = {"state": OutboundEvent.State.FAILED}
                    given_up.append((attempt, number))
                else:
                    delay = timedelta(seconds=self.schedule[number])
                    if attempt.retry_after is not None:
                        delay = max(delay, attempt.retry_after)
                    changes = {"next_attempt_at": now + delay}
                OutboundEvent.objects.filter(pk=attempt.event.pk).update(
                    attempts=F("attempts") + 1, last_error=attempt.error, **changes)
        for attempt in attempts:
            if not attempt.delivered:
                event = attempt.event
                log.warning("event %s attempt %d failed: %s", event.public_id, event.attempts + 1, attempt.error,
                            extra={"partner": event.partner, "uniq_id": event.uniq_id, "attempt": event.attempts + 1})
        for attempt, number in given_up:
            event = attempt.event
            alerts.alert(
                "outbound-failed", f"Event {event.public_id} could not be delivered to the site",
                f"{event.type} of {event.partner} {event.uniq_id} failed {number} attempts; the last: "
                f"{attempt.error}.\nThe later events of this order wait behind it. Once the site answers, resend it "
                "from the admin (Outbound events, action \"Resend\").",
            )


@dataclass
class Attempt:
    event: OutboundEvent
    sent_at: datetime
    started: float
    status_code: int | None = None
    error: str = ""
    retry_after: timedelta | None = None
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and not self.error


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
