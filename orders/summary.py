"""The daily summary (DailySummary) behind the overview page, kept exact by recomputing whole days.

An order counts once, on the day (in TIME_ZONE) its first row was received, under its current row's
partner, currency, status and reward-ready flag. The write path does not touch the summary: a refresh
finds the orders whose rows changed since the last refresh (the index on Order.updated_at), works out
the days those orders belong to, and recomputes each of those days from the ledger's current rows.
Recomputing instead of adding is what makes it exact: a duplicate, a replay or a late status changes
the ledger's current rows, and the day is recomputed from them, so nothing counts twice or goes missing
whatever order the postbacks came in.

A transaction can commit some time after it stamped updated_at; so each refresh also looks again at
rows stamped in the LATE_COMMIT before its previous start, skipping those the previous refresh saw as
they are now (SummaryState.seen): a late commit is a row it did not see. Refreshes take turns on
SummaryState's lock row. They run before the overview page renders (a few days at most there) and from
check_health every minute; `manage.py refresh_summary --all` recomputes every day (after a restore, or
on first install with a large ledger).
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import OperationalError, connection, transaction
from django.db.models import Min
from django.utils import timezone

from . import dberrors
from .models import DailySummary, Order, SummaryState

# How long after stamping updated_at a write path transaction may still commit (and how far apart the
# clocks of the servers that stamp it may be). Ingest gives up on a postback after INGEST_DEADLINE (5 s)
# and the database read timeout ends any statement sooner; two minutes leave a wide margin.
LATE_COMMIT = timedelta(minutes=2)
# Keys per IN (...) list: well under any packet or parameter limit.
CHUNK = 500
STATE_PK = 1
# What MariaDB answers SELECT ... FOR UPDATE NOWAIT with when another transaction holds the row.
LOCK_NOT_GRANTED = 1205


@dataclass
class RefreshReport:
    days: int  # days recomputed; 0 when `busy` or `deferred`
    busy: bool = False  # another refresh held the lock, and this one was asked not to wait
    deferred: int = 0  # the days that needed recomputing, more than max_days: none were


def local_day(moment: datetime) -> date:
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day's start and the next day's start, in TIME_ZONE."""
    zone = timezone.get_default_timezone()
    return datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)


def refresh(*, everything: bool = False, now: datetime | None = None, wait: bool = True,
            max_days: int | None = None) -> RefreshReport:
    """Bring DailySummary up to date with the ledger; with `everything`, recompute every day.

    Serialised by the lock on SummaryState's row, held until the transaction commits: the summary
    rows a refresh writes become visible together with the new watermark, or not at all. With
    `wait=False` a refresh that finds the lock taken does nothing and reports `busy` (the one holding
    it is doing the work) instead of waiting up to the database's lock wait timeout. With `max_days`, a
    refresh that would recompute more days than that does nothing and reports `deferred` (the overview
    page leaves a burst of changes to check_health's next run).
    """
    try:
        return _refresh(everything=everything, now=now, wait=wait, max_days=max_days)
    except OperationalError as error:
        if wait or dberrors.error_code(error) != LOCK_NOT_GRANTED:
            raise
        return RefreshReport(days=0, busy=True)


def _refresh(*, everything: bool, now: datetime | None, wait: bool, max_days: int | None) -> RefreshReport:
    # Created on its own, outside the refresh's transaction: a failed duplicate insert leaves a shared
    # lock on the row, and two refreshes each holding one while asking for the exclusive lock below
    # would deadlock.
    SummaryState.objects.get_or_create(pk=STATE_PK)
    with transaction.atomic():
        state = SummaryState.objects.select_for_update(nowait=not wait).get(pk=STATE_PK)
        started = now or timezone.now()
        if everything or state.refreshed_to is None:
            first = Order.objects.aggregate(first=Min("created_at"))["first"]
            days = _all_days(local_day(first), local_day(started)) if first else []
            changed = list(Order.objects.filter(updated_at__gte=started - LATE_COMMIT)
                           .values_list("pk", "updated_at", "partner", "uniq_id"))
        else:
            changed = list(Order.objects.filter(updated_at__gte=state.refreshed_to - LATE_COMMIT)
                           .values_list("pk", "updated_at", "partner", "uniq_id"))
            # A row this refresh looks at again (stamped within LATE_COMMIT of the last one) and that the
            # last one already saw, as it is now, is in that refresh's figures; only rows new since count.
            seen = state.seen or {}
            keys = {(partner, uniq_id) for pk, updated_at, partner, uniq_id in changed
                    if seen.get(str(pk)) != updated_at.isoformat()}
            days = sorted(_days_of(keys))
        if max_days is not None and len(days) > max_days:
            return RefreshReport(days=0, deferred=len(days))
        if everything or state.refreshed_to is None:
            DailySummary.objects.all().delete()
        for day in days:
            _recompute_day(day)
        state.refreshed_to = started
        # What the next refresh will look at again, as this one saw it.
        state.seen = {str(pk): updated_at.isoformat() for pk, updated_at, _partner, _uniq_id in changed
                      if updated_at >= started - LATE_COMMIT}
        state.save(update_fields=["refreshed_to", "seen"])
    return RefreshReport(days=len(days))


def _all_days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _by_partner(keys):
    grouped = defaultdict(list)
    for partner, uniq_id in keys:
        grouped[partner].append(uniq_id)
    for partner, uniq_ids in grouped.items():
        for start in range(0, len(uniq_ids), CHUNK):
            yield partner, uniq_ids[start:start + CHUNK]


def _days_of(keys) -> set[date]:
    """The days any row of the orders (partner, uniq_id) was received on. Among them are the day each
    order counts on now (its first row's), and the day it counted on at the last refresh, when a late
    row has since moved it to an earlier day."""
    days = set()
    for partner, uniq_ids in _by_partner(keys):
        received = (Order.objects.filter(partner=partner, uniq_id__in=uniq_ids)
                    .values_list("created_at", flat=True))
        days.update(local_day(moment) for moment in received)
    return days


def _reward_ready(extras: str | dict | None) -> bool:
    """Whether the network said the money can be paid out (Admitad's reward_ready extra is true)."""
    if isinstance(extras, str):
        if "reward_ready" not in extras:  # most rows: no need to parse them
            return False
        extras = json.loads(extras)
    return bool(extras) and extras.get("reward_ready") is True


def _recompute_day(day: date) -> None:
    """Replace the day's summary rows with its orders as the ledger's current rows say now.

    One statement: the orders with a row received that day and none before it (each key's rows through
    the unique index's (partner, uniq_id) prefix), and their current rows. A page view may recompute a
    few days, so each costs a round trip, not one per step.
    """
    start, end = day_bounds(day)
    table = connection.ops.quote_name(Order._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    commission = Order._meta.get_field("commission_fee")
    column = commission.get_col(Order._meta.db_table)
    # The backend's own conversions of the money column (on SQLite its exact Decimal from storage).
    converters = connection.ops.get_db_converters(column) + commission.get_db_converters(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.partner, c.currency, c.order_status, c.commission_fee, c.extras"
            f" FROM (SELECT DISTINCT partner, uniq_id FROM {table} WHERE created_at >= %s AND created_at < %s) d"
            f" JOIN {table} c ON c.partner = d.partner AND c.uniq_id = d.uniq_id AND c.is_current = %s"
            f" WHERE NOT EXISTS (SELECT 1 FROM {table} e"
            f" WHERE e.partner = d.partner AND e.uniq_id = d.uniq_id AND e.created_at < %s)",
            [adapt(start), adapt(end), True, adapt(start)],
        )
        rows = cursor.fetchall()
    groups: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for partner, currency, status, amount, extras in rows:
        for converter in converters:
            amount = converter(amount, column, connection)
        group = groups[(partner, currency, status, _reward_ready(extras))]
        group[0] += 1
        group[1] += amount or 0
    DailySummary.objects.filter(day=day).delete()
    DailySummary.objects.bulk_create(
        DailySummary(day=day, partner=partner, currency=currency, order_status=status, reward_ready=ready,
                     orders=count, commission=commission)
        for (partner, currency, status, ready), (count, commission) in groups.items()
    )
