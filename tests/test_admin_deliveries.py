"""The delivery admin: the raw log's list and detail, and the replay action."""

import pytest
from django.urls import reverse

from orders import admin as orders_admin
from orders.models import Delivery, Order
from partners.base import OrderStatus
from partners.epn_bz import EpnBz
from tests import admin_helpers
from tests.admin_helpers import load_orders

pytestmark = pytest.mark.django_db
staff_client = admin_helpers.staff_client  # the shared fixture, used by name

LIST = "admin:orders_delivery_changelist"


@pytest.mark.parametrize(
    ("query", "expected"),
    [({}, 6), ({"outcome__exact": "duplicate"}, 1), ({"outcome__exact": "invalid"}, 1), ({"source__exact": "spool"}, 0),
     ({"partner": "epn_bz"}, 6)],
)
def test_list_filters(staff_client, query, expected):
    load_orders()
    response = staff_client.get(reverse(LIST), query)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == expected


@pytest.mark.parametrize("query", [
    {"received_at__to": "9999-12-31"}, {"received_at__from": "0001-01-01"}, {"received_at__from": "x"},
    {"error__icontains": "revenue"}, {"foo": "1"},
], ids=lambda query: "&".join(f"{k}={v}" for k, v in query.items()))
def test_bad_filter_input_sends_the_list_back_to_its_start(staff_client, query):
    load_orders()
    response = staff_client.get(reverse(LIST), query)
    assert response.status_code == 302 and response.url.endswith("?e=1")


def test_detail_shows_the_request_as_received(staff_client):
    load_orders()
    invalid = Delivery.objects.get(outcome="invalid")
    Delivery.objects.filter(pk=invalid.pk).update(headers={"User-Agent": "EPN bot"}, body=b"x=\xd0\xa4")
    response = staff_client.get(reverse("admin:orders_delivery_change", args=[invalid.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "revenue=not+money" in content and "x=Ф" in content and "GET" in content
    assert "&quot;User-Agent&quot;: &quot;EPN bot&quot;" in content
    assert 'name="error"' not in content  # read-only


def test_every_status_and_outcome_has_a_badge_colour():
    """A status or outcome added to its vocabulary must get a badge colour too, not a KeyError on the list."""
    assert set(orders_admin.STATUS_COLOURS) == set(OrderStatus)
    assert set(orders_admin.OUTCOME_COLOURS) == set(Delivery.Outcome)


def test_replay_action_uses_the_replay_path_and_reports_each_delivery(staff_client, monkeypatch):
    load_orders()
    invalid = Delivery.objects.get(outcome="invalid")
    duplicate = Delivery.objects.get(outcome="duplicate")
    Delivery.objects.filter(pk=invalid.pk).update(query_string="click_id=9&order_number=N-9&uniq_id=EPN-9"
                                                                "&order_status=paid&revenue=5")
    monkeypatch.setitem(EpnBz.statuses, "paid", "completed")  # the parser fix being replayed
    response = staff_client.post(
        reverse(LIST), {"action": "replay", "_selected_action": [invalid.pk, duplicate.pk]}, follow=True
    )
    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    new_order = Order.objects.get(uniq_id="EPN-9")
    # The duplicate was linked to its order already: replaying it changed nothing, and only the totals say so.
    assert shown == [
        ("success", f"Delivery #{invalid.pk}: stored as order #{new_order.pk}."),
        ("info", "processed 2: created 1, duplicate 0, unchanged 1, still invalid 0, failed 0"),
    ]
    invalid.refresh_from_db()
    assert invalid.outcome == "created" and invalid.replayed_at is not None and new_order.is_current


def test_replay_of_too_many_deliveries_is_refused(staff_client, monkeypatch):
    load_orders()
    monkeypatch.setattr(orders_admin, "REPLAY_LIMIT", 2)
    response = staff_client.post(
        reverse(LIST), {"action": "replay", "_selected_action": list(Delivery.objects.values_list("pk", flat=True))},
        follow=True,
    )
    assert [str(message) for message in response.context["messages"]] == [
        "More than 2 deliveries selected: replay them with manage.py replay_webhook instead."
    ]
    assert not Delivery.objects.filter(replayed_at__isnull=False).exists()
