"""orders.rows.insert: stores exactly the row Model.save() would, and a refused INSERT leaves the
caller's transaction usable (what orders.ingest relies on instead of a savepoint).

Each comparison saves one instance with Model.save(), reads its row back, deletes it, then inserts
an equal instance with rows.insert() and reads that row back: raw column values (so a difference
in how a value is stored, such as SQLite's storage class or MariaDB's DECIMAL text, shows) and what
the ORM makes of them.
"""

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from orders import rows
from orders.models import Delivery, Order

pytestmark = pytest.mark.django_db

VLADIVOSTOK = ZoneInfo("Asia/Vladivostok")  # far from both UTC and the project's Europe/Moscow
# Around midnight, so that a time zone slip also changes the date.
CLICKED = datetime(2026, 3, 9, 23, 59, 58, 123456, tzinfo=VLADIVOSTOK)
ORDERED = datetime(2026, 3, 10, 0, 0, 1, 654321, tzinfo=UTC)
BODY = bytes(range(256)) + "тело 😀 ёлка".encode() + b"\xff\xfe\x00\x80"  # not UTF-8 as a whole


def full_order(**changes) -> Order:
    """Every field given, with the awkward values: Cyrillic and emoji, 9 decimal places, IPv6 in
    non-canonical spelling, aware datetimes in a foreign zone, nested JSON."""
    values = {
        "partner": "epn_bz",
        "uniq_id": "Заказ-😀-1",
        "uniq_id_derived": True,
        "order_number": "№ 42 «ёлка»",
        "click_id": "клик 🙂 user",
        "order_status": "completed",
        "original_status": "Approved_But_Stalled ✓",
        "offer_name": "Магазин 🛒 AliExpress",
        "offer_id": "77",
        "sub": "ж",
        "sub2": "😀" * 10,
        "sub3": "",
        "sub4": "x" * 255,
        "sub5": "я" * 255,
        "revenue": Decimal("12345.123456789"),
        "commission_fee": Decimal("0.000000001"),
        "currency": "TON",
        "ip": "2001:DB8:0:0:0:0:0:1",
        "user_agent": "Mozilla/5.0 (Ж; 😀)",
        "click_time": CLICKED,
        "time_of_order": ORDERED,
        "extras": {"type_id": 2, "reward_ready": True, "offer_type": "ёлка 😀", "conversion_time":
                   "2026-03-10T03:00:01+03:00", "none": None},
        "raw_payload": {"uniq_id": "Заказ-😀-1", "revenue": "12345.123456789",
                        "nested": {"list": [1, "два", None, True, 2.5]}, "emoji 🎉": "✓"},
        "has_conflict": True,
        "is_current": True,
        "created_at": CLICKED + timedelta(hours=1, microseconds=1),
    }
    return Order(**{**values, **changes})


def minimal_order(**changes) -> Order:
    """Only the required fields: everything else from the model's defaults."""
    return Order(**{"partner": "epn_bz", "uniq_id": "U-1", "order_number": "N-1", "click_id": "C-1",
                    "order_status": "waiting", **changes})


def full_delivery(order: Order | None) -> Delivery:
    return Delivery(
        partner="epn_bz",
        source=Delivery.Source.SPOOL,
        method="POST",
        query_string="uniq_id=%D0%97&b=б 😀",
        body=BODY,
        content_type="application/json; charset=utf-8",
        remote_addr="2001:DB8:0000:0000:0000:0000:0000:00FF",
        user_agent="EPN postback bot 😀",
        headers={"User-Agent": "Ж 😀", "X-Forwarded-For": "2001:db8::1, 192.0.2.7", "Content-Length": "42"},
        received_at=CLICKED,
        outcome=Delivery.Outcome.DUPLICATE,
        error="ошибка 😀",
        error_field="revenue",
        order=order,
        conflict_fields=["revenue", "commission_fee"],
        spool_id="00000000001234567890-abcdef",
        processed_at=ORDERED,
        replayed_at=datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/Los_Angeles")),
    )


def minimal_delivery(order: Order | None) -> Delivery:
    return Delivery(partner="epn_bz", method="GET", outcome=Delivery.Outcome.INVALID)


def stored_row(obj) -> dict:
    """The row of `obj` as the driver returns it, column by column."""
    table = connection.ops.quote_name(obj._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [obj.pk])
        names = [column[0] for column in cursor.description]
        (row,) = cursor.fetchall()
    return dict(zip(names, row, strict=True))


def read_back(obj) -> dict:
    """Every concrete field of `obj` as the ORM reads it from its row."""
    fresh = type(obj).objects.get(pk=obj.pk)
    return {field.attname: getattr(fresh, field.attname) for field in obj._meta.concrete_fields}


def saved_then_inserted(instance) -> tuple[dict, dict, dict, dict, object]:
    """Rows (raw, ORM) of `instance` written by save(), then of an equal copy written by insert().

    The copy is made before either write, so it carries the same defaults (a default like
    timezone.now is evaluated once, when the instance is built); the saved row is deleted before
    the insert so that the unique keys do not collide.
    """
    twin = copy.deepcopy(instance)
    instance.save()
    saved_raw, saved_orm = stored_row(instance), read_back(instance)
    instance.delete()
    rows.insert(twin)
    return saved_raw, saved_orm, stored_row(twin), read_back(twin), twin


def without(row: dict, *names: str) -> dict:
    return {key: value for key, value in row.items() if key not in names}


def assert_aware_between(value, before, after):
    assert timezone.is_aware(value), value
    assert before <= value <= after, (before, value, after)


@pytest.mark.parametrize("build", [full_order, minimal_order])
def test_order_row_is_the_one_save_writes(build):
    before = timezone.now()
    saved_raw, saved_orm, raw, orm, order = saved_then_inserted(build())
    after = timezone.now()
    assert set(raw) == {field.column for field in Order._meta.concrete_fields}
    assert without(raw, "id", "updated_at") == without(saved_raw, "id", "updated_at")
    assert without(orm, "id", "updated_at") == without(saved_orm, "id", "updated_at")
    # updated_at is auto_now: stamped at each write, so only its kind and time can be compared.
    for value in (saved_orm["updated_at"], orm["updated_at"]):
        assert_aware_between(value, before, after)
    assert order.updated_at == orm["updated_at"], "the instance holds the value it wrote"
    assert timezone.is_aware(orm["created_at"])
    assert orm["id"] == order.pk != saved_orm["id"]


def test_order_values_survive_the_round_trip():
    order = full_order()
    rows.insert(order)
    stored = Order.objects.get(pk=order.pk)
    assert stored.uniq_id == "Заказ-😀-1" and stored.sub2 == "😀" * 10 and stored.sub5 == "я" * 255
    assert stored.revenue == Decimal("12345.123456789") and stored.commission_fee == Decimal("0.000000001")
    assert stored.ip == "2001:db8::1" and stored.original_status == "Approved_But_Stalled ✓"
    assert stored.extras == full_order().extras and type(stored.extras["type_id"]) is int
    assert stored.click_time == CLICKED and stored.time_of_order == ORDERED
    assert stored.created_at == CLICKED + timedelta(hours=1, microseconds=1)
    assert stored.raw_payload == full_order().raw_payload
    assert stored.uniq_id_derived and stored.has_conflict and stored.is_current


@pytest.mark.mariadb
def test_largest_amount_is_exact_on_mariadb():
    """DECIMAL(24, 9) holds every digit (SQLite would keep a float's 15, whoever writes the row)."""
    largest = Decimal("999999999999999.999999999")
    saved_raw, _, raw, orm, _ = saved_then_inserted(full_order(revenue=largest, commission_fee=-largest))
    assert raw["revenue"] == saved_raw["revenue"] == orm["revenue"] == largest
    assert raw["commission_fee"] == saved_raw["commission_fee"] == -largest


@pytest.mark.parametrize("build", [full_delivery, minimal_delivery])
def test_delivery_row_is_the_one_save_writes(build):
    order = full_order()
    rows.insert(order)
    saved_raw, saved_orm, raw, orm, delivery = saved_then_inserted(build(order))
    assert set(raw) == {field.column for field in Delivery._meta.concrete_fields}
    assert without(raw, "id") == without(saved_raw, "id")
    assert without(orm, "id") == without(saved_orm, "id")
    assert orm["id"] == delivery.pk
    for name in ("received_at", "processed_at"):
        assert timezone.is_aware(orm[name]), name


def test_delivery_values_survive_the_round_trip():
    order = full_order()
    rows.insert(order)
    delivery = full_delivery(order)
    rows.insert(delivery)
    stored = Delivery.objects.get(pk=delivery.pk)
    assert bytes(stored.body) == BODY
    assert stored.order_id == order.pk and stored.order.uniq_id == order.uniq_id
    assert stored.remote_addr == "2001:db8::ff"
    assert stored.headers == full_delivery(None).headers and stored.conflict_fields == ["revenue", "commission_fee"]
    assert stored.received_at == CLICKED and stored.processed_at == ORDERED
    assert stored.replayed_at == full_delivery(None).replayed_at
    assert (stored.query_string, stored.error) == ("uniq_id=%D0%97&b=б 😀", "ошибка 😀")


def test_defaults_are_filled_as_the_model_declares():
    before = timezone.now()
    delivery = minimal_delivery(None)
    rows.insert(delivery)
    stored = Delivery.objects.get(pk=delivery.pk)
    assert (stored.source, bytes(stored.body), stored.headers, stored.conflict_fields) == ("http", b"", {}, [])
    assert stored.spool_id is None and stored.order_id is None and stored.replayed_at is None
    for value in (stored.received_at, stored.processed_at):
        assert_aware_between(value, before, timezone.now())


def test_insert_sets_the_primary_key_and_the_instance_state():
    first, second = full_order(), full_order(uniq_id="other")
    assert first._state.adding and first.pk is None
    rows.insert(first)
    rows.insert(second)
    assert isinstance(first.pk, int) and second.pk > first.pk
    for order in (first, second):
        assert order._state.adding is False and order._state.db == "default"
        assert Order.objects.get(pk=order.pk).uniq_id == order.uniq_id
    # Saving the instance now updates its row instead of inserting another.
    first.offer_name = "renamed"
    first.save()
    assert Order.objects.count() == 2 and Order.objects.get(pk=first.pk).offer_name == "renamed"


def test_duplicate_event_is_an_integrity_error():
    rows.insert(full_order())
    duplicate = full_order(revenue=Decimal("1"), created_at=ORDERED)
    with pytest.raises(IntegrityError):
        rows.insert(duplicate)
    assert duplicate.pk is None and duplicate._state.adding
    assert Order.objects.count() == 1
    # The key is exact: the same id in another case, or another status, is a new event.
    rows.insert(full_order(uniq_id="заказ-😀-1"))
    rows.insert(full_order(order_status="rejected"))
    assert Order.objects.count() == 3


def test_duplicate_spool_entry_is_an_integrity_error():
    rows.insert(full_delivery(None))
    with pytest.raises(IntegrityError):
        rows.insert(full_delivery(None))
    assert Delivery.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_refused_insert_leaves_the_transaction_usable():
    """No savepoint: the refused statement alone is undone, the rows before and after it commit."""
    with transaction.atomic():
        kept = full_order(uniq_id="A")
        rows.insert(kept)
        with pytest.raises(IntegrityError):
            rows.insert(full_order(uniq_id="A"))
        assert not connection.needs_rollback
        later = full_order(uniq_id="B")
        rows.insert(later)
        delivery = full_delivery(later)
        rows.insert(delivery)
        with pytest.raises(IntegrityError):
            rows.insert(full_delivery(None))  # the same spool_id
        Order.objects.filter(pk=kept.pk).update(has_conflict=False)
    assert not connection.in_atomic_block
    assert sorted(Order.objects.values_list("uniq_id", "has_conflict")) == [("A", False), ("B", True)]
    assert list(Delivery.objects.values_list("pk", "order_id")) == [(delivery.pk, later.pk)]


@pytest.mark.django_db(transaction=True)
def test_rows_of_a_transaction_that_fails_later_are_rolled_back():
    """insert() takes part in the caller's transaction: it commits nothing by itself."""
    with pytest.raises(RuntimeError), transaction.atomic():
        rows.insert(full_order(uniq_id="A"))
        rows.insert(full_delivery(None))
        raise RuntimeError("a later step fails")
    assert Order.objects.count() == 0 and Delivery.objects.count() == 0
