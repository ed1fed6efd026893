"""manage.py check_health: every check, every option, the exit codes, the alert email and the runbook."""

import email
import fcntl
import json
import runpy
import time
from datetime import timedelta
from io import StringIO

import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from devtools.mariadb import free_port
from orders import spool
from orders.ingest import ingest
from orders.models import Delivery, Order, ReconcileRun
from orders.rawrequest import RawRequest
from partners.models import NetworkToken
from tests.factories import raw_get
from tests.manage_process import BASE_DIR, manage, start_manage
from tests.networks import actionpay_row
from tests.settings import TEST_TOKEN

pytestmark = pytest.mark.django_db

SETTINGS_FILE = str(BASE_DIR / "epnhook" / "settings.py")


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox():
    """A real SMTP server on loopback that keeps what it receives."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture(autouse=True)
def healthy(settings, tmp_path, inbox):
    """A service in good order: its own spool, alerts mailed over SMTP, a postback a minute ago."""
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = inbox.hostname, inbox.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.SPOOL_FREE_WARNING_MB = settings.SPOOL_FREE_CRITICAL_MB = 1
    ingest(raw_get())


def check_health(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_health", *args, stdout=out)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


def statuses(output: str) -> dict[str, str]:
    return {check["name"]: check["status"] for check in json.loads(output)["checks"]}


def age_every_delivery(hours: float) -> None:
    Delivery.objects.update(received_at=timezone.now() - timedelta(hours=hours))


def test_healthy_service_exits_0_with_a_readable_report(inbox):
    code, output = check_health()
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "epnhook health: OK"
    for name in ("configuration", "database", "migrations", "spool", "spool disk", "last postback epn_bz",
                 "outbound events", "mail"):
        assert any(line.startswith("OK") and f" {name} " in line for line in lines), (name, output)
    assert "answered in" in output and "MiB free" in output
    assert inbox.handler.messages == []


def test_quiet_prints_nothing_when_healthy_and_only_problems_otherwise():
    assert check_health("--quiet", "--no-email") == (0, "")
    age_every_delivery(30)
    code, output = check_health("--quiet", "--no-email")
    assert code == 1
    assert output.splitlines() == [line for line in output.splitlines() if not line.startswith("OK")]
    assert "WARNING   last postback epn_bz" in output and "30.0 h ago" in output


def test_json_report_for_machines():
    code, output = check_health("--json", "--no-email")
    document = json.loads(output)
    assert code == 0 and document["status"] == "ok" and document["exit_code"] == 0
    database = next(check for check in document["checks"] if check["name"] == "database")
    assert database["status"] == "ok" and database["data"]["ms"] >= 0
    assert check_health("--json", "--quiet", "--no-email") == (0, "")
    age_every_delivery(30)
    code, output = check_health("--json", "--quiet", "--no-email")
    assert code == 1 and statuses(output) == {"last postback epn_bz": "warning"}


def test_stale_after_hours_is_per_partner(settings):
    age_every_delivery(30)
    assert check_health("--no-email")[0] == 1
    settings.STALE_AFTER_HOURS_BY_PARTNER = {"epn_bz": 48}
    assert check_health("--no-email")[0] == 0
    settings.STALE_AFTER_HOURS, settings.STALE_AFTER_HOURS_BY_PARTNER = 48, {"epn_bz": 6}
    assert check_health("--no-email")[0] == 1
    settings.STALE_AFTER_HOURS_BY_PARTNER = {"epn_bz": 0}
    code, output = check_health("--no-email")
    assert code == 0 and "check off" in output


def test_a_postback_entered_by_hand_does_not_count_as_the_network_calling():
    age_every_delivery(30)
    ingest(RawRequest(partner="epn_bz", method="GET", query_string="click_id=1&order_number=M&order_status=waiting",
                      source=Delivery.Source.MANUAL))
    code, output = check_health("--no-email", "--json")
    assert code == 1 and statuses(output)["last postback epn_bz"] == "warning"


def test_a_network_with_a_token_issued_in_the_admin_is_checked_too():
    network = actionpay_row()
    network.save()
    row, _token = NetworkToken.issue(network, implied_status="waiting")
    code, output = check_health("--no-email", "--json", "--quiet")
    assert code == 1 and statuses(output) == {"last postback actionpay": "warning"}
    ingest(RawRequest(partner="actionpay", method="GET", query_string="uniqueid=1&subaccount=2",
                      implied_status="waiting"))
    assert check_health("--no-email")[0] == 0
    NetworkToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    Delivery.objects.filter(partner="actionpay").update(received_at=timezone.now() - timedelta(days=9))
    assert check_health("--no-email")[0] == 0, "a network without a live token is not expected to call"


def test_no_postback_ever_received_is_a_warning():
    Delivery.objects.all().delete()
    code, output = check_health("--no-email")
    assert code == 1 and "none received yet" in output


def reconciled(settings, *runs: tuple[str, float, str]) -> list[ReconcileRun]:
    """EPN.bz's API configured, and runs of it: (state, hours ago it finished, error)."""
    settings.RECONCILE_APIS = {"epn_bz": {"client_id": "id", "client_secret": "secret", "api_url": "https://a",
                                          "oauth_url": "https://o"}}
    now = timezone.now()
    return [ReconcileRun.objects.create(partner="epn_bz", since=now.date(), until=now.date(), state=state, error=error,
                                        finished_at=now - timedelta(hours=hours)) for state, hours, error in runs]


def test_a_network_with_api_credentials_warns_until_a_run_succeeds(settings):
    assert "last reconcile" not in check_health("--no-email")[1]  # no credentials: no check
    reconciled(settings)
    code, output = check_health("--no-email")
    assert code == 1 and "WARNING   last reconcile epn_bz no successful run yet; try manage.py reconcile --partner " \
                         "epn_bz --dry-run" in output
    reconciled(settings, ("succeeded", 1, ""))
    code, output = check_health("--no-email")
    assert code == 0 and "OK        last reconcile epn_bz succeeded 1.0 h ago" in output


def test_a_last_successful_run_older_than_reconcile_stale_hours_is_a_warning(settings):
    reconciled(settings, ("succeeded", 7, ""), ("failed", 3, "EPN.bz refused a new ssid (429 Too Many Requests): ..."),
               ("failed", 5, "older"))
    code, output = check_health("--no-email", "--json")
    check = next(check for check in json.loads(output)["checks"] if check["name"] == "last reconcile epn_bz")
    assert code == 1 and check["status"] == "warning"
    assert "succeeded 7.0 h ago" in check["message"] and "over 6 h" in check["message"]
    assert "failed: EPN.bz refused a new ssid (429" in check["message"]  # the latest failure says why
    settings.RECONCILE_STALE_HOURS = 8
    assert check_health("--no-email")[0] == 0
    settings.RECONCILE_STALE_HOURS = 0
    code, output = check_health("--no-email")
    assert code == 0 and "check off (RECONCILE_STALE_HOURS 0)" in output


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_bad_reconcile_stale_hours_stops_the_service(monkeypatch, value):
    monkeypatch.setenv("RECONCILE_STALE_HOURS", value)
    with pytest.raises(ImproperlyConfigured, match="RECONCILE_STALE_HOURS"):
        runpy.run_path(SETTINGS_FILE)


def test_unapplied_migration_is_critical():
    latest = next(name for app, name in MigrationLoader(connection).graph.leaf_nodes() if app == "orders")
    MigrationRecorder(connection).record_unapplied("orders", latest)
    code, output = check_health("--no-email")
    assert code == 2
    assert "CRITICAL  migrations" in output and f"orders.{latest}" in output and "manage.py migrate" in output


def test_spool_backlog_is_drained_when_the_database_answers():
    for number in range(3):
        spool.write(raw_get(uniq_id=f"spooled-{number}"))
    code, output = check_health("--no-email", "--json")
    spool_check = next(check for check in json.loads(output)["checks"] if check["name"] == "spool")
    assert code == 0 and spool_check["data"]["stored"] == 3 and spool_check["data"]["remaining"] == 0
    assert spool.backlog() == 0
    assert Order.objects.filter(uniq_id__startswith="spooled-").count() == 3
    assert Delivery.objects.filter(source=Delivery.Source.SPOOL).count() == 3


def test_a_second_run_never_drains_while_another_drain_holds_the_lock(settings):
    spool.write(raw_get(uniq_id="spooled"))
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.SPOOL_DIR / ".drain.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a concurrent run draining now would
        code, output = check_health("--no-email")
        assert code == 1 and "another process is draining the spool" in output
        assert spool.backlog() == 1 and not Order.objects.filter(uniq_id="spooled").exists()
    assert check_health("--no-email")[0] == 0
    assert Order.objects.filter(uniq_id="spooled").count() == 1


def test_quarantined_entries_are_a_warning(settings):
    spool.quarantine_dir().mkdir(parents=True)
    (spool.quarantine_dir() / "00000000000000000001-damaged.json").write_text("{not json")
    code, output = check_health("--no-email")
    assert code == 1 and "1 unreadable entry" in output


def test_invalid_deliveries_in_the_last_24_hours_warn_from_health_invalid_deliveries(settings):
    settings.HEALTH_INVALID_DELIVERIES = 2
    ingest(raw_get(revenue="not money"))
    assert check_health("--json", "--quiet", "--no-email") == (0, "")
    ingest(raw_get(revenue="not money"))
    code, output = check_health("--json", "--quiet", "--no-email")
    assert code == 1 and statuses(output) == {"invalid deliveries": "warning"}
    Delivery.objects.filter(outcome="invalid").update(received_at=timezone.now() - timedelta(hours=25))
    assert check_health("--no-email")[0] == 0
    settings.HEALTH_INVALID_DELIVERIES = 0
    Delivery.objects.update(received_at=timezone.now())
    code, output = check_health("--no-email")
    assert code == 0 and "check off (HEALTH_INVALID_DELIVERIES 0)" in output


def test_money_conflicts_warn_until_marked_as_looked_at(settings):
    ingest(raw_get(commission_fee="99"))  # the healthy fixture's postback again, with other money
    code, output = check_health("--json", "--quiet", "--no-email")
    assert code == 1 and statuses(output) == {"conflicts": "warning"}
    Order.objects.filter(has_conflict=True).update(conflict_reviewed_at=timezone.now(), conflict_reviewed_by="boss")
    assert check_health("--no-email")[0] == 0
    Order.objects.update(conflict_reviewed_at=None)
    settings.HEALTH_CONFLICTS = 0
    assert check_health("--no-email")[0] == 0


def test_each_run_refreshes_the_overview_summary():
    from orders.models import DailySummary

    assert check_health("--no-email")[0] == 0
    assert DailySummary.objects.get().orders == 1
    ingest(raw_get(uniq_id="another"))
    code, output = check_health("--no-email")
    assert code == 0 and "OK        summary              1 day(s) recomputed" in output
    assert DailySummary.objects.get().orders == 2


def test_free_disk_thresholds(settings):
    settings.SPOOL_FREE_WARNING_MB = 10**12
    code, output = check_health("--no-email")
    assert code == 1 and "WARNING   spool disk" in output
    settings.SPOOL_FREE_CRITICAL_MB = 10**12
    code, output = check_health("--no-email")
    assert code == 2 and "CRITICAL  spool disk" in output


def test_a_spool_that_cannot_be_written_is_critical(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.SPOOL_DIR = blocker / "spool"
    code, output = check_health("--no-email", "--json")
    assert code == 2 and statuses(output)["spool disk"] == "critical"
    assert "cannot write to the spool" in output


def test_slow_database_is_a_warning(settings):
    settings.HEALTH_DATABASE_SLOW_MS = 0
    code, output = check_health("--no-email")
    assert code == 1 and "WARNING   database" in output and "slow" in output


@pytest.mark.parametrize(("changes", "expected"), [
    ({"ADMINS": []}, "ADMINS is empty"),
    ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "prints alerts to the console"),
    ({"EMAIL_HOST": ""}, "names no SMTP host"),
])
def test_mail_configuration_that_reaches_nobody_is_a_warning(settings, changes, expected):
    for name, value in changes.items():
        setattr(settings, name, value)
    code, output = check_health("--no-email")
    assert code == 1 and "WARNING   mail" in output and expected in output


@pytest.mark.parametrize("provider", ["mailgun", "postmark"])
def test_an_anymail_provider_is_checked_with_the_settings_the_environment_produces(tmp_path, provider):
    """Not faked settings: the child builds ANYMAIL from EMAIL_URL and ANYMAIL_API_KEY as production does.
    Postmark's credential is a server token, not an API key: the key still counts."""
    database_url = f"sqlite:///{tmp_path}/db.sqlite3"
    assert manage("migrate", "-v0", database_url=database_url, var=tmp_path).returncode == 0
    mail = {"EMAIL_URL": f"anymail://{provider}"}
    with_key = manage("check_health", "--no-email", "--json", database_url=database_url, var=tmp_path,
                      ANYMAIL_API_KEY="key-live-123", **mail)
    assert statuses(with_key.stdout)["mail"] == "ok", with_key.stdout + with_key.stderr
    without = manage("check_health", "--no-email", "--json", database_url=database_url, var=tmp_path, **mail)
    report = json.loads(without.stdout)
    mail_check = next(check for check in report["checks"] if check["name"] == "mail")
    assert mail_check["status"] == "warning" and "ANYMAIL_API_KEY is empty" in mail_check["message"]


def test_configuration_errors_come_from_the_system_checks(settings):
    settings.STALE_AFTER_HOURS_BY_PARTNER = {"no-such-network": 5}
    code, output = check_health("--no-email")
    assert code == 2 and "CRITICAL  configuration" in output and "epnhook.E004" in output
    settings.STALE_AFTER_HOURS_BY_PARTNER = {}
    settings.WEBHOOK_TOKENS = []
    code, output = check_health("--no-email")
    assert code == 1 and "epnhook.W001" in output


def test_problems_are_emailed_once_per_throttle_period(inbox, settings):
    age_every_delivery(30)
    assert check_health()[0] == 1
    messages = inbox.handler.messages
    assert len(messages) == 1
    assert "Health WARNING: last postback epn_bz" in messages[0]["Subject"]
    body = messages[0].get_payload()
    assert "has the network disabled our URL?" in body and "docs/OPERATIONS.md" in body
    assert TEST_TOKEN not in body
    assert check_health()[0] == 1
    assert len(messages) == 1, "the same problem again within the throttle period must not mail again"
    settings.SPOOL_FREE_CRITICAL_MB = 10**12
    assert check_health()[0] == 2
    assert len(messages) == 2 and "Health CRITICAL" in messages[1]["Subject"], "a new problem mails at once"


def test_no_email_sends_nothing(inbox):
    age_every_delivery(30)
    assert check_health("--no-email")[0] == 1
    assert inbox.handler.messages == []


def test_an_unreachable_sqlite_database_is_critical_not_a_traceback(tmp_path):
    result = manage("check_health", "--no-email", database_url=f"sqlite:///{tmp_path}/missing/db.sqlite3", var=tmp_path)
    assert result.returncode == 2
    assert "CRITICAL  database" in result.stdout and "SKIPPED   migrations" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_concurrent_runs_store_each_spooled_postback_once(settings, tmp_path):
    database_url = f"sqlite:///{tmp_path}/db.sqlite3"
    assert manage("migrate", "-v0", database_url=database_url, var=tmp_path).returncode == 0
    settings.SPOOL_DIR = tmp_path / "spool"  # the children's spool
    for number in range(60):
        spool.write(raw_get(uniq_id=f"race-{number}"))
    runs = [start_manage("check_health", "--no-email", "--json", database_url=database_url, var=tmp_path)
            for _ in range(2)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert "Traceback" not in stderr, stderr
        assert json.loads(stdout)["exit_code"] in (0, 1)
    count = manage("shell", "-v0", "-c", "from orders.models import Delivery, Order; "
                   "print(Delivery.objects.filter(source='spool').count(), Order.objects.count())",
                   database_url=database_url, var=tmp_path)
    assert count.stdout.split() == ["60", "60"]
    assert spool.backlog() == 0


def test_json_output_stays_json_when_problems_are_logged(settings, tmp_path):
    # A quarantined spool entry is logged at ERROR while the report is being made: the log line must
    # not land in the JSON that a monitoring system parses from stdout.
    database_url = f"sqlite:///{tmp_path}/db.sqlite3"
    assert manage("migrate", "-v0", database_url=database_url, var=tmp_path).returncode == 0
    settings.SPOOL_DIR = tmp_path / "spool"  # the child's spool
    spool.incoming_dir().mkdir(parents=True)
    (spool.incoming_dir() / "00000000000000000001-broken.json").write_bytes(b'{"partner": "epn_bz", "meth')
    result = manage("check_health", "--no-email", "--json", database_url=database_url, var=tmp_path)
    assert json.loads(result.stdout)["exit_code"] in (1, 2)
    assert "spool entry 00000000000000000001-broken.json quarantined" in result.stderr  # the log line
    # The quarantine alert, printed by the console mail backend from its thread: sent before the
    # command exited, and not into the JSON.
    assert "Subject: [epnhook] A spooled postback could not be read and was quarantined" in result.stderr


@pytest.mark.mariadb
@pytest.mark.private_mariadb
@pytest.mark.django_db(transaction=True)
def test_runbook_the_database_was_down(stopped_private_mariadb, tmp_path, settings):
    """The steps of docs/OPERATIONS.md: check_health says critical while down, then drains once it is back."""
    server = stopped_private_mariadb
    url = server.url("epnhook_health")
    spool.write(raw_get(uniq_id="while-down"))
    down = manage("check_health", "--no-email", "--json", database_url=url, var=tmp_path)
    assert down.returncode == 2, down.stderr
    report = statuses(down.stdout)
    assert report["database"] == "critical" and report["spool"] == "critical" and report["migrations"] == "skipped"
    assert "Traceback" not in down.stderr
    assert len(list((tmp_path / "spool" / "incoming").glob("*.json"))) == 1

    server.start()
    try:
        server.sql("CREATE DATABASE IF NOT EXISTS epnhook_health CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        assert manage("migrate", "-v0", database_url=url, var=tmp_path).returncode == 0
        up = manage("check_health", "--no-email", "--json", database_url=url, var=tmp_path)
        document = json.loads(up.stdout)
        spool_check = next(check for check in document["checks"] if check["name"] == "spool")
        assert statuses(up.stdout)["database"] == "ok"
        assert spool_check["status"] == "ok" and spool_check["data"]["stored"] == 1
        assert server.sql("SELECT uniq_id FROM epnhook_health.orders_order").split() == ["while-down"]
        # Not every check is green (mail goes to the console here) but nothing is critical any more.
        assert up.returncode == 1
    finally:
        server.stop()


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_survives_a_connection_closed_by_wait_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout = 1")
    time.sleep(2.5)  # the server drops the idle connection
    code, output = check_health("--no-email", "--json")
    assert statuses(output)["database"] == "ok", output


@pytest.mark.parametrize(("value", "default", "by_partner"), [
    ("24", 24.0, {}),
    ("12,epn_bz:6", 12.0, {"epn_bz": 6.0}),
    ("epn_bz:0.5, other:0", 24.0, {"epn_bz": 0.5, "other": 0.0}),
])
def test_stale_after_hours_setting(monkeypatch, value, default, by_partner):
    monkeypatch.setenv("STALE_AFTER_HOURS", value)
    loaded = runpy.run_path(SETTINGS_FILE)
    assert (loaded["STALE_AFTER_HOURS"], loaded["STALE_AFTER_HOURS_BY_PARTNER"]) == (default, by_partner)


@pytest.mark.parametrize("value", ["soon", "epn_bz:-1", ":5", "epn_bz:inf", "epn_bz:"])
def test_bad_stale_after_hours_stops_the_service(monkeypatch, value):
    monkeypatch.setenv("STALE_AFTER_HOURS", value)
    with pytest.raises(ImproperlyConfigured, match="STALE_AFTER_HOURS"):
        runpy.run_path(SETTINGS_FILE)
