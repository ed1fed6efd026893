"""The transactional outbox: events for the site, written with the ledger, sent by orders.sender.

Contract:
- `record()` is called by orders.ingest only, inside the transaction that wrote the ledger, for a change of
  an order's current status or a newly flagged money conflict; so an event exists exactly when its write
  was committed. Nothing is written while OUTBOUND_URL is unset (`enabled()`).
- The event's body is built once, here, and stored as the exact text the sender signs and sends.
- `backlog()` is what the admin (and the overview) show: how many events are not delivered yet, and since when.
"""

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from partners.base import MONEY_DECIMAL_PLACES, ParsedOrder

from .models import Order, OutboundEvent

EVENT_ID_PREFIX = "evt_"
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)


def enabled() -> bool:
    """Whether events are written at all: only with an endpoint to send them to."""
    return bool(settings.OUTBOUND_URL)


@dataclass(frozen=True)
class Change:
    """What the ledger write did that the site must hear of: `order` became the current status (after
    `previous_status`), or, for a conflict, `order` was repeated with different money (`received`)."""

    type: str
    order: Order
    previous_status: str | None = None
    received: dict = field(default_factory=dict)

    @classmethod
    def status_changed(cls, order: Order, previous_status: str | None) -> "Change":
        return cls(OutboundEvent.Type.STATUS_CHANGED, order, previous_status)

    @classmethod
    def conflict(cls, order: Order, parsed: ParsedOrder, fields: tuple[str, ...]) -> "Change":
        return cls(OutboundEvent.Type.CONFLICT, order, received={name: getattr(parsed, name) for name in fields})


def record(change: Change, delivery_id: int | None) -> None:
    """Write the event of `change`; call inside the ledger write's transaction (it is refused outside one).

    One INSERT written out here rather than through orders.rows: every postback of an install with an endpoint
    pays for it, and the values need no per-field preparation (bench/run.py --outbox measures the cost)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("an outbound event is written in the transaction of its ledger write only")
    order = change.order
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection), [
            EVENT_ID_PREFIX + secrets.token_hex(13), change.type, order.partner, order.uniq_id, order.pk,
            body(change, delivery_id), now, OutboundEvent.State.PENDING, now,
        ])


def _insert_sql(connection) -> str:
    quote = connection.ops.quote_name
    return (f"INSERT INTO {quote(OutboundEvent._meta.db_table)} (public_id, type, partner, uniq_id, order_id, body, "
            "created_at, state, attempts, next_attempt_at, last_error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, %s, '')")


def body(change: Change, delivery_id: int | None) -> str:
    """The event as Standard Webhooks' payload: {type, timestamp, data}; everything a site needs to credit
    a user, money as strings with all their places (never floats), times in ISO 8601 UTC."""
    order = change.order
    data = {
        "partner": order.partner,
        "uniq_id": order.uniq_id,
        "order_number": order.order_number,
        "click_id": order.click_id,
        "offer": {"id": order.offer_id, "name": order.offer_name},
        "status": order.order_status,
        "previous_status": change.previous_status,
        "original_status": order.original_status,
        "revenue": _money(order.revenue),
        "commission_fee": _money(order.commission_fee),
        "currency": order.currency,
        "time_of_order": _time(order.time_of_order),
        "received_at": _time(order.created_at),
        "delivery_id": delivery_id,
    }
    if change.type == OutboundEvent.Type.CONFLICT:
        # The stored order keeps its values (the ledger is written once); the repeat said otherwise.
        data["conflict"] = {"fields": list(change.received),
                            "received": {name: _money(value) if name != "currency" else value
                                         for name, value in change.received.items()}}
    document = {"type": change.type, "timestamp": _time(timezone.now()), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Backlog:
    count: int
    oldest: datetime | None


def backlog() -> Backlog:
    """The events not delivered yet (pending or failed) and when the oldest of them was written: two reads
    of the (state, id) index, whatever the size of the delivered history."""
    undelivered = OutboundEvent.objects.filter(state__in=[OutboundEvent.State.PENDING, OutboundEvent.State.FAILED])
    totals = undelivered.aggregate(count=Count("id"), first=Min("id"))
    oldest = None
    if totals["first"] is not None:
        oldest = OutboundEvent.objects.filter(pk=totals["first"]).values_list("created_at", flat=True).first()
    return Backlog(totals["count"], oldest)


def resend(events) -> int:
    """Send the events again from the start of the schedule (their ids and bodies unchanged); returns how many.
    A failed event held back the later events of its order: resending it releases them in turn."""
    return OutboundEvent.objects.filter(pk__in=[event.pk for event in events]).update(
        state=OutboundEvent.State.PENDING, attempts=0, next_attempt_at=timezone.now(), delivered_at=None,
    )


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.quantize(_MONEY_QUANTUM), "f")


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
