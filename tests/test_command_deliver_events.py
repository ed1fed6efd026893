"""`manage.py deliver_events` as it runs in production: a process of its own against a private MariaDB, posting to
a real receiver on loopback that verifies every request with `standardwebhooks`. The sender is killed with -9
mid-send, its database is killed mid-stream, and 10,000 events drain; nothing is lost, and each order's events
arrive in the order they were written. The drain's rate and memory are printed (run with -s)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from devtools.mariadb import PrivateMariaDB
from tests.live_service import migrate, production_env
from tests.manage_process import BASE_DIR, environment, manage, start_manage
from tests.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.private_mariadb

STATUSES = ("waiting", "completed")
# The schedule's delays, short: a retry within the test's patience. The production default is untouched.
SCHEDULE = "0,0.2,0.2,0.2,0.2,0.2,0.2,0.2"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.datadir)


@pytest.fixture
def database(mariadb, tmp_path, request):
    """A fresh, migrated database on the private server (running: a previous test may have killed it)."""
    if not mariadb.ping():
        mariadb.start()
    name = f"events_{request.node.name[5:40]}"
    mariadb.sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_unicode_ci")
    migrate(production_env(mariadb.url(name), tmp_path / "migrate", "consolemail://"))
    return mariadb.url(name)


@pytest.fixture
def receiver():
    with Receiver() as receiver:
        yield receiver


def outbound_env(receiver: Receiver) -> dict:
    return {"OUTBOUND_URL": receiver.url, "OUTBOUND_SECRET": SECRET, "OUTBOUND_TIMEOUT": "2",
            "OUTBOUND_RETRY_SCHEDULE": SCHEDULE}


def store_postbacks(database: str, var, receiver: Receiver, orders: int, first: int = 0) -> None:
    """Ingest `orders` orders, each waiting then completed, through the write path (2 events each)."""
    code = ("from orders.ingest import ingest\nfrom tests.factories import raw_get\n"
            f"for i in range({first}, {first + orders}):\n"
            f"    for status in {STATUSES!r}:\n"
            "        assert ingest(raw_get(uniq_id=f'K{i}', order_status=status)).outcome == 'created'\n")
    result = manage("shell", "-c", code, database_url=database, var=var, timeout=600, **outbound_env(receiver))
    assert result.returncode == 0, result.stderr


def undelivered(mariadb: PrivateMariaDB, database: str) -> int:
    name = database.rsplit("/", 1)[1]
    return int(mariadb.sql(f"SELECT COUNT(*) FROM {name}.orders_outboundevent WHERE state <> 'delivered'"))


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assert_everything_arrived_in_order(receiver: Receiver, orders: int, first: int = 0) -> None:
    expected = {("epn_bz", f"K{i}"): list(STATUSES) for i in range(first, first + orders)}
    assert receiver.statuses() == expected
    assert receiver.invalid == 0


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, as systemd and docker stop it: it finishes the event in flight and exits 0. Returns its log."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out + err


def test_killed_mid_send_it_sends_the_event_again_with_the_same_id(mariadb, database, receiver, tmp_path):
    store_postbacks(database, tmp_path, receiver, 150)
    receiver.hold_at = 100  # the 100th event reaches the site, and the sender waits for the answer
    receiver.hang_seconds = 1.5
    sender = start_manage("deliver_events", database_url=database, var=tmp_path, **outbound_env(receiver))
    try:
        wait_until(lambda: len(receiver.delivered) >= 100, 120, "100 events")
        held = receiver.delivered[99].webhook_id
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()
    restarted = start_manage("deliver_events", database_url=database, var=tmp_path, **outbound_env(receiver))
    try:
        wait_until(lambda: undelivered(mariadb, database) == 0, 120, "the outbox to drain")
    finally:
        stop(restarted)
    ids = [item.webhook_id for item in receiver.delivered]
    assert ids.count(held) == 2, "the event in flight is sent again, under its own webhook-id"
    # The events whose attempts were not recorded yet went again too, each once more, under its own id.
    assert len(set(ids)) == 300 and max(ids.count(webhook_id) for webhook_id in ids) == 2
    assert_everything_arrived_in_order(receiver, 150)


def test_the_database_killed_mid_stream_loses_nothing(mariadb, database, receiver, tmp_path):
    store_postbacks(database, tmp_path, receiver, 150)
    receiver.delay = 0.01
    sender = start_manage("deliver_events", database_url=database, var=tmp_path, **outbound_env(receiver))
    try:
        wait_until(lambda: len(receiver.delivered) >= 60, 120, "60 events")
        mariadb.kill()
        time.sleep(3)
        assert sender.poll() is None, "the sender outlives its database"
        mariadb.start()
        wait_until(lambda: undelivered(mariadb, database) == 0, 180, "the outbox to drain")
    finally:
        log = stop(sender) if sender.poll() is None else "".join(sender.communicate())
    assert "the database failed" in log
    assert len({item.webhook_id for item in receiver.delivered}) == 300
    assert_everything_arrived_in_order(receiver, 150)


def test_ten_thousand_events_drain_in_bounded_memory(mariadb, database, receiver, tmp_path, terminal_report):
    """Peak RSS draining 10,000 events is that of draining 1,000 (give or take a little): the sender holds a
    chunk of ids, not the backlog."""
    store_postbacks(database, tmp_path, receiver, 500)
    small_rss, _, _ = drain_once(database, tmp_path, receiver, 1_000)
    store_postbacks(database, tmp_path, receiver, 5_000, first=500)
    large_rss, seconds, count = drain_once(database, tmp_path, receiver, 10_000)
    assert undelivered(mariadb, database) == 0
    assert_everything_arrived_in_order(receiver, 5_500)
    line = (f"deliver_events drained {count} events in {seconds:.1f} s ({count / seconds:.0f} events/s); "
            f"peak RSS {large_rss / 1024:.1f} MiB (1,000 events: {small_rss / 1024:.1f} MiB)")
    print(line)
    terminal_report(line)
    assert large_rss < small_rss + 16 * 1024, line  # KiB


def drain_once(database: str, var, receiver: Receiver, expected: int) -> tuple[int, float, int]:
    """Run `deliver_events --once`; its peak RSS (KiB, from the kernel's account of the child), seconds, and
    events sent."""
    before = len(receiver.delivered)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "manage.py", "deliver_events", "--once"], cwd=BASE_DIR,
                               env=environment(database, var, **outbound_env(receiver)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    assert process.returncode == 0
    sent = len(receiver.delivered) - before
    assert sent == expected
    return usage.ru_maxrss, seconds, sent
