"""Which row of an order is its current status.

An order (partner, uniq_id) has one Order row per status it went through. Networks resend and
reorder postbacks, so arrival order alone does not tell the truth: a late `waiting` must not undo a
`completed`. The rule: a final status (completed, rejected) beats a non-final one whatever order they
arrived in; otherwise the later arrival wins (created_at, then id, break ties).
"""

from typing import NamedTuple

from django.db import connection

from partners.base import FINAL_STATUSES

from .models import Order, OrderVersion


class Current(NamedTuple):
    """The order's current row, and the status of the row that ranks next: when `pk` is the row just
    inserted, that is the status that was current before it (None for the order's first status)."""

    pk: int | None
    previous_status: str | None


def refresh_current(partner: str, uniq_id: str) -> Current:
    """Set is_current on exactly one row of the order and return it (see Current); call inside the
    transaction that inserted a row.

    Two transactions that each insert a status of the same order must not both decide from what they
    alone see, or both would leave their own row current. So each first writes the order's one
    OrderVersion row (creating it if need be), then reads the order's rows and sets the flags. On one
    server the second writer waits for that row until the first commits, and then its read sees the
    first's row. On a Galera cluster the row lock is local to a node, but the write is replicated: two
    such transactions on two nodes write the same row, so the second to commit fails certification with
    a deadlock error (1213), which orders.ingest retries as transient. Either way the transaction that
    commits last has seen every row and leaves the flags right.

    The read therefore needs no lock of its own (under READ COMMITTED each statement sees what was
    committed before it began). Nothing else changes is_current, and a transaction waiting for the
    version row holds no lock that the one holding it needs: the rows it inserted are invisible to
    others until it commits. Written in SQL rather than the ORM because every new order runs it (see
    orders.rows); the rule above is its ORDER BY, so the first row is the current one.
    """
    quote = connection.ops.quote_name
    finals = ", ".join(["%s"] * len(FINAL_STATUSES))
    with connection.cursor() as cursor:
        cursor.execute(_bump_version_sql(), [partner, uniq_id])
        cursor.execute(
            f"SELECT id, is_current, order_status FROM {quote(Order._meta.db_table)}"
            " WHERE partner = %s AND uniq_id = %s"
            f" ORDER BY order_status IN ({finals}) DESC, created_at DESC, id DESC",
            [partner, uniq_id, *FINAL_STATUSES],
        )
        rows = cursor.fetchall()
    if not rows:
        return Current(None, None)
    current_pk = rows[0][0]
    stale = [pk for pk, is_current, _status in rows[1:] if is_current]
    if stale:
        Order.objects.filter(pk__in=stale).update(is_current=False)
    if not rows[0][1]:
        Order.objects.filter(pk=current_pk).update(is_current=True)
    return Current(current_pk, rows[1][2] if len(rows) > 1 else None)


def _bump_version_sql() -> str:
    """Insert the order's version row, or increment it: one statement that always writes the row."""
    quote = connection.ops.quote_name
    if connection.vendor == "mysql":
        on_conflict = "ON DUPLICATE KEY UPDATE version = version + 1"
    else:  # SQLite
        on_conflict = "ON CONFLICT (partner, uniq_id) DO UPDATE SET version = version + 1"
    return (f"INSERT INTO {quote(OrderVersion._meta.db_table)} (partner, uniq_id, version) VALUES (%s, %s, 1) "
            f"{on_conflict}")
