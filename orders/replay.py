"""Running stored deliveries again through the current parser and write path.

Used by `manage.py replay_webhook` and the admin's replay action, so both behave the same. A replay
updates the delivery in place (its outcome, order, error and `replayed_at`) and never creates a
second order: the order is written by ingest.save_order, which answers a repeat as a duplicate.
"""

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction
from django.utils import timezone

from partners.base import PayloadError

from . import dberrors
from .ingest import IngestResult, read_postback, save_order, store
from .models import Delivery, Order
from .operations import refresh_connection
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.replay")

# Deliveries fetched (and replayed) per batch; the connection is refreshed between batches.
REPLAY_BATCH_SIZE = 500
# The outcome of a replay that raised (a bug, a database error): the delivery is left as it was.
FAILED = "failed"


def replay_delivery(delivery: Delivery, *, dry_run: bool = False) -> IngestResult:
    """Parse `delivery` again and store its order if that is now possible.

    With dry_run nothing is written; the result says what would happen. A delivery that already
    created its order stays `created` (replaying it is a no-op, not a duplicate of itself).
    """
    try:
        params, parsed = read_postback(delivery.partner, delivery.query_string, bytes(delivery.body),
                                       delivery.content_type)
    except (PayloadError, KeyError) as error:
        message, field_name = _describe_parse_error(error, delivery.partner)
        if not dry_run:
            Delivery.objects.filter(pk=delivery.pk).update(
                outcome=Delivery.Outcome.INVALID, error=message, error_field=field_name or "",
                replayed_at=timezone.now(),
            )
        return IngestResult(Delivery.Outcome.INVALID, delivery.pk, error=message, field=field_name)
    if dry_run:
        existing = Order.objects.filter(
            partner=delivery.partner, uniq_id=parsed.uniq_id, order_status=parsed.order_status
        ).first()
        linked = existing is None or existing.pk == delivery.order_id
        outcome = Delivery.Outcome.CREATED if linked else Delivery.Outcome.DUPLICATE
        return IngestResult(outcome, delivery.pk, existing.pk if existing else None)
    with transaction.atomic():
        order, outcome, conflicts = save_order(delivery.partner, parsed, params, delivery.received_at)
        if order.pk == delivery.order_id:
            stored = (Delivery.Outcome.CREATED, Delivery.Outcome.DUPLICATE)
            outcome = delivery.outcome if delivery.outcome in stored else Delivery.Outcome.CREATED
        Delivery.objects.filter(pk=delivery.pk).update(
            outcome=outcome, order=order, conflict_fields=list(conflicts), error="", error_field="",
            replayed_at=timezone.now(),
        )
    return IngestResult(outcome, delivery.pk, order.pk, conflict_fields=conflicts)


def replay_deliveries(deliveries: Iterable[Delivery], *, dry_run: bool = False,
                      ) -> list[tuple[int, IngestResult]]:
    """Replay each delivery, in order, and return (delivery id, result) for each; a failure of one (a
    bug, a database error) is a "failed" result, not raised."""
    results = []
    for number, delivery in enumerate(deliveries):
        if number % REPLAY_BATCH_SIZE == 0:
            refresh_connection()  # a long run must survive MariaDB's wait_timeout
        try:
            result = replay_delivery(delivery, dry_run=dry_run)
        except Exception as error:
            result = IngestResult(FAILED, delivery.pk, error=f"{type(error).__name__}: {error}")
        results.append((delivery.pk, result))
    return results


def outcome_counts(results: list[tuple[int, IngestResult]]) -> Counter:
    """How many of `results` (from replay_deliveries) ended in each outcome."""
    return Counter(result.outcome for _, result in results)


def _describe_parse_error(error: Exception, partner: str) -> tuple[str, str | None]:
    if isinstance(error, PayloadError):
        return error.message, error.field
    return f"no parser is registered for partner {partner!r}", "partner"


# --- Selection, summaries and manual entry (manage.py replay_webhook; usable by the admin too) -------


@dataclass
class ReplaySummary:
    """What a replay did, counted the way an operator asks: how many new orders, and what is left.

    `unchanged` deliveries already had their order, so replaying them changed nothing; `created`
    counts only deliveries that now have an order they did not have before.
    """

    dry_run: bool = False
    created: int = 0
    duplicate: int = 0
    unchanged: int = 0
    invalid: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)
    # Set when the database failed part-way; what is counted was done.
    error: str = ""

    @property
    def processed(self) -> int:
        return self.created + self.duplicate + self.unchanged + self.invalid + self.failed

    def add(self, delivery_id: int | None, previous: tuple[str, int | None], result: IngestResult) -> None:
        before, order_before = previous
        label = f"#{delivery_id}" if delivery_id else "manual postback"
        verb = "would be" if self.dry_run else "is"
        if result.outcome == FAILED:
            self.failed += 1
            self.lines.append(f"{label}: FAILED: {result.error}")
        elif result.outcome == Delivery.Outcome.INVALID:
            self.invalid += 1
            where = f" ({result.field})" if result.field else ""
            self.lines.append(f"{label}: still invalid{where}: {result.error}")
        elif order_before is not None and order_before == result.order_id:
            self.unchanged += 1
        elif result.outcome == Delivery.Outcome.CREATED:
            self.created += 1
            target = f"order #{result.order_id}" if result.order_id else "a new order"
            self.lines.append(f"{label}: {before} -> created, {verb} stored as {target}")
        else:
            self.duplicate += 1
            self.lines.append(f"{label}: {before} -> duplicate of order #{result.order_id}")

    def render(self) -> str:
        text = (f"processed {self.processed}: created {self.created}, duplicate {self.duplicate}, "
                f"unchanged {self.unchanged}, still invalid {self.invalid}, failed {self.failed}")
        return text + (" (dry run: nothing was written)" if self.dry_run else "")


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
        results = replay_deliveries(batch, dry_run=dry_run)
        for delivery, (delivery_id, result) in zip(batch, results, strict=True):
            summary.add(delivery_id, (delivery.outcome, delivery.order_id), result)
        last = batch[-1].pk
    return summary


def enter_manual(partner: str, query: str, *, entered_by: str = "", dry_run: bool = False) -> ReplaySummary:
    """Store a postback typed or pasted by hand (e.g. from the network's dashboard) through the write
    path, as a `manual` delivery; `entered_by` is kept in its user agent for the audit trail.

    `query` is the postback's query string; a whole URL is cut to the part after '?', so the token
    in it is never stored. One attempt, no spool: the operator is there to see a failure and retry.
    """
    query = query.strip().split("?", 1)[-1]
    summary = ReplaySummary(dry_run=dry_run)
    if dry_run:
        preview = Delivery(partner=partner, query_string=query, body=b"", content_type="")
        result = replay_delivery(preview, dry_run=True)
    else:
        raw = RawRequest(partner=partner, method="GET", query_string=query, source=Delivery.Source.MANUAL,
                         user_agent=f"manage.py replay_webhook by {entered_by}" if entered_by else "")
        try:
            result = store(raw)
        except DatabaseError:
            raise  # the caller says the database failed; nothing was stored
        except Exception as error:
            log.exception("storing a postback entered by hand failed")
            result = IngestResult(FAILED, error=f"{type(error).__name__}: {error}")
    summary.add(result.delivery_id, ("new", None), result)
    return summary
