"""Which row of an order is current: kept by the write path, for the admin's current-status view."""

import threading

import pytest
from django.db import connections

from orders import spool, spooldrain
from orders.ingest import ingest
from orders.models import Order
from tests.factories import raw_get


def current_statuses(uniq_id="EPN-12345"):
    return list(Order.objects.filter(uniq_id=uniq_id, is_current=True).values_list("order_status", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arrivals", "current"),
    [
        (["waiting"], "waiting"),
        (["waiting", "pending"], "pending"),
        (["pending", "waiting"], "waiting"),  # between non-finals the later arrival wins
        (["waiting", "completed"], "completed"),
        (["completed", "waiting"], "completed"),  # a late non-final never undoes a final
        (["rejected", "pending", "waiting"], "rejected"),
        (["completed", "rejected"], "rejected"),  # between finals the later arrival wins
        (["rejected", "completed", "pending"], "completed"),
    ],
)
def test_current_status_rule(arrivals, current):
    for status in arrivals:
        assert ingest(raw_get(order_status=status)).outcome == "created"
    assert current_statuses() == [current]


@pytest.mark.django_db
def test_a_spooled_postback_keeps_its_place_by_arrival(settings, tmp_path):
    # `completed` arrives during an outage and is spooled; `rejected` arrives later and is stored at
    # once; then the spool drains. Between two finals the later arrival wins: `rejected`.
    settings.SPOOL_DIR = tmp_path
    spool.write(raw_get(order_status="completed"))
    ingest(raw_get(order_status="rejected"))
    assert spooldrain.drain().stored == 1
    assert current_statuses() == ["rejected"]


@pytest.mark.django_db
def test_duplicates_and_other_orders_leave_the_flag_alone():
    ingest(raw_get(order_status="completed"))
    ingest(raw_get(order_status="waiting"))
    ingest(raw_get(order_status="waiting"))  # duplicate
    ingest(raw_get(uniq_id="EPN-OTHER", order_status="waiting"))
    assert current_statuses() == ["completed"]
    assert current_statuses("EPN-OTHER") == ["waiting"]


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_arrivals_of_one_order_leave_exactly_one_current_row(caplog):
    """All four statuses of new orders arrive at once, each in its own connection; every order ends
    with one current row, a final one. The writers of one order take turns on its version row, so
    none of them deadlocks and none is retried."""
    statuses = ["waiting", "pending", "completed", "rejected"]
    orders = [f"EPN-RACE-{number}" for number in range(5)]
    barrier = threading.Barrier(len(statuses) * len(orders))
    outcomes, errors = [], []

    def send(uniq_id, status):
        try:
            barrier.wait()
            outcomes.append(ingest(raw_get(uniq_id=uniq_id, order_status=status)).outcome)
        except Exception as error:  # collected and asserted below, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(uniq_id, status)) for uniq_id in orders for status in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert outcomes == ["created"] * len(threads)
    assert [record.getMessage() for record in caplog.records if record.name == "epnhook.ingest"] == []
    for uniq_id in orders:
        current = current_statuses(uniq_id)
        assert len(current) == 1 and current[0] in ("completed", "rejected")
        final_rows = Order.objects.filter(uniq_id=uniq_id, order_status__in=["completed", "rejected"])
        assert current[0] == final_rows.order_by("-created_at", "-pk").first().order_status
