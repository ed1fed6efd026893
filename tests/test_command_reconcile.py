"""manage.py reconcile against EPN.bz's and Admitad's APIs, faked on loopback (tests/fake_networks.py).

Every test runs the real command (call_command, and a child process where a process must be killed) on
the test database; the network's answers, its faults and its logins come from the fakes. Waits between
retries go through an injected sleep that only notes them, so no test waits for a backoff.
"""

import fcntl
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from orders import reconcile
from orders.ingest import replay_delivery
from orders.models import Delivery, Order, ReconcileRun
from partners.admitad import AdmitadApi
from partners.api import USER_AGENT, Http, RetryPolicy
from partners.epn_bz import EpnApi
from partners.models import ApiSession
from tests.fake_networks import NETWORK_TIMEZONE, Defect, FakeAdmitad, FakeEpn, FakeNetwork
from tests.manage_process import BASE_DIR, environment, start_manage
from tests.reconcile_helpers import child_database_url, child_environment, reconcile_command
from tests.test_security import emitted_logs  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def state(settings, tmp_path):
    """Each test's own state directory (the run locks, the alert throttle), and no API configured yet."""
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    settings.RECONCILE_APIS = {}


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """The waits a run would make between retries, noted instead of slept; timeouts of a second."""
    noted = []
    monkeypatch.setattr(reconcile, "RETRY", RetryPolicy(sleep=noted.append, timeout=(1.0, 1.0)))
    return noted


@pytest.fixture(params=["epn_bz", "admitad"])
def network(request):
    return request.getfixturevalue("epn" if request.param == "epn_bz" else "admitad")


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of two records, so that a handful of records spans several pages."""
    monkeypatch.setattr(EpnApi, "page_size", 2)
    monkeypatch.setattr(AdmitadApi, "page_size", 2)


def events() -> list[tuple[str, str]]:
    return sorted(Order.objects.values_list("uniq_id", "order_status"))


def current() -> dict[str, str]:
    return dict(Order.objects.filter(is_current=True).values_list("uniq_id", "order_status"))


def last_run() -> ReconcileRun:
    return ReconcileRun.objects.order_by("-pk").first()


def counts(run: ReconcileRun) -> dict[str, int]:
    return {name: getattr(run, name) for name in ("fetched", "stored", "conflicts", "mismatches", "unknown",
                                                  "malformed")}


def table_sizes() -> tuple[int, int, int]:
    return Order.objects.count(), Delivery.objects.count(), ReconcileRun.objects.count()


# --- The guarantee: every postback that never arrived is in the ledger, once --------------------------

def test_a_window_whose_postbacks_never_arrived_ends_with_each_event_stored_once(network, mailoutbox):
    # What the network says now, and what reached us of it.
    network.add("1001", "completed")  # its waiting arrived, its completion never did
    network.postback("1001", "waiting")
    network.add("1002", "waiting")  # nothing arrived at all
    network.add("1003", "waiting")  # arrived
    network.postback("1003", "waiting")
    network.add("1004", "completed")  # both arrived
    network.postback("1004", "waiting")
    network.postback("1004", "completed")
    network.add("1005", "rejected")  # nothing arrived; final at once
    before = events()

    code, out, err = reconcile_command("--partner", network.slug)

    assert code == 0, err
    assert set(events()) - set(before) == {("1001", "completed"), ("1002", "waiting"), ("1005", "rejected")}
    assert len(events()) == len(set(events()))  # each event once
    assert current() == {"1001": "completed", "1002": "waiting", "1003": "waiting", "1004": "completed",
                         "1005": "rejected"}
    run = last_run()
    assert run.state == "succeeded" and run.partner == network.slug
    assert counts(run) == {"fetched": 5, "stored": 3, "conflicts": 0, "mismatches": 0, "unknown": 0, "malformed": 0}
    stored = [finding for finding in run.report["findings"] if finding["kind"] == "stored"]
    assert sorted((finding["uniq_id"], finding["status"]) for finding in stored) == [
        ("1001", "completed"), ("1002", "waiting"), ("1005", "rejected")]
    # Each stored event is a delivery of source reconcile that keeps the API's record, linked to the run.
    for finding in stored:
        delivery = Delivery.objects.get(pk=finding["delivery"])
        assert (delivery.source, delivery.reconcile_run_id, delivery.order_id) == ("reconcile", run.pk,
                                                                                    finding["order"])
        assert delivery.content_type == "application/json" and finding["uniq_id"].encode() in bytes(delivery.body)
    assert "stored       1001 completed: order #" in out
    assert f"run #{run.pk} {network.slug} " in out and "succeeded: fetched 5 in 1 page(s), stored 3," in out
    # The admins hear of postbacks that never came.
    [email] = mailoutbox
    assert "stored 3 missing order event(s)" in email.subject
    assert all(f"  {uniq_id} " in email.body for uniq_id in ("1001", "1002", "1005"))


def test_the_same_window_twice_stores_nothing_the_second_time(network, mailoutbox):
    for number in range(6):
        network.add(f"20{number:02}", ["waiting", "completed", "rejected"][number % 3])
    network.postback("2001", "waiting", commission_fee="9.99")  # a conflict, kept as a delivery once
    window = ("--since", str(timezone.now().date() - timedelta(days=2)))
    assert reconcile_command("--partner", network.slug, *window)[0] == 0
    first = table_sizes()
    code, out, _ = reconcile_command("--partner", network.slug, *window)
    assert code == 0
    assert table_sizes() == (first[0], first[1], first[2] + 1)  # one more run, nothing else
    assert counts(last_run())["stored"] == 0 and "stored 0," in out
    assert len(mailoutbox) == 1  # only the first run stored anything


def test_a_replay_reads_a_reconciled_delivery_with_the_api_reader(network):
    network.add("3001", "completed")
    reconcile_command("--partner", network.slug)
    delivery = Delivery.objects.get(source="reconcile")
    result = replay_delivery(delivery)
    assert (result.outcome, result.order_id) == ("created", delivery.order_id)  # unchanged: its own order
    assert Order.objects.get(pk=delivery.order_id).raw_payload  # the record, JSON-safe
    assert replay_delivery(delivery, dry_run=True).order_id == delivery.order_id


# --- Paging -----------------------------------------------------------------------------------------

# Run in a child process, as cron runs it: the peak is then that of the run alone, not of what the tests
# before it left behind, nor of the fake, which builds its pages in this process.
MEASURE_PEAK = """
import os, sys, tracemalloc
import django
django.setup()
from django.core.management import call_command
import orders.reconcile  # loaded before tracing starts: a module's import is not a run's memory
tracemalloc.start()
with open(os.devnull, "w") as devnull:  # as cron's output leaves the process; a buffer would hold every line
    call_command("reconcile", "--partner", sys.argv[1], stdout=devnull)
print(tracemalloc.get_traced_memory()[1])
"""


def reconcile_peak_memory(network, records: int, first_id: int, tmp_path: Path) -> tuple[int, int, float]:
    """(events the run stored, its peak of traced memory in bytes, the seconds its process took) for a window
    of `records` new ones. They are completed: an order we hold unfinished is one the next run looks for,
    which costs memory of its own."""
    network.fake.records.clear()
    for number in range(records):
        network.add(str(first_id + number), "completed")
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-c", MEASURE_PEAK, network.slug], cwd=BASE_DIR, capture_output=True,
                           text=True, timeout=600,
                           env=environment(child_database_url(), tmp_path, **child_environment(network)))
    assert child.returncode == 0, child.stderr
    # The peak is the last line: the console mail backend prints the alert email before it.
    return last_run().stored, int(child.stdout.split()[-1]), time.monotonic() - started


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("network", ["epn_bz", "admitad"], indirect=True)
def test_thousands_of_records_are_read_completely_page_by_page_in_bounded_memory(network, terminal_report, settings,
                                                                                 tmp_path):
    """Memory holds one page at a time, whatever the window: the peak for 5 000 records is about that for
    2 000 (two pages of EPN.bz's, four of Admitad's). About: the interpreter's free lists and the garbage
    its collector has not yet reached grow for a few pages, then level off (measured: a collection after
    each page keeps the peak flat); a run that kept every record needs nearly twice the memory here."""
    settings.ALERT_STATE_DIR = tmp_path / "alerts"  # the children's
    page = FakeEpn.max_per_page if network.slug == "epn_bz" else FakeAdmitad.max_limit
    reconcile_command("--partner", network.slug)  # the login, kept for the children
    _, smaller_peak, _ = reconcile_peak_memory(network, 2000, 100000, tmp_path)
    stored, peak, seconds = reconcile_peak_memory(network, 5000, 200000, tmp_path)
    assert stored == 5000 and Order.objects.filter(uniq_id__startswith="2").count() == 5000
    assert last_run().pages == 5000 // page and last_run().state == "succeeded"
    terminal_report(f"reconcile {network.slug}: peak memory {peak / 2**20:.1f} MiB for 5000 new records "
                    f"({page} a page; {smaller_peak / 2**20:.1f} MiB for 2000), the run {seconds:.1f} s "
                    f"(traced, the fake on loopback)")
    assert peak < 1.5 * smaller_peak


# --- Logins and sessions ----------------------------------------------------------------------------

def token_calls(fake: FakeNetwork) -> list[str]:
    return [request.path for request in fake.requests if request.path not in ("/app/transactions/user",
                                                                              "/statistics/actions/")]


def test_the_session_is_kept_between_runs_so_epn_is_asked_for_an_ssid_once(epn):
    epn.add("1", "waiting")
    assert reconcile_command("--partner", "epn_bz")[0] == 0
    assert reconcile_command("--partner", "epn_bz")[0] == 0
    assert epn.fake.ssid_calls == 1 and token_calls(epn.fake) == ["/oauth2/ssid", "/oauth2/token"]
    session = ApiSession.objects.get(partner="epn_bz")
    assert session.refresh_token and session.access_expires_at > timezone.now() + timedelta(hours=23)
    assert session.access_token not in repr(session) + str(session)


@pytest.mark.usefixtures("small_pages")
def test_an_access_token_that_expires_mid_run_is_refreshed_and_the_run_goes_on(epn):
    for number in range(5):
        epn.add(f"E-{number}", "waiting")
    reconcile_command("--partner", "epn_bz", "--dry-run")  # logs in, keeps the session
    first_refresh = ApiSession.objects.get().refresh_token
    epn.fake.expire_access_tokens_after(1)  # page 2 of the run finds the token expired
    code, _, err = reconcile_command("--partner", "epn_bz")
    assert code == 0, err
    assert counts(last_run())["stored"] == 5 and last_run().pages == 3
    assert token_calls(epn.fake) == ["/oauth2/ssid", "/oauth2/token", "/oauth2/token/refresh"]
    statuses = [request.status for request in epn.fake.data_requests]
    assert statuses == [200] * 3 + [200, 401, 200, 200]
    assert ApiSession.objects.get().refresh_token not in ("", first_refresh)  # the new one is kept


@pytest.mark.usefixtures("small_pages")
def test_admitad_gets_a_new_token_when_its_token_is_refused_mid_run(admitad):
    for number in range(5):
        admitad.add(str(4000 + number), "waiting")
    admitad.fake.expire_access_tokens_after(1)
    assert reconcile_command("--partner", "admitad")[0] == 0
    assert counts(last_run())["stored"] == 5
    assert token_calls(admitad.fake) == ["/token/", "/token/"]


def test_a_refused_refresh_token_means_a_full_login(epn):
    epn.fake.ssid_daily_limit = 2
    epn.add("1", "waiting")
    assert reconcile_command("--partner", "epn_bz")[0] == 0
    epn.fake.revoke_refresh_tokens()
    epn.fake.expire_access_tokens_after(0)
    code, _, err = reconcile_command("--partner", "epn_bz")
    assert code == 0, err
    assert token_calls(epn.fake) == ["/oauth2/ssid", "/oauth2/token", "/oauth2/token/refresh", "/oauth2/ssid",
                                     "/oauth2/token"]


def test_a_429_on_ssid_stops_the_run_with_an_error_naming_the_limit(epn):
    epn.fake.ssid_daily_limit = 0
    epn.add("1", "waiting")
    code, out, err = reconcile_command("--partner", "epn_bz")
    assert code == 1
    assert "EPN.bz refused a new ssid (429 Too Many Requests): it gives about one ssid a day per address" in err
    assert epn.fake.ssid_calls == 1  # not asked again: that makes the captcha stay
    run = last_run()
    assert run.state == "failed" and "about one ssid a day" in run.error and run.stored == 0
    assert f"run #{run.pk} epn_bz" in out and "failed" in out


# --- Throttling and outages ----------------------------------------------------------------------------

def test_a_429_retry_after_is_waited_out(network, sleeps):
    network.add("1", "waiting")
    network.fake.throttle_next(2, retry_after=7)
    assert reconcile_command("--partner", network.slug)[0] == 0
    assert sleeps == [7, 7] and counts(last_run())["stored"] == 1


def test_a_429_asking_for_longer_than_the_bound_ends_the_run(network, sleeps):
    network.add("1", "waiting")
    network.fake.throttle_next(1, retry_after=3600)
    code, _, err = reconcile_command("--partner", network.slug)
    assert code == 1 and "asked to wait 3600 s, longer than the 300 s a run waits" in err
    assert sleeps == [] and last_run().state == "failed"


def test_server_errors_timeouts_and_dropped_connections_are_retried_with_backoff(network, sleeps):
    network.add("1", "waiting")
    network.fake.fail_next(1)
    network.fake.fail_next(1, status=503)
    network.fake.delay_next(1, seconds=5)  # longer than the read timeout of a second
    network.fake.drop_next(1)
    code, _, err = reconcile_command("--partner", network.slug)
    assert code == 0, err
    assert [request.status for request in network.fake.data_requests] == [500, 503, None, 0, 200]
    # Exponential, with jitter: 2, 4, 8, 16 s at most, half that at least.
    assert [2 ** attempt / 2 <= pause <= 2 ** attempt for attempt, pause in enumerate(sleeps, 1)] == [True] * 4


def test_retries_are_bounded(network, sleeps):
    network.add("1", "waiting")
    network.fake.fail_next(10)
    code, _, err = reconcile_command("--partner", network.slug)
    assert code == 1 and "answered 500 on each of 5 tries; giving up" in err
    assert len(network.fake.data_requests) == 5 and len(sleeps) == 4 and sum(sleeps) <= 2 + 4 + 8 + 16


@pytest.mark.usefixtures("small_pages")
def test_a_run_that_fails_part_way_keeps_what_it_stored_and_does_not_move_the_window(network):
    today = timezone.now().astimezone(NETWORK_TIMEZONE).date()
    network.add("1", "waiting")
    # The last successful window ended three days ago: the next runs start from the day before it.
    network.add("0", "waiting", status_updated=timezone.now() - timedelta(days=4))
    assert reconcile_command("--partner", network.slug, "--since", str(today - timedelta(days=5)), "--until",
                             str(today - timedelta(days=3)))[0] == 0
    network.fake.records.pop()
    window = (today - timedelta(days=4), today)
    for number in range(2, 8):
        network.add(str(number), "completed")
    network.fake.serve_next(1)
    network.fake.fail_next(5)
    code, out, _ = reconcile_command("--partner", network.slug)
    failed = last_run()
    # The first page held "1" and "2", stored now and kept.
    assert code == 1 and failed.state == "failed" and failed.pages == 1 and failed.stored == 2
    assert (failed.since, failed.until) == window
    assert "answered 500" in failed.error and f"run #{failed.pk}" in out
    assert events() == [("0", "waiting"), ("1", "waiting"), ("2", "completed")]
    # The next run reads the same window again: nothing is skipped, nothing stored twice.
    assert reconcile_command("--partner", network.slug)[0] == 0
    assert (last_run().since, last_run().until) == window
    assert len(events()) == len(set(events())) == 2 + 6 and last_run().stored == 5


# --- What a run reports ---------------------------------------------------------------------------

def test_malformed_records_are_reported_and_skipped_never_stored_in_part(network):
    network.add("10", "waiting")
    network.fake.add_malformed(Defect.MISSING_ID, "11")
    network.fake.add_malformed(Defect.BAD_MONEY, "12")
    network.fake.add_malformed(Defect.UNKNOWN_STATUS, "13")
    network.add("14", "completed")
    code, out, _ = reconcile_command("--partner", network.slug)
    assert code == 0
    assert events() == [("10", "waiting"), ("14", "completed")]
    assert Delivery.objects.count() == 2 and Delivery.objects.filter(outcome="invalid").count() == 0
    run = last_run()
    assert counts(run) == {"fetched": 5, "stored": 2, "conflicts": 0, "mismatches": 0, "unknown": 0, "malformed": 3}
    details = [finding["detail"] for finding in run.report["findings"] if finding["kind"] == "malformed"]
    assert "no id" in details[0] and "1 234,50" in details[1] and "'frozen' is not a known status" in details[2]
    assert out.count("malformed    ") == 3


def test_an_id_found_only_by_order_number_is_a_mismatch_and_nothing_is_stored(epn):
    # Our order came with a uniq_id the API does not use for it: the mapping is wrong.
    epn.postback("POSTBACK-77", "waiting", order_number="N-77")
    epn.add("77", "completed")
    before = table_sizes()
    code, out, _ = reconcile_command("--partner", "epn_bz")
    assert code == 0
    assert table_sizes()[:2] == before[:2]
    run = last_run()
    assert (run.mismatches, run.stored) == (1, 0)
    [finding] = [finding for finding in run.report["findings"] if finding["kind"] == "mismatch"]
    order = Order.objects.get(uniq_id="POSTBACK-77")
    assert finding["order"] == order.pk and "order_number N-77 and offer_id 1" in finding["detail"]
    assert f"id mismatch  77 completed: no order has this id, but order #{order.pk} (POSTBACK-77)" in out


def test_money_that_differs_is_a_conflict_flagged_never_overwritten(network):
    network.add("50", "completed", commission_fee="7.00")
    arrived = network.postback("50", "completed", commission_fee="5.00")
    code, out, _ = reconcile_command("--partner", network.slug)
    assert code == 0
    order = Order.objects.get(pk=arrived.order_id)
    assert order.has_conflict and order.commission_fee == Decimal("5.00")
    assert events() == [("50", "completed")]
    run = last_run()
    assert (run.conflicts, run.stored) == (1, 0)
    [kept] = Delivery.objects.filter(source="reconcile")
    assert (kept.outcome, kept.conflict_fields, kept.order_id) == ("duplicate", ["commission_fee"], order.pk)
    assert "commission_fee 5.000000000 in the ledger, 7.00 at the network" in out
    # Seen again: still a conflict, the same record not kept twice.
    assert reconcile_command("--partner", network.slug)[0] == 0
    assert last_run().conflicts == 1 and Delivery.objects.filter(source="reconcile").count() == 1


def test_orders_we_hold_unfinished_that_the_network_does_not_return_are_reported_only(network):
    network.add("60", "waiting")
    network.postback("60", "waiting")
    network.postback("61", "waiting")  # the network does not list it
    network.postback("62", "completed")  # final: nothing to confirm
    old = network.postback("63", "waiting")  # received before the window
    Order.objects.filter(pk=old.order_id).update(created_at=timezone.now() - timedelta(days=5))
    before = list(Order.objects.values_list("pk", "order_status", "is_current", "updated_at"))
    code, out, _ = reconcile_command("--partner", network.slug)
    assert code == 0
    run = last_run()
    assert run.unknown == 1
    [finding] = [finding for finding in run.report["findings"] if finding["kind"] == "unknown"]
    assert (finding["uniq_id"], finding["status"]) == ("61", "waiting")
    assert "unknown      61 waiting: order #" in out
    assert list(Order.objects.values_list("pk", "order_status", "is_current", "updated_at")) == before


def test_dry_run_prints_what_would_change_and_writes_nothing(network, mailoutbox):
    network.add("70", "completed")
    network.postback("70", "waiting")
    network.add("71", "waiting")
    before = table_sizes()
    code, out, _ = reconcile_command("--partner", network.slug, "--dry-run")
    assert code == 0
    assert table_sizes() == before and mailoutbox == []
    assert "would store  70 completed: missing from the ledger" in out and "would store  71 waiting" in out
    assert "dry run" in out and "would store 2" in out and "(nothing was written)" in out


def test_the_window_continues_from_the_last_successful_one_a_day_back(network):
    today = timezone.now().astimezone(NETWORK_TIMEZONE).date()
    assert reconcile_command("--partner", network.slug)[0] == 0
    assert (last_run().since, last_run().until) == (today - timedelta(days=1), today)
    week_ago = today - timedelta(days=7)
    assert reconcile_command("--partner", network.slug, "--since", str(week_ago - timedelta(days=3)), "--until",
                             str(week_ago))[0] == 0  # an old window read by hand does not pull the next one back
    assert reconcile_command("--partner", network.slug)[0] == 0
    assert (last_run().since, last_run().until) == (today - timedelta(days=1), today)
    assert reconcile_command("--partner", network.slug, "--until", str(today + timedelta(days=1)))[0] == 1


def test_without_partner_every_configured_network_runs_and_none_configured_is_fine(settings, epn, admitad):
    epn.add("1", "waiting")
    admitad.add("2", "waiting")
    code, out, _ = reconcile_command()
    assert code == 0 and " admitad " in out and " epn_bz " in out
    assert sorted(ReconcileRun.objects.values_list("partner", flat=True)) == ["admitad", "epn_bz"]
    settings.RECONCILE_APIS = {}
    assert reconcile_command() == (0, "No network has API credentials (EPN_API_CLIENT_ID and EPN_API_CLIENT_SECRET, "
                                      "ADMITAD_CLIENT_ID and ADMITAD_CLIENT_SECRET): nothing to reconcile.\n", "")
    code, _, err = reconcile_command("--partner", "epn_bz")
    assert code == 1 and "EPN.bz has no API credentials configured" in err


# --- Concurrency --------------------------------------------------------------------------------------

def test_a_second_run_refuses_while_one_holds_the_network(network):
    with reconcile.exclusive(network.slug) as held:
        assert held
        code, _, err = reconcile_command("--partner", network.slug)
    assert code == 1 and f"another reconcile run for {network.slug} is in progress" in err
    assert ReconcileRun.objects.count() == 0
    assert reconcile_command("--partner", network.slug)[0] == 0


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_with_sigkill_leaves_no_lock_and_the_next_run_closes_its_record(network, settings, tmp_path):
    settings.ALERT_STATE_DIR = tmp_path / "alerts"  # what the child's environment names too
    network.add("80", "waiting")
    network.fake.delay_next(1, seconds=120)  # the child waits on its first page, holding the network
    child = start_manage("reconcile", "--partner", network.slug, database_url=child_database_url(), var=tmp_path,
                         **child_environment(network))
    try:
        deadline = time.monotonic() + 60
        while not network.fake.data_requests and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        assert network.fake.data_requests, "the child never asked for a page"
        code, _, err = reconcile_command("--partner", network.slug)
        assert code == 1 and "is in progress" in err
        assert list(ReconcileRun.objects.values_list("state", flat=True)) == ["running"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    code, _, err = reconcile_command("--partner", network.slug)
    assert code == 0, err
    killed, second = ReconcileRun.objects.order_by("pk")
    assert killed.state == "failed" and "ended without recording how" in killed.error
    assert second.state == "succeeded" and second.stored == 1


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_the_command_in_a_child_process_as_cron_runs_it(admitad, tmp_path):
    admitad.add("90", "completed")
    admitad.add("91", "waiting")
    child = subprocess.run(
        [sys.executable, "manage.py", "reconcile"], cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
        env=environment(child_database_url(), tmp_path, **child_environment(admitad)))
    assert child.returncode == 0, child.stderr
    assert "stored       90 completed" in child.stdout
    assert "succeeded: fetched 2 in 1 page(s), stored 2," in child.stdout
    assert events() == [("90", "completed"), ("91", "waiting")]
    assert admitad.fake.client_secret not in child.stdout + child.stderr


# --- What goes out, and what never does ---------------------------------------------------------------

def test_every_request_says_what_it_accepts_and_who_sends_it(network):
    network.add("1", "waiting")
    assert reconcile_command("--partner", network.slug)[0] == 0
    assert network.fake.requests
    for request in network.fake.requests:
        assert request.headers["Accept"] == "application/json"
        assert request.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("epnhook/")


def test_tls_is_verified_and_no_code_turns_it_off():
    assert Http().session.verify is True
    sources = [path for package in ("partners", "orders", "epnhook") for path in (BASE_DIR / package).rglob("*.py")]
    for path in sources:
        text = path.read_text()
        for forbidden in ("verify=False", "verify = False", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                          "disable_warnings"):
            assert forbidden not in text, (path, forbidden)


def test_no_secret_in_the_output_the_logs_or_the_alert_email(epn, mailoutbox, emitted_logs):  # noqa: F811
    import logging

    epn.fake.ssid_daily_limit = 2
    epn.add("1", "completed")
    first = reconcile_command("--partner", "epn_bz")
    epn.fake.revoke_refresh_tokens()
    epn.fake.expire_access_tokens_after(0)
    epn.fake.ssid_daily_limit = 1  # the login after the refused refresh is refused too
    second = reconcile_command("--partner", "epn_bz")
    assert first[0] == 0 and second[0] == 1 and mailoutbox
    issued = {request.token for request in epn.fake.requests if request.token}
    issued |= set(ApiSession.objects.values_list("refresh_token", flat=True)) - {""}
    assert issued
    # A line that names a secret, as a careless log call might: the redaction catches it.
    for secret in (epn.fake.client_secret, *issued):
        logging.getLogger("epnhook.api").warning("careless line with %s", secret)
    text, as_json = emitted_logs
    everything = [*first[1:], *second[1:], text.getvalue(), as_json.getvalue(),
                  *(m.subject + m.body for m in mailoutbox), *ReconcileRun.objects.values_list("error", flat=True)]
    assert "careless line with <redacted>" in text.getvalue()
    for secret in (epn.fake.client_secret, *issued):
        assert not any(secret in part for part in everything), secret


def test_error_reports_hide_the_client_secrets(settings, epn):
    from epnhook.logging import SafeReporterFilter

    settings.EPN_API_CLIENT_SECRET = epn.fake.client_secret
    shown = SafeReporterFilter().get_safe_settings()
    assert epn.fake.client_secret not in repr(shown)


def test_the_lock_is_a_flock_on_a_file_under_the_state_directory(settings):
    with reconcile.exclusive("epn_bz") as held:
        assert held
        path = Path(settings.ALERT_STATE_DIR) / "reconcile-epn_bz.lock"
        with open(path) as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


# --- Configuration ------------------------------------------------------------------------------------

SETTINGS_FILE = str(BASE_DIR / "epnhook" / "settings.py")


@pytest.mark.parametrize(("environment_variables", "message"), [
    ({"EPN_API_CLIENT_ID": "id"}, "EPN_API_CLIENT_ID and EPN_API_CLIENT_SECRET go together"),
    ({"ADMITAD_CLIENT_SECRET": "secret"}, "ADMITAD_CLIENT_ID and ADMITAD_CLIENT_SECRET go together"),
    ({"EPN_API_URL": "http://app.epn.bz"}, "EPN_API_URL must be an https:// URL"),
    ({"ADMITAD_API_URL": "ftp://127.0.0.1"}, "ADMITAD_API_URL must be an https:// URL"),
])
def test_bad_api_configuration_stops_the_service(monkeypatch, environment_variables, message):
    import runpy

    from django.core.exceptions import ImproperlyConfigured

    for name, value in environment_variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        runpy.run_path(SETTINGS_FILE)


def test_the_api_configuration_by_network(monkeypatch):
    import runpy

    monkeypatch.setenv("EPN_API_CLIENT_ID", "id")
    monkeypatch.setenv("EPN_API_CLIENT_SECRET", "secret")
    monkeypatch.setenv("EPN_OAUTH_URL", "http://127.0.0.1:8001/oauth2/")
    loaded = runpy.run_path(SETTINGS_FILE)
    assert loaded["RECONCILE_APIS"] == {"epn_bz": {"client_id": "id", "client_secret": "secret",
                                                   "api_url": "https://app.epn.bz",
                                                   "oauth_url": "http://127.0.0.1:8001/oauth2"}}
    assert loaded["RECONCILE_STALE_HOURS"] == 6.0 and loaded["ADMITAD_API_URL"] == "https://api.admitad.com"


def test_every_reconcile_variable_is_documented_with_its_default():
    readme, example = ((BASE_DIR / name).read_text() for name in ("README.md", ".env.example"))
    for variable, default in {"EPN_API_CLIENT_ID": "", "EPN_API_CLIENT_SECRET": "", "EPN_API_URL": "https://app.epn.bz",
                              "EPN_OAUTH_URL": "https://oauth2.epn.bz", "ADMITAD_CLIENT_ID": "",
                              "ADMITAD_CLIENT_SECRET": "", "ADMITAD_API_URL": "https://api.admitad.com",
                              "RECONCILE_STALE_HOURS": "6"}.items():
        assert f"`{variable}`" in readme and f"# {variable}={default}" in example, variable
    assert "dry-run first" in readme.replace("**", "")
