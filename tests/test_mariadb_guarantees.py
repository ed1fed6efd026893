"""Guarantees that only a real MariaDB can prove: run with DATABASE_URL=mysql://..."""

import threading
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client

from orders.ingest import ingest
from orders.models import Delivery, Order
from tests.factories import postback, raw_get

pytestmark = [pytest.mark.mariadb, pytest.mark.django_db(transaction=True)]


def test_session_is_strict_utf8mb4_with_a_short_lock_wait(settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.sql_mode, @@SESSION.innodb_lock_wait_timeout, @@character_set_connection")
        sql_mode, lock_wait, charset = cursor.fetchone()
    assert "STRICT_TRANS_TABLES" in sql_mode
    assert lock_wait == settings.DATABASE_LOCK_WAIT_TIMEOUT < 5
    assert charset == "utf8mb4"


def test_unique_constraint_is_in_the_database():
    Order.objects.create(partner="epn_bz", uniq_id="U1", order_number="1", click_id="1", order_status="waiting")
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(partner="epn_bz", uniq_id="U1", order_number="2", click_id="2", order_status="waiting")


def test_identifiers_are_case_sensitive_keys():
    assert ingest(raw_get(uniq_id="abc-1")).outcome == "created"
    assert ingest(raw_get(uniq_id="ABC-1")).outcome == "created"
    assert ingest(raw_get(uniq_id="abc-1")).outcome == "duplicate"
    assert Order.objects.count() == 2


def test_fifty_concurrent_identical_postbacks_store_one_order(webhook_url):
    barrier = threading.Barrier(50)
    statuses, errors = [], []

    def send():
        try:
            client = Client()
            barrier.wait()
            response = client.get(webhook_url, postback())
            statuses.append((response.status_code, response.json()["status"]))
        except Exception as error:  # collected and asserted below, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(statuses) == 50
    assert {code for code, _ in statuses} == {200}
    assert sorted(status for _, status in statuses).count("created") == 1
    assert Order.objects.count() == 1
    assert Delivery.objects.count() == 50
    assert Delivery.objects.filter(outcome="duplicate").count() == 49


def test_cyrillic_and_emoji_round_trip_exactly(client, webhook_url):
    text = "Заказ «Ёлка» — №5 😀 ẞ"
    client.get(webhook_url, postback(offer_name=text, sub=text, click_id="пользователь-1"))
    order = Order.objects.get()
    assert order.offer_name == text and order.sub == text and order.click_id == "пользователь-1"
    assert order.raw_payload["offer_name"] == text
    assert text in Delivery.objects.get().query_string or "%D0%97" in Delivery.objects.get().query_string


def test_ton_keeps_nine_decimal_places(client, webhook_url):
    client.get(webhook_url, postback(currency="TON", revenue="123456789012345.123456789", commission_fee="0.000000001"))
    order = Order.objects.get()
    assert order.revenue == Decimal("123456789012345.123456789")
    assert order.commission_fee == Decimal("0.000000001")
    assert isinstance(order.revenue, Decimal)


def test_conflicting_duplicate_is_flagged_and_order_kept(client, webhook_url):
    client.get(webhook_url, postback(revenue="1500"))
    response = client.get(webhook_url, postback(revenue="1499.99"))
    assert response.status_code == 200 and response.json()["status"] == "duplicate"
    order = Order.objects.get()
    assert order.revenue == Decimal("1500") and order.has_conflict
    assert Delivery.objects.get(outcome="duplicate").conflict_fields == ["revenue"]


def test_invalid_delivery_with_binary_body_is_kept(client, webhook_url):
    response = client.post(webhook_url, b"\xff\xfe\x00", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert Delivery.objects.get().body == b"\xff\xfe\x00"


def test_health_on_mariadb(client):
    assert client.get("/health").json()["database"] == "ok"


def test_moscow_times_are_stored_as_the_same_instant(client, webhook_url):
    # MariaDB's DATETIME has no zone: Django must store UTC and read it back aware, or an order's
    # time would shift by three hours between the partner's clock and the admin.
    client.get(webhook_url, postback(click_time="2024-03-01 12:30:00", time_of_order="2024-12-31 23:59:59"))
    order = Order.objects.get()
    moscow = ZoneInfo("Europe/Moscow")
    assert order.click_time == datetime(2024, 3, 1, 12, 30, tzinfo=moscow)
    assert order.time_of_order == datetime(2024, 12, 31, 23, 59, 59, tzinfo=moscow)
    assert order.click_time.tzinfo is not None


def test_derived_key_makes_a_repeat_without_uniq_id_a_duplicate(client, webhook_url):
    first = client.get(webhook_url, postback(uniq_id=None, offer_id="42"))
    again = client.get(webhook_url, postback(uniq_id=None, offer_id="42"))
    assert first.json()["status"] == "created" and again.json()["status"] == "duplicate"
    assert Order.objects.get().uniq_id_derived


def test_every_table_is_innodb_with_a_primary_key():
    """What a Galera cluster needs of every table (docs/SCALING.md): InnoDB, the one engine it replicates,
    and a primary key, without which each replicated row change is a full scan on every other node and
    rows may end up in a different order on each. Django's own tables and the many-to-many ones included."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.table_name, t.engine, c.constraint_name FROM information_schema.tables t "
            "LEFT JOIN information_schema.table_constraints c ON c.table_schema = t.table_schema "
            "AND c.table_name = t.table_name AND c.constraint_type = 'PRIMARY KEY' "
            "WHERE t.table_schema = DATABASE() AND t.table_type = 'BASE TABLE'"
        )
        tables = cursor.fetchall()
    assert {"orders_order", "orders_orderversion", "auth_user_groups", "django_session"} <= {row[0] for row in tables}
    assert [(name, engine) for name, engine, primary_key in tables if engine != "InnoDB" or primary_key is None] == []
