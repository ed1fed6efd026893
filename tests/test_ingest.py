"""The ingest service, called directly: the contract every entry point relies on."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import OperationalError, connection

from orders import ingest as ingest_module
from orders import spool, spooldrain
from orders.ingest import ingest, preview, replay_delivery, store
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from partners.epn_bz import EpnBz
from tests.factories import raw_get

pytestmark = pytest.mark.django_db


def test_valid_postback_creates_order_and_delivery_together():
    result = ingest(raw_get())
    assert result.outcome == "created"
    order = Order.objects.get(pk=result.order_id)
    delivery = Delivery.objects.get(pk=result.delivery_id)
    assert (order.partner, order.uniq_id, order.order_status) == ("epn_bz", "EPN-12345", "waiting")
    assert order.revenue == Decimal("1500")
    assert order.raw_payload["order_number"] == "ORDER-001"
    assert delivery.order_id == order.pk and delivery.outcome == "created"
    assert delivery.method == "GET" and "uniq_id=EPN-12345" in delivery.query_string


def test_repeat_is_duplicate_and_stores_only_a_delivery():
    first = ingest(raw_get())
    second = ingest(raw_get())
    assert second.outcome == "duplicate" and second.order_id == first.order_id
    assert Order.objects.count() == 1
    assert Delivery.objects.count() == 2
    assert Delivery.objects.get(pk=second.delivery_id).outcome == "duplicate"
    assert second.conflict_fields == ()
    assert Order.objects.get().has_conflict is False


def test_new_status_of_the_same_order_is_a_new_row():
    ingest(raw_get())
    ingest(raw_get(order_status="completed"))
    ingest(raw_get(order_status="rejected"))
    assert sorted(Order.objects.values_list("order_status", flat=True)) == ["completed", "rejected", "waiting"]


def test_duplicate_with_different_money_is_flagged_never_overwritten():
    ingest(raw_get(revenue="1500", commission_fee="100"))
    result = ingest(raw_get(revenue="1600", commission_fee="100", currency="USD"))
    assert result.outcome == "duplicate"
    assert result.conflict_fields == ("revenue", "currency")
    order = Order.objects.get()
    assert order.revenue == Decimal("1500") and order.currency == "RUB" and order.has_conflict
    assert Delivery.objects.get(pk=result.delivery_id).conflict_fields == ["revenue", "currency"]


def test_invalid_payload_keeps_the_raw_delivery_for_replay():
    raw = raw_get(revenue="lots")
    result = ingest(raw)
    assert result.outcome == "invalid" and result.field == "revenue"
    assert Order.objects.count() == 0
    delivery = Delivery.objects.get(pk=result.delivery_id)
    assert delivery.outcome == "invalid" and delivery.error_field == "revenue"
    assert delivery.query_string == raw.query_string


def test_unknown_parameters_stay_in_the_raw_payload():
    result = ingest(raw_get(campaign="black-friday"))
    assert Order.objects.get(pk=result.order_id).raw_payload["campaign"] == "black-friday"


def test_json_and_form_bodies_and_query_plus_body():
    as_json = RawRequest(partner="epn_bz", method="POST", content_type="application/json",
                         body=b'{"click_id": 5, "order_number": "A", "uniq_id": "J1", "order_status": "waiting",'
                              b' "revenue": 10.50}')
    as_form = RawRequest(partner="epn_bz", method="POST", content_type="application/x-www-form-urlencoded",
                         body=b"click_id=5&order_number=B&uniq_id=F1&order_status=pending")
    mixed = RawRequest(partner="epn_bz", method="POST", query_string="click_id=5&order_number=C",
                       content_type="application/x-www-form-urlencoded", body=b"uniq_id=M1&order_status=hold")
    for raw in (as_json, as_form, mixed):
        assert ingest(raw).outcome == "created", raw
    assert Order.objects.get(uniq_id="J1").revenue == Decimal("10.50")
    assert Order.objects.get(uniq_id="M1").order_status == "pending"


@pytest.mark.parametrize(("body", "content_type", "field"), [
    (b"[1, 2]", "application/json", "body"),
    (b"{not json", "application/json", "body"),
    (b'{"revenue": NaN}', "application/json", "body"),
    (b"\xff\xfe", "application/x-www-form-urlencoded", "body"),
    (b"<xml/>", "text/xml", "content_type"),
])
def test_unreadable_bodies_are_invalid(body, content_type, field):
    result = ingest(RawRequest(partner="epn_bz", method="POST", body=body, content_type=content_type))
    assert result.outcome == "invalid" and result.field == field
    assert Delivery.objects.get(pk=result.delivery_id).body == body


def test_repeated_parameter_with_different_values_is_rejected():
    raw = RawRequest(partner="epn_bz", method="GET",
                     query_string="click_id=1&order_number=A&order_status=waiting&revenue=1&revenue=2")
    assert ingest(raw).field == "revenue"
    same_twice = RawRequest(partner="epn_bz", method="GET",
                            query_string="click_id=1&order_number=A&order_status=waiting&revenue=1&revenue=1")
    assert ingest(same_twice).outcome == "created"


def test_preview_answers_what_store_would_and_writes_nothing():
    ingest(raw_get())
    retired = RawRequest(partner="retired_network", method="GET", query_string="x=1")
    for raw in (raw_get(uniq_id="new"), raw_get(), raw_get(revenue="1600"), raw_get(revenue="lots"), retired):
        before = list(Order.objects.values()), list(Delivery.objects.values())
        predicted = preview(raw)
        assert (list(Order.objects.values()), list(Delivery.objects.values())) == before, raw
        stored = store(raw)
        fields = ("outcome", "conflict_fields", "error", "field", "uniq_id", "order_status")
        assert [getattr(predicted, name) for name in fields] == [getattr(stored, name) for name in fields], raw
        assert predicted.delivery_id is None and predicted.order_id in (stored.order_id, None), raw
    assert stored.field == "partner" and "no parser is registered for partner 'retired_network'" in stored.error


LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def updated(uniq_id="EPN-12345") -> dict[str, bool]:
    """For each status of the order: has its row been written since LONG_AGO?"""
    return {status: at > LONG_AGO for status, at in
            Order.objects.filter(uniq_id=uniq_id).values_list("order_status", "updated_at")}


def test_every_write_of_an_order_moves_its_updated_at():
    ingest(raw_get(order_status="waiting"))
    Order.objects.update(updated_at=LONG_AGO)
    ingest(raw_get(order_status="completed"))  # takes the current flag off `waiting`
    assert updated() == {"waiting": True, "completed": True}
    Order.objects.update(updated_at=LONG_AGO)
    ingest(raw_get(order_status="pending"))  # a late non-final: inserted, then not current; `completed` stays
    assert updated() == {"waiting": False, "completed": False, "pending": True}
    Order.objects.update(updated_at=LONG_AGO)
    ingest(raw_get(order_status="waiting", revenue="1"))  # the conflict flag
    assert updated() == {"waiting": True, "completed": False, "pending": False}
    Order.objects.update(updated_at=LONG_AGO)
    ingest(raw_get(order_status="waiting", revenue="2"))  # flagged already: nothing written
    assert updated() == {"waiting": False, "completed": False, "pending": False}


def test_no_update_of_an_order_leaves_updated_at_behind(monkeypatch):
    """Every UPDATE of the orders table the write path sends, on every path (new statuses in any order,
    duplicates, conflicts, replay), sets updated_at: a write added without it fails here."""
    table = Order._meta.db_table
    set_clauses = []

    def watch(execute, sql, params, many, context):
        match = re.match(rf"UPDATE [`\"]{table}[`\"] SET (.*?) WHERE ", sql, re.DOTALL)
        if match:
            set_clauses.append(match[1])
        return execute(sql, params, many, context)

    invalid = ingest(raw_get(uniq_id="replayed", order_status="paid"))
    with connection.execute_wrapper(watch):
        for status in ("pending", "waiting", "completed", "pending", "rejected"):
            ingest(raw_get(order_status=status))
        ingest(raw_get(order_status="completed", revenue="999"))
        monkeypatch.setitem(EpnBz.statuses, "paid", "completed")
        replay_delivery(Delivery.objects.get(pk=invalid.delivery_id))
        ingest(raw_get(uniq_id="replayed", order_status="completed", revenue="1"))
    assert len(set_clauses) >= 4, "the scenario no longer exercises the updates"
    assert [clause for clause in set_clauses if "updated_at" not in clause] == []


def test_raw_request_round_trips_through_json():
    raw = RawRequest(partner="epn_bz", method="POST", body=b"\x00\xffbinary", query_string="a=%D0%B9")
    assert RawRequest.from_json(raw.to_json()) == raw


def test_transient_database_error_is_retried_then_succeeds(monkeypatch, caplog):
    calls = []
    real_store = ingest_module.store

    def flaky(raw):
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError(2013, "Lost connection to server during query")
        return real_store(raw)

    monkeypatch.setattr(ingest_module, "store", flaky)
    assert ingest(raw_get()).outcome == "created"
    assert len(calls) == 3
    assert spool.backlog() == 0
    # One line per retry, with the error's code: how the cost of retries is counted (docs/SCALING.md).
    retries = [record for record in caplog.records if record.name == "epnhook.ingest"]
    assert [(record.levelname, record.attempt, record.error_code) for record in retries] == [
        ("WARNING", 1, 2013), ("WARNING", 2, 2013)]
    assert "uniq_id=EPN-12345 status=waiting: MariaDB error 2013" in retries[0].getMessage()


class IngestClock:
    """Stands in for the `time` module inside orders.ingest: only ingest's own pauses move it, so how
    many attempts fit in INGEST_DEADLINE does not depend on how busy the machine is."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_persistent_database_error_spools_and_alerts(monkeypatch, mailoutbox, settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    calls = []

    def down(raw):
        calls.append(1)
        raise OperationalError(2003, "Can't connect to server on '127.0.0.1'")

    monkeypatch.setattr(ingest_module, "store", down)
    clock = IngestClock()
    monkeypatch.setattr(ingest_module, "time", clock)
    result = ingest(raw_get())
    # Refused at once each time: every attempt fits, since 4 pauses (at most 0.75 s) and the longest
    # attempt (connect + read timeout, 4 s) stay within the 5 s deadline, on any machine.
    assert result.outcome == "spooled" and len(calls) == settings.INGEST_ATTEMPTS == 5
    assert clock.now - 1000.0 <= settings.INGEST_DEADLINE
    assert spool.backlog() == 1
    ingest(raw_get(uniq_id="second"))
    from orders import alerts
    alerts.wait_for_pending()
    assert len(mailoutbox) == 1, "the second alert within the throttle window must be suppressed"
    assert "spool" in mailoutbox[0].body

    monkeypatch.undo()
    settings.SPOOL_DIR = tmp_path / "spool"
    report = spooldrain.drain()
    assert report.stored == 2 and report.remaining == 0
    assert set(Order.objects.values_list("uniq_id", flat=True)) == {"EPN-12345", "second"}
    assert Delivery.objects.filter(source="spool").count() == 2


def test_configuration_error_is_not_retried(monkeypatch, settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    calls = []

    def denied(raw):
        calls.append(1)
        raise OperationalError(1045, "Access denied for user 'epn'@'localhost'")

    monkeypatch.setattr(ingest_module, "store", denied)
    assert ingest(raw_get()).outcome == "spooled"
    assert len(calls) == 1


def test_our_own_bug_is_recorded_as_an_error_delivery_and_raised(monkeypatch):
    def broken(raw):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(ingest_module, "store", broken)
    with pytest.raises(ZeroDivisionError):
        ingest(raw_get())
    delivery = Delivery.objects.get()
    assert delivery.outcome == "error" and "ZeroDivisionError" in delivery.error


def test_drain_twice_stores_once(settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    entry = spool.write(raw_get())
    path = spool.incoming_dir() / f"{entry}.json"
    copy = path.read_bytes()
    assert spooldrain.drain().stored == 1
    path.write_bytes(copy)  # as if the process died between commit and unlink
    report = spooldrain.drain()
    assert report.already_stored == 1 and report.stored == 0
    assert Delivery.objects.count() == 1 and Order.objects.count() == 1


def test_store_is_single_attempt():
    assert store(raw_get()).outcome == "created"
