"""The read-only API's queries and keys: what `/api/v1/` answers (orders.api is the thin HTTP layer).

The list is the orders at their current status (the Order rows with is_current, see orders.current), in
(updated_at, id) order, paged by keyset: a cursor names the position of the last row a page returned,
and the next page is the rows after it. The contract a consumer relies on:

- A walk from no cursor to a page with `has_more` false returns each order that does not change during
  it exactly once, however many orders there are: the position only moves forward, and no row moves
  backward, because every write of an Order row stamps updated_at with the time of the write
  (auto_now, OrderQuerySet.update).
- An order that changes during the walk (a new status becomes current, a conflict is flagged) moves to
  the end: it appears again later with its new values, and its old position is gone. So an order is
  never skipped, but may be seen twice; the later appearance is the newer state.
- The last page's `next_cursor` is where to resume: asking with it later returns what changed since.
- A row appears only once it is API_SETTLE_SECONDS old. A write stamps updated_at when it is made and
  becomes visible when its transaction commits, a little later; a row that became visible after a
  consumer's cursor had passed its time would be skipped for good. Writes commit within the ingest
  deadline, so holding each row back for longer than that closes the gap (the setting is checked
  against INGEST_DEADLINE at start-up).
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import ApiKey, Order

DEFAULT_LIMIT = 100
# A page of 500 stays within the 50 ms a page may take (bench/api_pages.py); 1000 took about 80 ms.
MAX_LIMIT = 500
# A key is this prefix and 32 random bytes, URL-safe base64: the prefix tells a leaked string for what
# it is (secret scanners look for such prefixes); the bytes are what makes it unguessable.
KEY_PREFIX = "epnk_"
KEY_BYTES = 32
# How many characters of a key the admin shows: the prefix and a few random ones.
VISIBLE_CHARACTERS = len(KEY_PREFIX) + 6
# last_used_at is written when it is older than this, so that reading pages costs no write per page.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class CursorError(ValueError):
    """A cursor that this API did not hand out."""


# What the API shows of an order at its current status, by the API's name: (name, Order field). Read
# with values(), not as model instances: building a thousand instances cost more than the queries.
ORDER_FIELDS = (
    ("partner", "partner"), ("uniq_id", "uniq_id"), ("order_number", "order_number"), ("click_id", "click_id"),
    ("offer_id", "offer_id"), ("offer_name", "offer_name"), ("status", "order_status"),
    ("original_status", "original_status"), ("revenue", "revenue"), ("commission_fee", "commission_fee"),
    ("currency", "currency"), ("conflict", "has_conflict"), ("time_of_order", "time_of_order"),
    ("received_at", "created_at"), ("updated_at", "updated_at"),
)
# ... and of each status event in an order's history.
EVENT_FIELDS = (
    ("status", "order_status"), ("original_status", "original_status"), ("revenue", "revenue"),
    ("commission_fee", "commission_fee"), ("currency", "currency"), ("conflict", "has_conflict"),
    ("current", "is_current"), ("received_at", "created_at"),
)
MONEY_FIELDS = ("revenue", "commission_fee")


@dataclass(frozen=True)
class Page:
    # Records by ORDER_FIELDS' names, money as strings (record()).
    orders: list[dict]
    # Where the next page starts; on the last page, where to resume later. None only when the walk has
    # returned nothing yet (ask again without a cursor).
    next_cursor: str | None
    has_more: bool


def encode_cursor(updated_at: datetime, pk: int) -> str:
    """The position after the row (updated_at, pk): opaque to consumers (URL-safe base64 of the two)."""
    raw = json.dumps([updated_at.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, pk = json.loads(raw)
        updated_at = datetime.fromisoformat(moment)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise CursorError("not a cursor this API returned") from error
    if updated_at.tzinfo is None or not isinstance(pk, int) or isinstance(pk, bool):
        raise CursorError("not a cursor this API returned")
    return updated_at, pk


def list_orders(*, partner: str | None = None, click_id: str | None = None, status: str | None = None,
                updated_since: datetime | None = None, cursor: str | None = None,
                limit: int = DEFAULT_LIMIT) -> Page:
    """One page of current orders after `cursor`, oldest change first (see the module's contract).

    `limit` must be 1..MAX_LIMIT; a bad cursor raises CursorError. Two queries: the page's positions
    (page_query, which reads the index alone), then its rows by primary key. Asked for whole rows in one
    query, MariaDB walks the index from its first entry instead of seeking to the cursor (measured at
    1M orders: 150 ms a page half-way, against under a millisecond for the positions).

    A row that changed between the two queries is no longer what the page's position says; it is
    left out if it is no longer current, and shown with its new values if it is (either way it appears
    again at its new position). The cursor is the position the first query read, so nothing after it
    is skipped."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}")
    positions = list(page_query(partner=partner, click_id=click_id, status=status, updated_since=updated_since,
                                cursor=cursor, limit=limit))
    has_more = len(positions) > limit
    positions = positions[:limit]
    # The JSON documents are the bulk of a row and the API shows neither.
    rows = {row["pk"]: row for row in Order.objects.filter(is_current=True, pk__in=[pk for pk, _at in positions])
            .values("pk", *(field for _name, field in ORDER_FIELDS))}
    orders = [record(rows[pk], ORDER_FIELDS) for pk, _updated_at in positions if pk in rows]
    if positions:
        last_pk, last_updated_at = positions[-1]
        cursor = encode_cursor(last_updated_at, last_pk)
    return Page(orders=orders, next_cursor=cursor, has_more=has_more)


def page_query(*, partner: str | None = None, click_id: str | None = None, status: str | None = None,
               updated_since: datetime | None = None, cursor: str | None = None, limit: int = DEFAULT_LIMIT):
    """The query of a page's positions: (pk, updated_at) of limit + 1 rows (the extra one tells whether
    there are more), in keyset order, read from one of the order_api_* indexes alone (bench/api_pages.py
    prints each filter's plan)."""
    rows = Order.objects.filter(is_current=True,
                                updated_at__lte=timezone.now() - timedelta(seconds=settings.API_SETTLE_SECONDS))
    if partner is not None:
        rows = rows.filter(partner=partner)
    if click_id is not None:
        rows = rows.filter(click_id=click_id)
    if status is not None:
        rows = rows.filter(order_status=status)
    if updated_since is not None:
        rows = rows.filter(updated_at__gte=updated_since)
    if cursor is not None:
        updated_at, pk = decode_cursor(cursor)
        # Written as a range on updated_at plus the tie-break, which every database plans as an index
        # range; the row comparison (updated_at, id) > (%s, %s) is not one on every MariaDB version.
        rows = rows.filter(Q(updated_at__gt=updated_at) | Q(updated_at=updated_at, pk__gt=pk),
                           updated_at__gte=updated_at)
    return rows.order_by("updated_at", "pk").values_list("pk", "updated_at")[: limit + 1]


def order_history(partner: str, uniq_id: str) -> dict | None:
    """The order at its current status (ORDER_FIELDS) with `history`, every status event of it in
    arrival order (EVENT_FIELDS); None if the order is unknown."""
    fields = {field for _name, field in ORDER_FIELDS + EVENT_FIELDS}
    rows = list(Order.objects.filter(partner=partner, uniq_id=uniq_id).order_by("created_at", "pk")
                .values(*fields))
    current = next((row for row in rows if row["is_current"]), None)
    if current is None:
        return None
    return {**record(current, ORDER_FIELDS), "history": [record(row, EVENT_FIELDS) for row in rows]}


def record(row: dict, fields) -> dict:
    """`row` (from values()) under the API's names; money fixed-point with every stored place
    ("0.000000001", never str()'s "1E-9"), as a string so that no consumer reads it as a float."""
    result = {name: row[field] for name, field in fields}
    for name in MONEY_FIELDS:
        if name in result and result[name] is not None:
            result[name] = format(result[name], "f")
    return result


# --- keys ---------------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def assign_new_key(api_key: ApiKey) -> str:
    """Give the unsaved `api_key` a new random key; returns the plain key, which is stored nowhere."""
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
    api_key.prefix = key[:VISIBLE_CHARACTERS]
    api_key.key_hash = hash_key(key)
    return key


def create_key(consumer: str) -> tuple[ApiKey, str]:
    """A new saved key for `consumer`, and the plain key."""
    api_key = ApiKey(consumer=consumer)
    key = assign_new_key(api_key)
    api_key.save()
    return api_key, key


def authenticate(key: str) -> ApiKey | None:
    """The live (not revoked) ApiKey whose key this is, or None.

    Found by its hash through the unique index, so the lookup reveals nothing about how much of a
    guess was right; the final comparison of the hashes is constant-time as well."""
    presented = hash_key(key)
    api_key = ApiKey.objects.filter(key_hash=presented, revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, presented):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def revoke(keys) -> int:
    """Revoke the live keys of the queryset `keys`; returns how many were live."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
