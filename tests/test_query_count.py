"""The webhook's exact query count per outcome, so that a redundant query fails CI instead of slowing ingest.

Each round trip to MariaDB costs every postback time and CPU, and this path is what `make bench`
measures. Django lists the start of a real (non-test) transaction as BEGIN and its end as COMMIT, so
these tests run outside the test-case transaction and count what production sends. The connection's
health check (a ping) and the switch back to autocommit after COMMIT are round trips Django does not
list, and they are not counted here.
"""

import pytest

from orders.models import Delivery, Order
from tests.factories import postback

pytestmark = pytest.mark.django_db(transaction=True)


def test_created_is_one_transaction_of_two_inserts(client, webhook_url, django_assert_num_queries):
    # BEGIN, INSERT order, INSERT ... ON DUPLICATE KEY UPDATE of the order's version row and SELECT of
    # its status rows (orders.current: which one is current), INSERT delivery, COMMIT; nothing from the
    # middleware. The version row is the one statement a new status costs beyond its two rows: it is
    # what makes two statuses of one order written at once, on one server or on two Galera nodes, take
    # turns (or conflict) instead of each leaving its own row current.
    with django_assert_num_queries(6):
        response = client.get(webhook_url, postback())
    assert response.json()["status"] == "created"
    assert Order.objects.count() == 1 and Delivery.objects.count() == 1


def test_a_later_final_status_moves_current_with_one_update(client, webhook_url, django_assert_num_queries):
    client.get(webhook_url, postback())
    # As a new order, plus the UPDATE that takes the flag off the earlier `waiting` row.
    with django_assert_num_queries(7):
        client.get(webhook_url, postback(order_status="completed"))
    assert list(Order.objects.filter(is_current=True).values_list("order_status", flat=True)) == ["completed"]


def test_duplicate_looks_the_order_up_once(client, webhook_url, django_assert_num_queries):
    client.get(webhook_url, postback())
    # BEGIN, INSERT order (refused by the unique key, which undoes that statement alone), SELECT the
    # stored order, INSERT delivery, COMMIT.
    with django_assert_num_queries(5):
        response = client.get(webhook_url, postback())
    assert response.json()["status"] == "duplicate"
    assert Order.objects.count() == 1 and Delivery.objects.count() == 2


def test_conflicting_duplicate_flags_the_order_once(client, webhook_url, django_assert_num_queries):
    client.get(webhook_url, postback())
    # As a duplicate, plus the UPDATE that flags the conflict.
    with django_assert_num_queries(6):
        response = client.get(webhook_url, postback(revenue="9999"))
    assert response.json()["status"] == "duplicate"
    assert Order.objects.get().has_conflict
    # Once flagged, a further conflicting copy does not update the order again.
    with django_assert_num_queries(5):
        client.get(webhook_url, postback(revenue="8888"))


def test_invalid_stores_only_the_delivery(client, webhook_url, django_assert_num_queries):
    # BEGIN, INSERT delivery, COMMIT.
    with django_assert_num_queries(3):
        response = client.get(webhook_url, postback(click_id=None))
    assert response.status_code == 400
    assert Order.objects.count() == 0 and Delivery.objects.get().outcome == Delivery.Outcome.INVALID
