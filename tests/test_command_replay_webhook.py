"""manage.py replay_webhook: every selection, --query, --spool, --dry-run, the summary and the failures."""

import fcntl
import time
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from orders import replay, spool
from orders.ingest import ingest
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from partners import snapshot
from partners.epn_bz import EpnBz
from partners.models import Network
from tests.factories import raw_get
from tests.manage_process import assert_clean_failure, manage
from tests.networks import actionpay_row
from tests.settings import TEST_TOKEN

pytestmark = pytest.mark.django_db

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture(autouse=True)
def private_spool(settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"


def replay_webhook(*args) -> str:
    out = StringIO()
    call_command("replay_webhook", *args, stdout=out)
    return out.getvalue()


def invalid_paid(**changes) -> Delivery:
    """A delivery the current parser rejects ('paid' is no status) until the fix below."""
    return Delivery.objects.get(pk=ingest(raw_get(order_status="paid", **changes)).delivery_id)


@pytest.fixture
def fix_parser(monkeypatch):
    """Call it after storing the deliveries: from then on 'paid' means completed (the parser fix)."""
    return lambda: monkeypatch.setitem(EpnBz.statuses, "paid", "completed")


def received(delivery: Delivery, when: datetime) -> Delivery:
    Delivery.objects.filter(pk=delivery.pk).update(received_at=when)
    return delivery


def test_replay_by_id_after_a_parser_fix_creates_the_order(fix_parser):
    delivery = invalid_paid()
    fix_parser()
    output = replay_webhook(str(delivery.pk))
    order = Order.objects.get()
    assert order.order_status == "completed"
    assert f"Delivery #{delivery.pk}: stored as order #{order.pk}." in output
    assert "processed 1: created 1, duplicate 0, unchanged 0, still invalid 0, failed 0" in output
    delivery.refresh_from_db()
    assert delivery.outcome == "created" and delivery.order_id == order.pk and delivery.replayed_at


def test_replaying_twice_never_creates_a_second_order(fix_parser):
    deliveries = [invalid_paid(), invalid_paid()]
    ids = [str(delivery.pk) for delivery in deliveries]
    fix_parser()
    assert "created 1, duplicate 1, unchanged 0" in replay_webhook(*ids)
    assert "created 0, duplicate 0, unchanged 2" in replay_webhook(*ids)
    assert Order.objects.count() == 1
    assert sorted(Delivery.objects.values_list("outcome", flat=True)) == ["created", "duplicate"]


def test_an_unknown_id_is_an_error_and_nothing_is_replayed(fix_parser):
    delivery = invalid_paid()
    fix_parser()
    with pytest.raises(CommandError, match=r"no delivery with id 999999, 1000000; nothing was replayed"):
        replay_webhook(str(delivery.pk), "999999", "1000000")
    assert Order.objects.count() == 0
    with pytest.raises(CommandError, match="not a positive whole number"):
        replay_webhook("abc")


def test_still_invalid_is_reported_with_its_reason():
    delivery = invalid_paid()
    output = replay_webhook("--outcome", "invalid")
    assert f"Delivery #{delivery.pk}: still invalid: order_status 'paid' is not a known status" in output
    assert "still invalid 1, failed 0" in output


def test_outcome_selects_invalid_or_error_deliveries(fix_parser, monkeypatch):
    invalid = invalid_paid(uniq_id="was-invalid")
    ingest(raw_get(uniq_id="fine"))

    def broken(self, params):
        raise ZeroDivisionError("a bug in the parser")

    fix_parser()
    with monkeypatch.context() as patch:
        patch.setattr(EpnBz, "parse", broken)
        with pytest.raises(ZeroDivisionError):
            ingest(raw_get(uniq_id="was-error"))
    error = Delivery.objects.get(outcome="error")
    output = replay_webhook("--outcome", "error")
    assert f"Delivery #{error.pk}: stored as order #" in output and f"#{invalid.pk}:" not in output
    assert "processed 1:" in output
    output = replay_webhook("--outcome", "invalid")
    assert f"Delivery #{invalid.pk}: stored as order #" in output and "processed 1:" in output
    assert set(Order.objects.values_list("uniq_id", flat=True)) == {"fine", "was-error", "was-invalid"}
    with pytest.raises(CommandError, match="invalid choice: 'created'"):
        replay_webhook("--outcome", "created")


def test_since_and_until_select_by_time_received(fix_parser):
    early = received(invalid_paid(uniq_id="early"), datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))
    middle = received(invalid_paid(uniq_id="middle"), datetime(2026, 3, 2, 0, 0, tzinfo=MOSCOW))
    late = received(invalid_paid(uniq_id="late"), datetime(2026, 3, 3, 0, 0, tzinfo=MOSCOW))
    fix_parser()
    output = replay_webhook("--since", "2026-03-02", "--until", "2026-03-03")
    assert f"#{middle.pk}:" in output and f"#{early.pk}:" not in output and f"#{late.pk}:" not in output
    output = replay_webhook("--until", "2026-03-01 10:00", "--dry-run")
    assert f"Delivery #{early.pk}: would be stored as a new order." in output and "processed 1:" in output
    output = replay_webhook("--since", "2026-03-02T20:00:00+00:00")  # 23:00 on the 2nd in Moscow
    assert f"Delivery #{late.pk}: stored as order #" in output and "processed 1:" in output


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "'yesterday' is not a date"),
    (["--until", "2026-02-30"], "'2026-02-30' is not a date"),
    (["--since", "2026-03-02", "--until", "2026-03-01"], "--since must be earlier than --until"),
])
def test_bad_dates_are_clear_errors(args, message):
    with pytest.raises(CommandError, match=message):
        replay_webhook(*args)


def test_partner_selects_one_networks_deliveries(fix_parser):
    ours = invalid_paid()
    other = Delivery.objects.create(partner="retired_network", method="GET", query_string="x=1", outcome="invalid")
    fix_parser()
    output = replay_webhook("--partner", "epn_bz")
    assert f"Delivery #{ours.pk}: stored as order #" in output and f"#{other.pk}:" not in output
    with pytest.raises(CommandError, match="--partner: no network 'nobody' \\(known: epn_bz, admitad\\)"):
        replay_webhook("--partner", "nobody")


def test_partner_may_be_a_network_configured_in_the_admin():
    actionpay_row().save()
    ingest(RawRequest(partner="actionpay", method="GET", query_string="uniqueid=AP-1&subaccount=7&payment=1,5",
                      implied_status="completed"))
    Network.objects.filter(slug="actionpay").update(decimal_separator=",")
    snapshot.forget()  # as the admin's save would
    output = replay_webhook("--partner", "actionpay", "--outcome", "invalid")
    assert "stored as order #" in output and Order.objects.get().commission_fee == Decimal("1.5")
    # By hand, with the status of the URL the network called.
    replay_webhook("--partner", "actionpay", "--query", "uniqueid=AP-1&subaccount=7&payment=1,5",
                   "--implied-status", "rejected")
    assert list(Order.objects.order_by("pk").values_list("order_status", flat=True)) == ["completed", "rejected"]
    assert Delivery.objects.get(source="manual").implied_status == "rejected"
    with pytest.raises(CommandError, match="implies none"):
        replay_webhook("--partner", "actionpay", "--query", "uniqueid=AP-2&subaccount=7")
    with pytest.raises(CommandError, match="--implied-status goes with --query"):
        replay_webhook("--partner", "actionpay", "--implied-status", "waiting")


def test_nothing_selected_is_an_error_not_a_replay_of_everything():
    invalid_paid()
    with pytest.raises(CommandError, match="say what to replay"):
        replay_webhook()


def test_dry_run_shows_what_would_change_and_writes_nothing(fix_parser):
    delivery = invalid_paid()
    fix_parser()
    output = replay_webhook("--outcome", "invalid", "--dry-run")
    assert f"Delivery #{delivery.pk}: would be stored as a new order." in output
    assert output.rstrip().endswith("(dry run: nothing was written)")
    delivery.refresh_from_db()
    assert delivery.outcome == "invalid" and delivery.replayed_at is None and Order.objects.count() == 0


def test_query_enters_a_postback_by_hand_as_a_manual_delivery():
    query = "click_id=7&order_number=DASH-1&uniq_id=DASH-1&order_status=completed&revenue=990.50"
    output = replay_webhook("--partner", "epn_bz", "--query", query)
    delivery = Delivery.objects.get()
    order = Order.objects.get()
    assert delivery.source == "manual" and delivery.outcome == "created" and delivery.order_id == order.pk
    assert delivery.query_string == query and delivery.user_agent.startswith("manage.py replay_webhook by ")
    assert order.revenue == Decimal("990.50")
    assert output == f"Delivery #{delivery.pk}: stored as order #{order.pk}.\n"
    again = replay_webhook("--partner", "epn_bz", "--query", query)
    assert again == f"Delivery #{delivery.pk + 1}: a duplicate of order #{order.pk}.\n"
    assert Order.objects.count() == 1


def test_query_pasted_as_a_whole_url_keeps_only_the_parameters():
    url = f"https://webhook.example.com/webhook/{TEST_TOKEN}?click_id=7&order_number=A&order_status=waiting"
    replay_webhook("--partner", "epn_bz", "--query", url)
    delivery = Delivery.objects.get()
    assert delivery.query_string == "click_id=7&order_number=A&order_status=waiting"
    assert TEST_TOKEN not in str(Delivery.objects.values().get()) + str(Order.objects.values().get())


def test_query_that_is_invalid_is_kept_and_refused_with_its_reason():
    with pytest.raises(CommandError, match=r"the postback is refused \(order_number\): order_number is required; "
                                           r"it is kept as invalid delivery #\d+") as refused:
        replay_webhook("--partner", "epn_bz", "--query", "click_id=7&order_status=waiting")
    assert refused.value.returncode == 1
    assert Delivery.objects.get().outcome == "invalid" and Order.objects.count() == 0
    with pytest.raises(CommandError, match=r"the postback would be refused \(order_status\): order_status 'zzz'"):
        replay_webhook("--partner", "epn_bz", "--query", "click_id=1&order_number=A&order_status=zzz", "--dry-run")
    assert Delivery.objects.count() == 1


def test_query_dry_run_writes_nothing():
    output = replay_webhook("--partner", "epn_bz", "--query", "click_id=7&order_number=A&order_status=waiting",
                            "--dry-run")
    assert output == "The postback would be stored as a new order. (dry run: nothing was written)\n"
    assert Delivery.objects.count() == 0 and Order.objects.count() == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--query", "click_id=1"], "--query needs --partner"),
    (["--partner", "epn_bz", "--query", "  "], "--query is empty"),
    (["1", "--partner", "epn_bz", "--query", "click_id=1"], "cannot be combined"),
    (["--spool", "--outcome", "invalid"], "--spool works alone"),
])
def test_options_that_do_not_go_together(args, message):
    with pytest.raises(CommandError, match=message):
        replay_webhook(*args)


def test_spool_stores_what_is_waiting():
    for number in range(2):
        spool.write(raw_get(uniq_id=f"spooled-{number}"))
    spool.write(raw_get(order_status="paid"))
    output = replay_webhook("--spool")
    assert "stored 3 (created 2, invalid 1), already stored 0, quarantined 0, remaining 0" in output
    assert Order.objects.count() == 2 and spool.backlog() == 0
    assert Delivery.objects.filter(source="spool").count() == 3


def test_spool_dry_run_counts_and_stores_nothing():
    spool.write(raw_get())
    output = replay_webhook("--spool", "--dry-run")
    assert "1 postback(s) waiting in the spool would be stored (dry run: nothing was written)" in output
    assert spool.backlog() == 1 and Delivery.objects.count() == 0


def test_spool_being_drained_elsewhere_is_an_error(settings):
    spool.write(raw_get())
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.SPOOL_DIR / ".drain.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CommandError, match="another process is draining the spool"):
            replay_webhook("--spool")
    assert spool.backlog() == 1


def test_a_failure_is_counted_and_the_exit_is_non_zero(fix_parser, monkeypatch):
    fine, broken_one = invalid_paid(uniq_id="fine"), invalid_paid(uniq_id="broken")
    real_parse = EpnBz.parse

    def parse(self, params):
        if params.get("uniq_id") == "broken":
            raise RuntimeError("a bug in the parser")
        return real_parse(self, params)

    fix_parser()
    monkeypatch.setattr(EpnBz, "parse", parse)
    out = StringIO()
    with pytest.raises(CommandError, match="1 delivery") as raised:
        call_command("replay_webhook", "--outcome", "invalid", stdout=out)
    assert raised.value.returncode == 1
    assert f"Delivery #{broken_one.pk}: failed: RuntimeError: a bug in the parser" in out.getvalue()
    assert "created 1, duplicate 0, unchanged 0, still invalid 0, failed 1" in out.getvalue()
    assert Order.objects.get().uniq_id == "fine"
    assert Delivery.objects.get(pk=fine.pk).outcome == "created"
    assert Delivery.objects.get(pk=broken_one.pk).outcome == "invalid", "a failed replay leaves the delivery as it was"


def test_long_runs_go_in_batches_in_order(fix_parser, monkeypatch):
    monkeypatch.setattr(replay, "REPLAY_BATCH_SIZE", 2)
    deliveries = [invalid_paid(uniq_id=f"batch-{number}") for number in range(5)]
    fix_parser()
    output = replay_webhook("--outcome", "invalid")
    assert "processed 5: created 5" in output
    positions = [output.index(f"#{delivery.pk}:") for delivery in deliveries]
    assert positions == sorted(positions)


def test_expected_failures_in_a_real_process_end_without_a_traceback(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    assert_clean_failure(manage("replay_webhook", "abc", database_url=url, var=tmp_path), "not a positive whole number")
    assert_clean_failure(manage("replay_webhook", "--since", "soon", database_url=url, var=tmp_path),
                         "'soon' is not a date")
    assert manage("migrate", "-v0", database_url=url, var=tmp_path).returncode == 0
    result = manage("replay_webhook", "42", database_url=url, var=tmp_path)
    assert_clean_failure(result, "CommandError: no delivery with id 42")
    assert result.returncode == 1


def test_a_postback_entered_by_hand_in_a_real_process_exits_1_when_refused(tmp_path):
    """What cron or a script sees: the reason on stderr and exit 1; the words in English whatever LANGUAGE_CODE."""
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    assert manage("migrate", "-v0", database_url=url, var=tmp_path).returncode == 0
    refused = manage("replay_webhook", "--partner", "epn_bz", "--query", "click_id=1&order_status=zzz",
                     database_url=url, var=tmp_path, LANGUAGE_CODE="ru")
    assert_clean_failure(refused, "CommandError: the postback is refused (order_number): order_number is required; "
                                  "it is kept as invalid delivery #1")
    assert refused.returncode == 1 and refused.stdout == ""
    query = "click_id=1&order_number=A&order_status=waiting"
    stored = manage("replay_webhook", "--partner", "epn_bz", "--query", query, database_url=url, var=tmp_path,
                    LANGUAGE_CODE="ru")
    assert (stored.returncode, stored.stdout, stored.stderr) == (0, "Delivery #2: stored as order #1.\n", "")


@pytest.mark.mariadb
@pytest.mark.private_mariadb
def test_an_unreachable_database_is_a_clear_error(stopped_private_mariadb, tmp_path):
    query = "click_id=1&order_number=A&order_status=waiting"
    for args in (["1"], ["--spool"], ["--partner", "epn_bz", "--query", query]):
        result = manage("replay_webhook", *args, database_url=stopped_private_mariadb.url(), var=tmp_path)
        assert_clean_failure(result, "CommandError: the database is unreachable: MariaDB error 200")
        assert result.returncode == 1


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_survives_a_connection_closed_by_wait_timeout(fix_parser):
    delivery = invalid_paid()
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout = 1")
    time.sleep(2.5)  # the server drops the idle connection
    fix_parser()
    assert "created 1" in replay_webhook(str(delivery.pk))


def test_timestamps_without_a_zone_are_in_time_zone():
    from orders.operations import timestamp_argument

    assert timestamp_argument("2026-03-02") == datetime(2026, 3, 2, tzinfo=MOSCOW)
    assert timestamp_argument("2026-03-02 10:30") - timestamp_argument("2026-03-02T07:30Z") == timedelta(0)


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_database_failure_part_way_reports_what_was_done(fix_parser, monkeypatch):
    for number in range(3):
        invalid_paid(uniq_id=f"cut-{number}")
    fix_parser()
    monkeypatch.setattr(replay, "REPLAY_BATCH_SIZE", 1)
    replay_batch = replay.replay_deliveries

    def replay_then_lose_the_connection(batch, summary):
        replay_batch(batch, summary)
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (ours,) = cursor.fetchone()
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute(f"KILL CONNECTION {ours}")  # as a server restart would
        finally:
            other.close()

    monkeypatch.setattr(replay, "replay_deliveries", replay_then_lose_the_connection)
    out = StringIO()
    with pytest.raises(CommandError, match=r"the database failed \(MariaDB error 20\d\d .*\) after 1 deliveries"):
        call_command("replay_webhook", "--outcome", "invalid", stdout=out)
    assert "processed 1: created 1" in out.getvalue()
    connection.close()
    monkeypatch.setattr(replay, "replay_deliveries", replay_batch)
    assert "processed 2: created 2" in replay_webhook("--outcome", "invalid")
    assert Order.objects.count() == 3
