import pytest

from orders.ingest import ingest
from orders.models import Delivery, Order
from orders.replay import outcome_counts, replay_deliveries, replay_delivery
from tests.factories import raw_get

pytestmark = pytest.mark.django_db


def test_replaying_a_fixed_invalid_delivery_creates_its_order(monkeypatch):
    result = ingest(raw_get(order_status="paid"))
    assert result.outcome == "invalid"
    from partners.epn_bz import EpnBz

    monkeypatch.setitem(EpnBz.status_aliases, "paid", "completed")  # the parser fix
    delivery = Delivery.objects.get(pk=result.delivery_id)
    assert replay_delivery(delivery, dry_run=True).outcome == "created"
    assert Order.objects.count() == 0
    replayed = replay_delivery(delivery)
    assert replayed.outcome == "created"
    delivery.refresh_from_db()
    assert delivery.outcome == "created" and delivery.order_id == replayed.order_id
    assert delivery.error == "" and delivery.replayed_at is not None


def test_replay_twice_never_creates_a_second_order():
    first = ingest(raw_get())
    ingest(raw_get())
    results = replay_deliveries(Delivery.objects.order_by("pk"))
    results_again = replay_deliveries(Delivery.objects.order_by("pk"))
    assert Order.objects.count() == 1
    assert outcome_counts(results) == outcome_counts(results_again) == {"created": 1, "duplicate": 1}
    assert Delivery.objects.get(pk=first.delivery_id).outcome == "created"


def test_still_invalid_is_counted():
    ingest(raw_get(revenue="x"))
    results = replay_deliveries(Delivery.objects.all())
    assert outcome_counts(results) == {"invalid": 1} and len(results) == 1
