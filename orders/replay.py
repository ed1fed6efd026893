"""Running stored deliveries again, entering a postback by hand, and saying what that did.

Used by `manage.py replay_webhook` and the admin's replay action, so both behave and report the same.
Storing, and previewing what would be stored, is orders.ingest's work (`replay_delivery`, `store`,
`preview`): this module selects, batches, counts and words. The words are translated (the admin shows
them in the staff's language); the command prints them with translations off, in English, for
operators and their logs.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError
from django.utils.translation import gettext

from . import dberrors
from .ingest import IngestResult, preview, replay_delivery, store
from .models import Delivery
from .operations import refresh_connection
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.replay")

# Deliveries fetched (and replayed) per batch; the connection is refreshed between batches.
REPLAY_BATCH_SIZE = 500
# The outcome of a replay or a manual entry that raised (a bug, a database error): nothing changed.
FAILED = "failed"


def describe(result: IngestResult) -> str:
    """One line, in the active language, saying what storing or replaying a postback did, or in a dry
    run would do. A result without a delivery is a postback not stored (a dry run of a new one, or a
    failure); `created` without an order is an order a dry run would create."""
    stored = result.delivery_id is not None
    if result.outcome == Delivery.Outcome.CREATED:
        if result.order_id is not None:
            text = gettext("Delivery #%(delivery)s: stored as order #%(order)s.")
        elif stored:
            text = gettext("Delivery #%(delivery)s: would be stored as a new order.")
        else:
            text = gettext("The postback would be stored as a new order.")
    elif result.outcome == Delivery.Outcome.DUPLICATE:
        text = (gettext("Delivery #%(delivery)s: a duplicate of order #%(order)s.") if stored
                else gettext("The postback is a duplicate of order #%(order)s."))
    elif result.outcome == Delivery.Outcome.INVALID:
        text = (gettext("Delivery #%(delivery)s: still invalid: %(error)s") if stored
                else gettext("The postback is invalid: %(error)s"))
    else:
        text = (gettext("Delivery #%(delivery)s: failed: %(error)s") if stored
                else gettext("The postback failed: %(error)s"))
    text %= {"delivery": result.delivery_id, "order": result.order_id, "error": result.error}
    if result.conflict_fields:
        text += " " + gettext("Different values: %(fields)s.") % {"fields": ", ".join(result.conflict_fields)}
    return text


@dataclass(frozen=True)
class ReplayLine:
    text: str
    # Still invalid, or failed: what the admin shows as an error.
    problem: bool


@dataclass
class ReplaySummary:
    """What a replay did, counted the way an operator asks: how many new orders, and what is left.

    `unchanged` deliveries already had their order, so replaying them changed nothing and gets no
    line; `created` counts only deliveries that now have an order they did not have before.
    """

    dry_run: bool = False
    created: int = 0
    duplicate: int = 0
    unchanged: int = 0
    invalid: int = 0
    failed: int = 0
    lines: list[ReplayLine] = field(default_factory=list)
    # Set when the database failed part-way; what is counted was done.
    error: str = ""

    @property
    def processed(self) -> int:
        return self.created + self.duplicate + self.unchanged + self.invalid + self.failed

    def add(self, order_before: int | None, result: IngestResult) -> None:
        """Count the replay of a delivery that had order `order_before`, and word it unless unchanged."""
        if result.outcome == FAILED:
            self.failed += 1
        elif result.outcome == Delivery.Outcome.INVALID:
            self.invalid += 1
        elif order_before is not None and order_before == result.order_id:
            self.unchanged += 1
            return
        elif result.outcome == Delivery.Outcome.CREATED:
            self.created += 1
        else:
            self.duplicate += 1
        problem = result.outcome in (Delivery.Outcome.INVALID, FAILED)
        self.lines.append(ReplayLine(describe(result), problem))

    def render(self) -> str:
        """The totals, in the active language."""
        text = gettext(
            "processed %(processed)d: created %(created)d, duplicate %(duplicate)d, unchanged %(unchanged)d, "
            "still invalid %(invalid)d, failed %(failed)d"
        ) % {"processed": self.processed, "created": self.created, "duplicate": self.duplicate,
             "unchanged": self.unchanged, "invalid": self.invalid, "failed": self.failed}
        return text + " " + gettext("(dry run: nothing was written)") if self.dry_run else text


def replay_deliveries(deliveries: Iterable[Delivery], summary: ReplaySummary) -> None:
    """Replay each delivery, in order, into `summary` (dry run or not, as it says); a failure of one
    (a bug, a database error) is counted as failed, not raised."""
    for number, delivery in enumerate(deliveries):
        if number % REPLAY_BATCH_SIZE == 0:
            refresh_connection()  # a long run must survive MariaDB's wait_timeout
        try:
            result = replay_delivery(delivery, dry_run=summary.dry_run)
        except Exception as error:
            result = IngestResult(FAILED, delivery.pk, error=f"{type(error).__name__}: {error}")
        summary.add(delivery.order_id, result)


def select_deliveries(*, ids=(), outcome=None, since=None, until=None, partner=None):
    """Deliveries matching every given criterion, oldest first; `until` is exclusive."""
    deliveries = Delivery.objects.order_by("pk")
    if ids:
        deliveries = deliveries.filter(pk__in=ids)
    if outcome:
        deliveries = deliveries.filter(outcome=outcome)
    if since:
        deliveries = deliveries.filter(received_at__gte=since)
    if until:
        deliveries = deliveries.filter(received_at__lt=until)
    if partner:
        deliveries = deliveries.filter(partner=partner)
    return deliveries


def missing_ids(ids) -> list[int]:
    found = set(Delivery.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return sorted(set(ids) - found)


def replay_selected(deliveries, *, dry_run: bool = False) -> ReplaySummary:
    """Replay a queryset of deliveries in primary-key batches and summarise it.

    Each batch is fetched whole before it is replayed, so the connection can be refreshed between
    batches (a long run outlives MariaDB's wait_timeout) without cutting an open cursor. When the
    database fails while fetching, the summary so far is returned with `error` set.
    """
    summary = ReplaySummary(dry_run=dry_run)
    last = 0
    while True:
        try:
            batch = list(deliveries.filter(pk__gt=last)[:REPLAY_BATCH_SIZE])
        except DatabaseError as error:
            summary.error = dberrors.describe(error)
            break
        if not batch:
            break
        replay_deliveries(batch, summary)
        last = batch[-1].pk
    return summary


def enter_manual(partner: str, query: str, *, entered_by: str = "", dry_run: bool = False,
                 implied_status: str = "") -> IngestResult:
    """Store a postback typed or pasted by hand (e.g. from the network's dashboard) through the write
    path, as a `manual` delivery; `entered_by` is kept in its user agent for the audit trail, and
    `implied_status` is the status of the URL it was sent to, for a network that calls one URL per event.

    `query` is the postback's query string; a whole URL is cut to the part after '?', so the token
    in it is never stored. One attempt, no spool: the operator is there to see a failure and retry.
    A database error is raised (nothing was stored); any other failure is a FAILED result.
    """
    raw = RawRequest(partner=partner, method="GET", query_string=query.strip().split("?", 1)[-1],
                     source=Delivery.Source.MANUAL, implied_status=implied_status,
                     user_agent=f"manage.py replay_webhook by {entered_by}" if entered_by else "")
    if dry_run:
        return preview(raw)
    try:
        return store(raw)
    except DatabaseError:
        raise  # the caller says the database failed; nothing was stored
    except Exception as error:
        log.exception("storing a postback entered by hand failed")
        return IngestResult(FAILED, error=f"{type(error).__name__}: {error}")
