"""Retention of the raw delivery log: `manage.py prune_deliveries`.

What is removed: deliveries older than the cutoff whose postback is safely in the order ledger,
i.e. outcome `created` or `duplicate` (the order keeps every parameter of its first delivery in
`raw_payload`). Orders are never removed.

What is never removed, whatever its age:
- `invalid` and `error` deliveries: they are the only copy of a postback that never became an order,
  and replaying them after a parser fix is how that cashback is recovered. Once a replay stores
  them they become `created`/`duplicate` and age out like the rest;
- deliveries of an order flagged as a money conflict (`has_conflict`): the duplicate delivery is the
  only record of the other amount, which staff need to settle the conflict; they age out once the
  flag is cleared;
- deliveries entered by hand (`source=manual`): rare, and the audit trail of who entered what.

Deleting never holds long locks: primary keys are selected in small batches walking up the primary
key, and each batch is one short autocommitted `DELETE ... WHERE id IN (...)`.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from .models import Delivery
from .operations import refresh_connection

PRUNABLE_OUTCOMES = (Delivery.Outcome.CREATED, Delivery.Outcome.DUPLICATE)
DEFAULT_BATCH_SIZE = 1000
# One DELETE of this many rows still takes milliseconds; more would hold row locks noticeably long.
MAX_BATCH_SIZE = 10000


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool = False
    deleted: int = 0
    batches: int = 0
    # Deliveries older than the cutoff that are kept, by reason.
    kept: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        when = timezone.localtime(self.cutoff).strftime("%Y-%m-%d %H:%M %Z")
        if self.dry_run:
            text = f"would delete {self.deleted} deliveries received before {when} (dry run: nothing was deleted)"
        else:
            text = f"deleted {self.deleted} deliveries received before {when} in {self.batches} batch(es)"
        kept = "; ".join(f"{reason}: {count}" for reason, count in self.kept.items())
        return f"{text}\nkept although older: {kept}"


def prunable(cutoff: datetime):
    """Deliveries that may be deleted: see the module docstring for what is kept and why."""
    return _old_and_stored(cutoff).filter(order__has_conflict=False)


def _old_and_stored(cutoff: datetime):
    """The conditions on the delivery's own columns, which the DELETE repeats: a join in a DELETE
    would lock the order rows it reads, and the conflict flag was checked when the batch was chosen."""
    return Delivery.objects.filter(received_at__lt=cutoff, outcome__in=PRUNABLE_OUTCOMES).exclude(
        source=Delivery.Source.MANUAL
    )


def kept_counts(cutoff: datetime) -> dict[str, int]:
    """Old deliveries kept, by reason: one pass over the old rows rather than one per reason."""
    stored = Q(outcome__in=PRUNABLE_OUTCOMES)
    counts = Delivery.objects.filter(received_at__lt=cutoff).aggregate(
        unstored=Count("pk", filter=~stored),
        conflict=Count("pk", filter=stored & Q(order__has_conflict=True)),
        manual=Count("pk", filter=stored & Q(source=Delivery.Source.MANUAL, order__has_conflict=False)),
    )
    return {
        "invalid or error (never stored as an order)": counts["unstored"],
        "order under a money conflict": counts["conflict"],
        "entered by hand": counts["manual"],
    }


def prune_deliveries(*, days: int, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False,
                     now: datetime | None = None) -> PruneReport:
    """Delete prunable deliveries received more than `days` days ago; with dry_run only count them.

    Safe to stop at any point and run again: it continues with whatever is still old enough.
    """
    cutoff = (now or timezone.now()) - timedelta(days=days)
    report = PruneReport(cutoff=cutoff, dry_run=dry_run, kept=kept_counts(cutoff))
    if dry_run:
        report.deleted = prunable(cutoff).count()
        return report
    # Walking the primary key only up to the newest old row keeps each batch a short range scan
    # instead of a fresh sort of every old row.
    upper = Delivery.objects.filter(received_at__lt=cutoff).aggregate(Max("pk"))["pk__max"]
    last = 0
    while upper is not None:
        refresh_connection()
        batch = list(
            prunable(cutoff).filter(pk__gt=last, pk__lte=upper).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            break
        # The conditions are repeated so that a row replayed or re-sourced since it was chosen stays.
        deleted, _ = _old_and_stored(cutoff).filter(pk__in=batch).delete()
        report.deleted += deleted
        report.batches += 1
        last = batch[-1]
    return report
