"""Running stored deliveries again through the current parser and write path.

Used by `manage.py replay_webhook` and the admin's replay action, so both behave the same. A replay
updates the delivery in place (its outcome, order, error and `replayed_at`) and never creates a
second order: the order is written by ingest.save_order, which answers a repeat as a duplicate.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from partners.base import PayloadError
from partners.registry import get_partner

from .ingest import CREATED, DUPLICATE, INVALID, IngestResult, save_order
from .models import Delivery, Order
from .payload import payload_params


@dataclass
class ReplayReport:
    counts: Counter = field(default_factory=Counter)
    results: list[tuple[int, IngestResult]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return len(self.results)


def replay_delivery(delivery: Delivery, *, dry_run: bool = False) -> IngestResult:
    """Parse `delivery` again and store its order if that is now possible.

    With dry_run nothing is written; the result says what would happen. A delivery that already
    created its order stays `created` (replaying it is a no-op, not a duplicate of itself).
    """
    try:
        params = payload_params(delivery.query_string, bytes(delivery.body), delivery.content_type)
        parsed = get_partner(delivery.partner).parse(params)
    except (PayloadError, KeyError) as error:
        message, field_name = _describe_parse_error(error, delivery.partner)
        if not dry_run:
            Delivery.objects.filter(pk=delivery.pk).update(
                outcome=INVALID, error=message, error_field=field_name or "", replayed_at=timezone.now()
            )
        return IngestResult(INVALID, delivery.pk, error=message, field=field_name)
    if dry_run:
        existing = Order.objects.filter(
            partner=delivery.partner, uniq_id=parsed.uniq_id, order_status=parsed.order_status
        ).first()
        outcome = CREATED if existing is None or existing.pk == delivery.order_id else DUPLICATE
        return IngestResult(outcome, delivery.pk, existing.pk if existing else None)
    with transaction.atomic():
        order, outcome, conflicts = save_order(delivery.partner, parsed, params)
        if order.pk == delivery.order_id:
            outcome = delivery.outcome if delivery.outcome in (CREATED, DUPLICATE) else CREATED
        Delivery.objects.filter(pk=delivery.pk).update(
            outcome=outcome, order=order, conflict_fields=list(conflicts), error="", error_field="",
            replayed_at=timezone.now(),
        )
    return IngestResult(outcome, delivery.pk, order.pk, conflict_fields=conflicts)


def replay_deliveries(deliveries: Iterable[Delivery], *, dry_run: bool = False) -> ReplayReport:
    """Replay each delivery; a failure of one (a bug, a database error) is counted, not raised."""
    report = ReplayReport()
    for number, delivery in enumerate(deliveries):
        if number % 500 == 0 and not connection.in_atomic_block:
            close_old_connections()  # a long run must survive MariaDB's wait_timeout
        try:
            result = replay_delivery(delivery, dry_run=dry_run)
        except Exception as error:
            result = IngestResult("failed", delivery.pk, error=f"{type(error).__name__}: {error}")
        report.counts[result.outcome] += 1
        report.results.append((delivery.pk, result))
    return report


def _describe_parse_error(error: Exception, partner: str) -> tuple[str, str | None]:
    if isinstance(error, PayloadError):
        return error.message, error.field
    return f"no parser is registered for partner {partner!r}", "partner"
