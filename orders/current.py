"""Which row of an order is its current status.

An order (partner, uniq_id) has one Order row per status it went through. Networks resend and
reorder postbacks, so arrival order alone does not tell the truth: a late `waiting` must not undo a
`completed`. The rule: a final status (completed, rejected) beats a non-final one whatever order they
arrived in; otherwise the later arrival wins (created_at, then id, break ties).
"""

from django.db import connection

from partners.base import FINAL_STATUSES

from .models import Order


def refresh_current(partner: str, uniq_id: str) -> int | None:
    """Set is_current on exactly one row of the order and return its pk; call inside the transaction
    that inserted a row.

    The locking read (SELECT ... FOR UPDATE) waits for any other transaction that inserted or flagged
    a row of the same order, so the transaction that commits last has seen every row and leaves the
    flags right. Under READ COMMITTED there are no gap locks, so two first arrivals of one order can
    each hold their own new row and wait for the other's: InnoDB then aborts one as a deadlock, which
    orders.ingest retries as a transient error.

    Written in SQL rather than the ORM because every new order runs it (see orders.rows); the rule
    above is its ORDER BY, so the first row is the current one.
    """
    table = Order._meta.db_table
    finals = ", ".join(["%s"] * len(FINAL_STATUSES))
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, is_current FROM {connection.ops.quote_name(table)} WHERE partner = %s AND uniq_id = %s"
            f" ORDER BY order_status IN ({finals}) DESC, created_at DESC, id DESC{lock}",
            [partner, uniq_id, *FINAL_STATUSES],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    current_pk = rows[0][0]
    stale = [pk for pk, is_current in rows[1:] if is_current]
    if stale:
        Order.objects.filter(pk__in=stale).update(is_current=False)
    if not rows[0][1]:
        Order.objects.filter(pk=current_pk).update(is_current=True)
    return current_pk
