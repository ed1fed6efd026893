"""The outbox (orders.outbox) and its sender (orders.sender), in process, against a real receiver on loopback
that verifies every request with `standardwebhooks`."""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from orders import alerts, health, outbox
from orders.ingest import ingest, replay_delivery, store
from orders.models import Delivery, Order, OutboundAttempt, OutboundEvent
from orders.sender import Sender, parse_retry_after
from orders.sender import exclusive as sender_lock
from partners.epn_bz import EpnBz
from tests.factories import load_settings, raw_get
from tests.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.django_db

# Short enough for a test, as long as the production schedule (eight attempts).
FAST_SCHEDULE = [0, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]


@pytest.fixture
def receiver():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def outbound(settings, receiver, tmp_path):
    settings.ALERT_STATE_DIR = tmp_path / "alerts"  # this test's own alert throttle
    settings.OUTBOUND_URL = receiver.url
    settings.OUTBOUND_SECRET = SECRET
    settings.OUTBOUND_TIMEOUT = 0.5
    settings.OUTBOUND_RETRY_SCHEDULE = FAST_SCHEDULE
    return receiver


def drain(timeout: float = 30) -> Sender:
    """Run the sender until no event is pending (or fail after `timeout`)."""
    sender = Sender()
    deadline = time.monotonic() + timeout
    while OutboundEvent.objects.filter(state=OutboundEvent.State.PENDING).exists():
        assert time.monotonic() < deadline, "the outbox did not drain"
        if not sender.run_pass().attempted:
            time.sleep(0.02)
    return sender


def events() -> list[dict]:
    return [json.loads(body) for body in OutboundEvent.objects.order_by("pk").values_list("body", flat=True)]


def test_no_endpoint_writes_no_event():
    ingest(raw_get())
    ingest(raw_get(order_status="completed"))
    assert Order.objects.count() == 2
    assert OutboundEvent.objects.count() == 0


def test_every_current_status_change_and_nothing_else_is_an_event(outbound):
    ingest(raw_get(uniq_id="A", order_status="completed"))
    ingest(raw_get(uniq_id="A", order_status="waiting"))  # late: completed stays current
    ingest(raw_get(uniq_id="B", order_status="waiting"))
    ingest(raw_get(uniq_id="B", order_status="waiting"))  # a duplicate
    ingest(raw_get(uniq_id="B", order_status="completed"))
    assert [(e["data"]["uniq_id"], e["data"]["previous_status"], e["data"]["status"]) for e in events()] == [
        ("A", None, "completed"), ("B", None, "waiting"), ("B", "waiting", "completed"),
    ]
    assert {e["type"] for e in events()} == {"order.status_changed"}


def test_the_payload_lets_a_site_credit_a_user(outbound):
    result = ingest(raw_get(uniq_id="A", revenue="1500.5", commission_fee="100.123456789",
                            time_of_order="2026-11-28 12:30:00"))
    (event,) = events()
    order = Order.objects.get()
    assert event["data"] == {
        "partner": "epn_bz", "uniq_id": "A", "order_number": order.order_number, "click_id": order.click_id,
        "offer": {"id": order.offer_id, "name": order.offer_name},
        "status": "waiting", "previous_status": None, "original_status": order.original_status,
        "revenue": "1500.500000000", "commission_fee": "100.123456789", "currency": "RUB",
        "time_of_order": "2026-11-28T09:30:00+00:00", "received_at": order.created_at.isoformat(),
        "delivery_id": result.delivery_id,
    }
    assert Decimal(event["data"]["commission_fee"]) == order.commission_fee
    stored = OutboundEvent.objects.get()
    assert stored.public_id.startswith("evt_") and (stored.partner, stored.uniq_id) == ("epn_bz", "A")


def test_a_newly_flagged_conflict_is_an_event_once(outbound):
    ingest(raw_get(uniq_id="A", revenue="1500"))
    ingest(raw_get(uniq_id="A", revenue="1600"))
    ingest(raw_get(uniq_id="A", revenue="1700"))  # already flagged
    first, conflict = events()
    assert conflict["type"] == "order.conflict"
    assert conflict["data"]["revenue"] == "1500.000000000"  # the ledger's value stays
    assert conflict["data"]["conflict"] == {"fields": ["revenue"], "received": {"revenue": "1600.000000000"}}


def test_a_replay_that_stores_an_order_writes_its_event(outbound, monkeypatch):
    result = ingest(raw_get(uniq_id="A", order_status="paid"))
    assert result.outcome == "invalid" and not OutboundEvent.objects.exists()
    monkeypatch.setitem(EpnBz.statuses, "paid", "completed")  # the parser fix
    replay_delivery(Delivery.objects.get(pk=result.delivery_id))
    (event,) = events()
    assert event["data"]["status"] == "completed" and event["data"]["delivery_id"] == result.delivery_id
    replay_delivery(Delivery.objects.get(pk=result.delivery_id))  # again: nothing moves
    assert OutboundEvent.objects.count() == 1


def test_a_rolled_back_ledger_write_leaves_no_event(outbound):
    with pytest.raises(RuntimeError), transaction.atomic():
        store(raw_get(uniq_id="A"))
        assert OutboundEvent.objects.count() == 1
        raise RuntimeError("the transaction fails after the write")
    assert not Order.objects.exists() and not OutboundEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_is_refused_outside_a_transaction(outbound):
    order = Order.objects.create(partner="epn_bz", uniq_id="A", click_id="u", order_status="waiting")
    with pytest.raises(RuntimeError):
        outbox.record(outbox.Change.status_changed(order, None), None)


def test_the_receiver_sees_exactly_the_changes_in_order_per_order(outbound):
    for uniq_id, status in [("A", "waiting"), ("B", "completed"), ("A", "waiting"), ("B", "waiting"),
                            ("A", "completed"), ("C", "rejected"), ("A", "rejected"), ("C", "waiting")]:
        ingest(raw_get(uniq_id=uniq_id, order_status=status))
    ingest(raw_get(uniq_id="A", order_status="rejected", revenue="1"))  # a conflict
    drain()
    assert outbound.statuses() == {
        ("epn_bz", "A"): ["waiting", "completed", "rejected"],
        ("epn_bz", "B"): ["completed"],
        ("epn_bz", "C"): ["rejected"],
    }
    assert outbound.invalid == 0 and len(outbound.delivered) == outbound.requests == 6
    assert outbound.delivered[-1].payload["type"] == "order.conflict"
    assert [r.webhook_id for r in outbound.delivered] == list(
        OutboundEvent.objects.order_by("pk").values_list("public_id", flat=True))
    assert set(OutboundEvent.objects.values_list("state", "attempts")) == {("delivered", 1)}
    assert set(OutboundAttempt.objects.values_list("status_code", "error")) == {(204, "")}


def test_500_then_timeout_then_down_then_back_delivers_everything_in_order(outbound):
    outbound.hang_seconds = 1.0
    for status in ("waiting", "completed"):
        ingest(raw_get(uniq_id="A", order_status=status))
    ingest(raw_get(uniq_id="B", order_status="waiting"))
    sender = Sender()
    outbound.mode = "500"
    assert sender.run_pass().failed_attempts == 2  # A's first and B's, not A's second: it waits behind
    outbound.mode = "hang"
    time.sleep(0.06)
    assert sender.run_pass().failed_attempts == 2
    outbound.stop()
    time.sleep(0.06)
    assert sender.run_pass().failed_attempts == 2
    outbound.start()
    outbound.mode = "ok"
    time.sleep(0.06)
    drain()
    assert outbound.statuses() == {("epn_bz", "A"): ["waiting", "completed"], ("epn_bz", "B"): ["waiting"]}
    first = OutboundEvent.objects.order_by("pk").first()
    errors = list(first.attempt_log.order_by("pk").values_list("status_code", "error"))
    assert [code for code, _ in errors] == [500, None, None, 204]
    assert "Timeout" in errors[1][1] and "Connection" in errors[2][1]
    assert outbound.invalid == 0


def test_a_failing_order_holds_back_only_its_own_later_events(outbound):
    ingest(raw_get(uniq_id="A", order_status="waiting"))
    ingest(raw_get(uniq_id="A", order_status="completed"))
    ingest(raw_get(uniq_id="B", order_status="waiting"))
    outbound.mode = "503"
    outbound.retry_after = "3600"
    Sender().run_pass()
    outbound.mode = "ok"
    drain_b = Sender()
    drain_b.run_pass()
    assert outbound.statuses() == {}  # both heads wait out the site's Retry-After
    OutboundEvent.objects.filter(uniq_id="B").update(next_attempt_at=timezone.now())
    Sender().run_pass()
    assert outbound.statuses() == {("epn_bz", "B"): ["waiting"]}
    assert OutboundEvent.objects.filter(uniq_id="A", state="pending").count() == 2


def test_retry_after_is_honoured_over_a_shorter_schedule(outbound):
    ingest(raw_get(uniq_id="A"))
    outbound.mode = "429"
    outbound.retry_after = "120"
    before = timezone.now()
    Sender().run_pass()
    event = OutboundEvent.objects.get()
    assert event.attempts == 1 and event.last_error == "HTTP 429"
    assert event.next_attempt_at >= before + timedelta(seconds=120)


def test_retry_after_reads_seconds_and_dates():
    assert parse_retry_after("30") == timedelta(seconds=30)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == timedelta(0)  # in the past: now
    assert parse_retry_after("999999999") == timedelta(hours=24)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_after_the_last_retry_the_event_fails_alerts_and_warns_until_resent(outbound):
    ingest(raw_get(uniq_id="A", order_status="waiting"))
    ingest(raw_get(uniq_id="A", order_status="completed"))
    outbound.mode = "500"
    deadline = time.monotonic() + 20
    while not OutboundEvent.objects.filter(state="failed").exists():
        assert time.monotonic() < deadline
        Sender().run_pass()
        time.sleep(0.05)
    failed, waiting = OutboundEvent.objects.order_by("pk")
    assert failed.attempts == len(FAST_SCHEDULE) and waiting.attempts == 0 and waiting.state == "pending"
    alerts.wait_for_pending()
    assert [m.subject for m in mail.outbox] == [f"[epnhook] Event {failed.public_id} could not be delivered "
                                                "to the site"]
    check = health.check_outbox(timezone.now())
    assert check.level == health.WARNING and "1 failed" in check.message
    outbound.mode = "ok"
    Sender().run_pass()
    assert outbound.statuses() == {}  # the failed event still holds its order back
    outbox.resend([failed])
    drain()
    assert outbound.statuses() == {("epn_bz", "A"): ["waiting", "completed"]}
    assert health.check_outbox(timezone.now()).level == health.OK


def test_an_old_backlog_warns(outbound):
    ingest(raw_get(uniq_id="A"))
    assert health.check_outbox(timezone.now()).level == health.OK
    later = timezone.now() + health.OUTBOX_BACKLOG_WARNING + timedelta(minutes=1)
    check = health.check_outbox(later)
    assert check.level == health.WARNING and "1 undelivered" in check.message


def test_backlog_counts_the_undelivered_and_dates_the_oldest(outbound):
    assert outbox.backlog() == outbox.Backlog(0, None)
    ingest(raw_get(uniq_id="A"))
    ingest(raw_get(uniq_id="B"))
    first = OutboundEvent.objects.order_by("pk").first()
    assert outbox.backlog() == outbox.Backlog(2, first.created_at)
    drain()
    assert outbox.backlog() == outbox.Backlog(0, None)


@pytest.mark.parametrize(("environ", "message"), [
    ({"OUTBOUND_URL": "https://site.example.com/hook"}, "without OUTBOUND_SECRET"),
    ({"OUTBOUND_SECRET": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}, "must be 'whsec_' + base64"),
    ({"OUTBOUND_SECRET": "whsec_not*base64"}, "not valid base64"),
    ({"OUTBOUND_SECRET": "whsec_c2hvcnQ="}, "24 to 64 bytes, not 5"),
    ({"OUTBOUND_URL": "http://site.example.com/hook", "OUTBOUND_SECRET": SECRET}, "https:// URL"),
    ({"OUTBOUND_URL": "site.example.com", "OUTBOUND_SECRET": SECRET}, "https:// URL"),
    ({"OUTBOUND_RETRY_SCHEDULE": "0,5,-1"}, "OUTBOUND_RETRY_SCHEDULE"),
    ({"OUTBOUND_RETRY_SCHEDULE": "soon"}, "OUTBOUND_RETRY_SCHEDULE"),
    ({"OUTBOUND_TIMEOUT": "0"}, "OUTBOUND_TIMEOUT"),
])
def test_bad_configuration_fails_at_start_up(environ, message):
    result = load_settings("OUTBOUND_URL", **environ)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_a_good_configuration_loads():
    result = load_settings("OUTBOUND_URL", "OUTBOUND_RETRY_SCHEDULE", OUTBOUND_URL="http://127.0.0.1:9/hook",
                           OUTBOUND_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["http://127.0.0.1:9/hook",
                                          "[0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]"]


def test_one_sender_at_a_time(outbound, capsys):
    ingest(raw_get(uniq_id="A"))
    with sender_lock() as mine:
        assert mine
        with pytest.raises(CommandError, match="another deliver_events is running"):
            call_command("deliver_events", "--once")
        with sender_lock() as second:
            assert not second
    assert outbound.delivered == []
    call_command("deliver_events", "--once")
    assert "delivered 1, failed attempts 0" in capsys.readouterr().out
    assert outbound.statuses() == {("epn_bz", "A"): ["waiting"]}
