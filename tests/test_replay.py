"""Replaying stored deliveries (ingest.replay_delivery) and the words for it (orders.replay), shared by
manage.py replay_webhook and the admin's replay action."""

import pytest
from django.utils import translation

from orders.ingest import IngestResult, ingest, replay_delivery
from orders.models import Delivery, Order
from orders.replay import FAILED, ReplaySummary, describe, replay_deliveries
from partners.epn_bz import EpnBz
from tests.factories import raw_get

pytestmark = pytest.mark.django_db


def replayed(deliveries, *, dry_run=False) -> ReplaySummary:
    summary = ReplaySummary(dry_run=dry_run)
    replay_deliveries(deliveries, summary)
    return summary


def counts(summary: ReplaySummary) -> tuple[int, ...]:
    return summary.created, summary.duplicate, summary.unchanged, summary.invalid, summary.failed


def test_replaying_a_fixed_invalid_delivery_creates_its_order(monkeypatch):
    result = ingest(raw_get(order_status="paid"))
    assert result.outcome == "invalid"
    monkeypatch.setitem(EpnBz.statuses, "paid", "completed")  # the parser fix
    delivery = Delivery.objects.get(pk=result.delivery_id)
    assert replay_delivery(delivery, dry_run=True).outcome == "created"
    assert Order.objects.count() == 0
    replayed_result = replay_delivery(delivery)
    assert replayed_result.outcome == "created"
    delivery.refresh_from_db()
    assert delivery.outcome == "created" and delivery.order_id == replayed_result.order_id
    assert delivery.error == "" and delivery.replayed_at is not None


def test_replay_twice_never_creates_a_second_order():
    first = ingest(raw_get())
    ingest(raw_get())
    assert counts(replayed(Delivery.objects.order_by("pk"))) == (0, 0, 2, 0, 0)
    assert Order.objects.count() == 1
    assert list(Delivery.objects.order_by("pk").values_list("outcome", flat=True)) == ["created", "duplicate"]
    assert Delivery.objects.get(pk=first.delivery_id).outcome == "created"


def test_still_invalid_is_counted_and_worded_as_a_problem():
    delivery_id = ingest(raw_get(revenue="x")).delivery_id
    summary = replayed(Delivery.objects.all())
    assert counts(summary) == (0, 0, 0, 1, 0)
    [line] = summary.lines
    assert line.problem and line.text.startswith(f"Delivery #{delivery_id}: still invalid: revenue 'x'")


def test_a_dry_run_answers_what_the_replay_then_does(monkeypatch):
    """For each kind of delivery the dry run's outcome, order and conflicting fields are the replay's."""
    first = ingest(raw_get(uniq_id="stored"))
    linked_duplicate = ingest(raw_get(uniq_id="stored"))
    ingest(raw_get(uniq_id="conflict", revenue="10"))
    conflicting = ingest(raw_get(uniq_id="conflict", revenue="11", order_status="paid"))
    fixed = ingest(raw_get(uniq_id="fixed", order_status="paid"))
    still_invalid = ingest(raw_get(uniq_id="broken", revenue="x"))
    monkeypatch.setitem(EpnBz.statuses, "paid", "waiting")  # the parser fix: `conflicting` is a duplicate
    for stored in (first, linked_duplicate, conflicting, fixed, still_invalid):
        delivery = Delivery.objects.get(pk=stored.delivery_id)
        predicted = replay_delivery(delivery, dry_run=True)
        done = replay_delivery(delivery)
        fields = ("outcome", "delivery_id", "conflict_fields", "error")
        assert [getattr(predicted, name) for name in fields] == [getattr(done, name) for name in fields], delivery
        assert predicted.order_id in (done.order_id, None), delivery  # a dry run has no new order's id
    assert Delivery.objects.get(pk=conflicting.delivery_id).conflict_fields == ["revenue"]


def test_a_failure_is_counted_and_the_others_replayed(monkeypatch):
    ingest(raw_get(uniq_id="fine", order_status="paid"))
    ingest(raw_get(uniq_id="bug", order_status="paid"))
    real_parse = EpnBz.parse

    def parse(self, params):
        if params["uniq_id"] == "bug":
            raise ZeroDivisionError("a bug in the parser")
        return real_parse(self, params)

    monkeypatch.setitem(EpnBz.statuses, "paid", "completed")
    monkeypatch.setattr(EpnBz, "parse", parse)
    summary = replayed(Delivery.objects.order_by("pk"))
    assert counts(summary) == (1, 0, 0, 0, 1)
    assert [line.problem for line in summary.lines] == [False, True]
    assert summary.lines[1].text.endswith(": failed: ZeroDivisionError: a bug in the parser")


@pytest.mark.parametrize(("result", "english"), [
    (IngestResult("created", 7, 3), "Delivery #7: stored as order #3."),
    (IngestResult("created", 7), "Delivery #7: would be stored as a new order."),
    (IngestResult("created"), "The postback would be stored as a new order."),
    (IngestResult("duplicate", 7, 3, conflict_fields=("revenue", "currency")),
     "Delivery #7: a duplicate of order #3. Different values: revenue, currency."),
    (IngestResult("duplicate", None, 3), "The postback is a duplicate of order #3."),
    (IngestResult("invalid", 7, error="revenue is too large"), "Delivery #7: still invalid: revenue is too large"),
    (IngestResult("invalid", error="revenue is too large"), "The postback is invalid: revenue is too large"),
    (IngestResult(FAILED, 7, error="ValueError: x"), "Delivery #7: failed: ValueError: x"),
    (IngestResult(FAILED, error="ValueError: x"), "The postback failed: ValueError: x"),
])
def test_every_result_has_its_words_in_both_languages(result, english):
    with translation.override("en"):
        assert describe(result) == english
    with translation.override("ru"):
        russian = describe(result)
    assert russian != english and "#" not in russian


def test_totals_in_both_languages():
    summary = ReplaySummary(dry_run=True, created=2, invalid=1)
    with translation.override("en"):
        assert summary.render() == ("processed 3: created 2, duplicate 0, unchanged 0, still invalid 1, failed 0 "
                                    "(dry run: nothing was written)")
    with translation.override("ru"):
        assert summary.render().startswith("обработано 3: ")
