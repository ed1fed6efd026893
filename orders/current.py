"""Which row of an order is its current status.

An order (partner, uniq_id) has one Order row per status it went through. Networks resend and
reorder postbacks, so arrival order alone does not tell the truth: a late `waiting` must not undo a
`completed`. The rule: a final status (completed, rejected) beats a non-final one whatever order they
arrived in; otherwise the later arrival wins (created_at, then id, break ties).
"""

from partners.base import FINAL_STATUSES

from .models import Order


def rank(order_status: str, created_at, pk: int) -> tuple:
    """Sort key: the row with the highest rank of its (partner, uniq_id) is the current one."""
    return (order_status in FINAL_STATUSES, created_at, pk)


def refresh_current(partner: str, uniq_id: str) -> int | None:
    """Set is_current on exactly one row of the order and return its pk; call inside the transaction
    that inserted a row.

    The locking read (SELECT ... FOR UPDATE) waits for any other transaction that inserted or flagged
    a row of the same order, so the transaction that commits last has seen every row and leaves the
    flags right. Under READ COMMITTED there are no gap locks, so two first arrivals of one order can
    each hold their own new row and wait for the other's: InnoDB then aborts one as a deadlock, which
    orders.ingest retries as a transient error.
    """
    rows = list(
        Order.objects.select_for_update()
        .filter(partner=partner, uniq_id=uniq_id)
        .values_list("pk", "order_status", "created_at", "is_current")
    )
    if not rows:
        return None
    current_pk = max(rows, key=lambda row: rank(row[1], row[2], row[0]))[0]
    stale = [pk for pk, _status, _created, is_current in rows if is_current and pk != current_pk]
    if stale:
        Order.objects.filter(pk__in=stale).update(is_current=False)
    if not next(row[3] for row in rows if row[0] == current_pk):
        Order.objects.filter(pk=current_pk).update(is_current=True)
    return current_pk
