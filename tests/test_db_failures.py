"""No postback is lost when MariaDB fails: proven against gunicorn, a private mariadbd and real SMTP.

Every test runs the production configuration (gunicorn.conf.py, 2 workers, epnhook.settings) against
a private mariadbd that it kills (SIGKILL), freezes, locks or reconfigures; the admins' mailbox is a
real SMTP server on loopback. The numbers that docs/DATABASE_ERROR_SCENARIOS.md quotes are printed (run with -s).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack, nullcontext
from itertools import count as counter

import MySQLdb
import pytest

from devtools.mariadb import PrivateMariaDB, free_port
from tests.live_service import (
    BASE_DIR,
    TOKEN,
    Service,
    SilentSmtp,
    SmtpSink,
    connections_opened,
    count,
    migrate,
    production_env,
    service_connections,
    service_with_mailbox,
    stored_orders,
)

pytestmark = pytest.mark.private_mariadb

# The promise to senders: every answer, 503 included, within this many seconds.
BOUND = 5.0
# DATABASE_READ_TIMEOUT's default: how long a query on a frozen server waits.
READ_TIMEOUT = 3.0
# Background alert emails finish within EMAIL_TIMEOUT (3 s); this leaves them room to arrive.
MAIL_GRACE = 4.0


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    server.sql("CREATE DATABASE epnhook CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    migrate(production_env(server.url(), tmp_path_factory.mktemp("migrate"), "consolemail://"))
    yield server
    server.stop()
    shutil.rmtree(server.datadir)  # ~150 MB; its log stays beside it for a failed run's post-mortem


@pytest.fixture
def up(mariadb):
    """The private server, running (a previous test may have left it killed)."""
    if not mariadb.ping():
        mariadb.start()
    return mariadb


def assert_no_token_anywhere(service: Service, smtp: SmtpSink | None = None):
    assert TOKEN not in service.log(), "a webhook token reached gunicorn's output"
    for text in smtp.texts() if smtp else ():
        assert TOKEN not in text, "a webhook token reached an email"


def wait_for_mail(smtp: SmtpSink, at_least: int, timeout: float = MAIL_GRACE) -> None:
    deadline = time.monotonic() + timeout
    while len(smtp.messages) < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # and a moment more, so that an extra (unwanted) email would be seen


def test_kill_during_load_loses_nothing_and_doubles_nothing(up, tmp_path):
    """2,000 unique postbacks at concurrency 8; mariadbd is SIGKILLed mid-way and restarted ~5 s later.
    Both workers spool during the outage, and the admins get one email: the throttle is shared by
    the processes, not kept in each."""
    total, concurrency = 2000, 8
    ids = [f"kill-{n:05d}" for n in range(total)]
    with service_with_mailbox(up.url(), tmp_path) as (service, smtp):
        next_index, lock = counter(), threading.Lock()
        replies, acked = [], set()

        def sender():
            # Like a network: retry every non-2xx with capped exponential backoff, until a 2xx.
            while (index := next(next_index)) < total:
                delay = 0.1
                while True:
                    reply = service.postback(ids[index])
                    with lock:
                        replies.append(reply)
                        if 200 <= reply.status < 300:
                            acked.add(ids[index])
                    if 200 <= reply.status < 300:
                        break
                    time.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, 2.0)

        threads = [threading.Thread(target=sender) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        while len(acked) < total // 3 and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        up.kill()
        # Which workers hold a postback while the database is down (after its first half second, when
        # no attempt can succeed any more, until well before the restart): each spools what it holds.
        outage, spooling_workers = time.monotonic(), set()
        while time.monotonic() < outage + 4:
            if time.monotonic() > outage + 0.5:
                spooling_workers |= service.busy_workers()
            time.sleep(0.02)
        time.sleep(outage + 5 - time.monotonic())
        with lock:
            acknowledged_while_down_or_before = set(acked)
        up.start()
        stored_at_restart = set(stored_orders(up, "kill-"))
        for thread in threads:
            thread.join(300)
        assert not any(thread.is_alive() for thread in threads)
        service.wait_for_empty_spool()  # no /health probe here: the senders' own postbacks start the drain
        wait_for_mail(smtp, 1)

        # Durability: whatever was acknowledged with a 2xx had been committed before the crash.
        assert acknowledged_while_down_or_before <= stored_at_restart
        stored = stored_orders(up, "kill-")
        assert len(stored) == total and set(stored) == set(ids), "every postback stored exactly once"
        statuses = Counter(reply.status for reply in replies)
        assert statuses[500] == statuses[502] == statuses[0] == 0, statuses
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0, "the outage was not observed at all"
        worst_503 = max(reply.seconds for reply in replies if reply.status == 503)
        assert worst_503 <= BOUND
        assert spooling_workers == service.worker_pids() and len(spooling_workers) == 2, \
            "the outage must reach both workers, or one email would prove nothing about a shared throttle"
        assert len(smtp.messages) == 1 and "Database unavailable" in smtp.subjects()[0], smtp.subjects()
        spooled = count(up, "SELECT COUNT(*) FROM epnhook.orders_delivery WHERE source = 'spool' "
                            "AND query_string LIKE '%uniq_id=kill-%'")
        assert spooled == statuses[503], "each spooled request ends up as exactly one delivery"
        assert "Traceback" not in service.log(), "an exception escaped a request or a drain thread"
        assert_no_token_anywhere(service, smtp)
        print(f"\n[kill during load] replies {dict(statuses)}, worst 503 {worst_503:.2f}s, "
              f"spooled deliveries drained {spooled}, emails {len(smtp.messages)}: {smtp.subjects()}")


def test_replicas_sharing_the_alert_state_mail_once_for_one_outage(up, tmp_path):
    """Three replicas of the service, each with its own spool, sharing ALERT_STATE_DIR (replicas on one
    host with one volume for it, docs/SCALING.md): the database goes down under all three at once, each
    spools, and the admins get one email, not three."""
    alert_dir = tmp_path / "alerts"
    with SmtpSink() as smtp, ExitStack() as stack:
        replicas = [
            stack.enter_context(Service(production_env(up.url(), tmp_path / f"replica{n}", smtp.url(),
                                                       ALERT_STATE_DIR=str(alert_dir)), tmp_path / f"replica{n}",
                                        workers=1))
            for n in range(3)
        ]
        up.kill()
        barrier, replies = threading.Barrier(len(replicas)), {}

        def send(n, replica):
            barrier.wait()
            replies[n] = replica.postback(f"replicas-{n}")

        threads = [threading.Thread(target=send, args=entry) for entry in enumerate(replicas)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        up.start()
        for replica in replicas:
            replica.drain_after_recovery()
        wait_for_mail(smtp, 1)

        assert [replies[n].status for n in range(len(replicas))] == [503] * len(replicas)
        assert sorted(stored_orders(up, "replicas-")) == [f"replicas-{n}" for n in range(len(replicas))]
        assert len(smtp.messages) == 1 and "Database unavailable" in smtp.subjects()[0], smtp.subjects()
        for replica in replicas:
            assert_no_token_anywhere(replica, smtp)
        print(f"\n[three replicas, one alert directory] replies {[replies[n].status for n in range(3)]}, "
              f"emails {len(smtp.messages)}: {smtp.subjects()}")


def test_the_image_healthcheck_is_alive_while_the_database_is_down(up, tmp_path):
    """docker/healthcheck.py, the image's HEALTHCHECK, reports whether gunicorn answers, not whether the
    database does: Traefik leaves out a container docker calls unhealthy, and then no postback would
    reach the spool."""
    with Service(production_env(up.url(), tmp_path, "consolemail://"), tmp_path, workers=1) as service:
        environment = {**service.env, "DOMAIN": "127.0.0.1"}

        def healthcheck() -> int:
            return subprocess.run([sys.executable, "docker/healthcheck.py"], cwd=BASE_DIR, env=environment,
                                  capture_output=True, timeout=30).returncode

        assert healthcheck() == 0
        up.kill()
        try:
            assert service.get("/health").status == 503
            assert healthcheck() == 0
        finally:
            up.start()
    assert healthcheck() == 1, "gunicorn is gone"


def test_sender_that_never_retries_is_stored_from_the_spool(up, tmp_path):
    """SPOOL_ACK_STATUS=202, the setting for such a network: 200 postbacks sent once, database down."""
    ids = [f"once-{n:04d}" for n in range(200)]
    with service_with_mailbox(up.url(), tmp_path, SPOOL_ACK_STATUS="202") as (service, smtp):
        up.kill()
        replies = send_once(service, ids, concurrency=8)
        health_down = service.get("/health")
        up.start()

        assert Counter(reply.status for reply in replies) == {202: 200}
        assert max(reply.seconds for reply in replies) <= BOUND
        assert health_down.status == 503 and b'"spool_backlog": 200' in health_down.body
        # Nobody sends again: the container's health probe is what drains the spool.
        service.drain_after_recovery()
        wait_for_mail(smtp, 1)

        stored = stored_orders(up, "once-")
        assert sorted(stored) == ids
        assert count(up, "SELECT COUNT(*) FROM epnhook.orders_delivery WHERE source = 'spool'"
                         " AND query_string LIKE '%uniq_id=once-%'") == 200
        assert len(smtp.messages) == 1, smtp.subjects()
        assert_no_token_anywhere(service, smtp)
        print(f"\n[never retries] worst 202 {max(r.seconds for r in replies):.2f}s, "
              f"emails {len(smtp.messages)}: {smtp.subjects()}")


def send_once(service: Service, ids: list[str], concurrency: int) -> list:
    replies, lock, pending = [], threading.Lock(), iter(ids)

    def sender():
        while True:
            with lock:
                uniq_id = next(pending, None)
            if uniq_id is None:
                return
            reply = service.postback(uniq_id)
            with lock:
                replies.append(reply)

    threads = [threading.Thread(target=sender) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return replies


@pytest.mark.parametrize("lock_kind", ["row", "gap"])
def test_held_lock_answers_503_within_the_bound(up, tmp_path, lock_kind):
    """Another connection holds the lock the insert needs: 503 after one 2 s lock wait, not InnoDB's 50 s."""
    uniq_id = f"lock-{lock_kind}"
    with service_with_mailbox(up.url(), tmp_path) as (service, smtp):
        if lock_kind == "row":
            assert service.postback(uniq_id).status == 200  # the row whose lock the duplicate check needs
        holder = MySQLdb.connect(host="127.0.0.1", port=up.port, user="root", database="epnhook")
        try:
            cursor = holder.cursor()
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION")
            # FOR UPDATE locks the existing row, or, when there is none, the gap where it would go.
            cursor.execute("SELECT id FROM orders_order WHERE partner = 'epn_bz' AND uniq_id = %s "
                           "AND order_status = 'waiting' FOR UPDATE", [uniq_id])
            reply = service.postback(uniq_id)
        finally:
            holder.rollback()
            holder.close()
        assert reply.status == 503, reply.body
        assert reply.seconds <= BOUND
        assert reply.headers.get("Retry-After")
        service.drain_after_recovery()
        wait_for_mail(smtp, 1)
        assert stored_orders(up, uniq_id) == [uniq_id]
        assert count(up, f"SELECT COUNT(*) FROM epnhook.orders_delivery WHERE spool_id IS NOT NULL "
                         f"AND query_string LIKE '%uniq_id={uniq_id}&%'") == 1
        assert len(smtp.messages) == 1 and "Database unavailable" in smtp.subjects()[0]
        assert "1205" in smtp.texts()[0], "the alert names the error (lock wait timeout)"
        assert_no_token_anywhere(service, smtp)
        print(f"\n[held {lock_kind} lock] 503 after {reply.seconds:.2f}s, emails {len(smtp.messages)}")


@pytest.mark.parametrize("mail", ["refused", "hanging"])
def test_mail_server_down_during_the_outage_does_not_slow_answers(up, tmp_path, mail):
    ids = [f"mail-{mail}-{n:02d}" for n in range(16)]
    with SilentSmtp() if mail == "hanging" else nullcontext() as silent:
        email_url = silent.url() if silent else f"smtp://127.0.0.1:{free_port()}"  # nobody listens there
        with Service(production_env(up.url(), tmp_path, email_url), tmp_path) as service:
            up.kill()
            replies = send_once(service, ids, concurrency=4)
            up.start()
            assert Counter(reply.status for reply in replies) == {503: len(ids)}
            worst = max(reply.seconds for reply in replies)
            assert worst <= BOUND
            time.sleep(MAIL_GRACE)  # EMAIL_TIMEOUT (3 s) runs out on the alert's thread
            assert "could not send the alert email" in service.log()
            service.drain_after_recovery()
            assert sorted(stored_orders(up, f"mail-{mail}-")) == ids
            assert_no_token_anywhere(service)
            print(f"\n[mail {mail}] worst 503 {worst:.2f}s, emails 0 (the mail server was {mail})")


def test_corrupt_spool_entry_is_quarantined_and_its_neighbours_stored(up, tmp_path):
    ids = ["corrupt-1", "corrupt-2", "corrupt-3"]
    with service_with_mailbox(up.url(), tmp_path) as (service, smtp):
        up.kill()
        assert [service.postback(uniq_id).status for uniq_id in ids] == [503, 503, 503]
        entries = sorted((service.spool_dir / "incoming").glob("*.json"))
        assert len(entries) == 3
        # A torn write of the middle entry (power loss, disk trouble), and a write interrupted before rename.
        entries[1].write_bytes(entries[1].read_bytes()[:40])
        torn = service.spool_dir / "incoming" / ".00000000000000000001-torn.tmp"
        torn.write_bytes(b'{"partner": "epn_bz", "meth')
        old = time.time() - 2 * 3600
        import os

        os.utime(torn, (old, old))
        up.start()

        service.drain_after_recovery()
        wait_for_mail(smtp, 2)
        assert sorted(stored_orders(up, "corrupt-")) == ["corrupt-1", "corrupt-3"]
        assert service.quarantined() == sorted([entries[1].name, torn.name])
        assert not torn.exists()
        subjects = smtp.subjects()
        assert sum("quarantined" in subject for subject in subjects) == 1, subjects
        assert sum("Database unavailable" in subject for subject in subjects) == 1, subjects
        assert service.postback("corrupt-4").status == 200, "the service still works"
        assert_no_token_anywhere(service, smtp)
        print(f"\n[corrupt spool entry] quarantined {service.quarantined()}, emails {len(subjects)}: {subjects}")


@pytest.fixture
def narrow_column(up):
    """A bug of ours, as the database sees it: a column too narrow for the data (error 1406)."""
    up.sql("ALTER TABLE epnhook.orders_order MODIFY sub5 VARCHAR(3) NOT NULL DEFAULT ''")
    yield
    up.sql("ALTER TABLE epnhook.orders_order MODIFY sub5 VARCHAR(255) NOT NULL DEFAULT ''")


def test_unhandled_error_is_json_500_keeps_the_delivery_and_mails_once(up, narrow_column, tmp_path):
    """A bug is no database outage: JSON 500, the raw delivery kept, one (throttled) email, no token."""
    with service_with_mailbox(up.url(), tmp_path) as (service, smtp):
        replies = [service.postback(f"bug-{n}", sub5="far too long") for n in range(3)]
        not_found = service.get(f"/webhook/{TOKEN}/no/such/page")
        bad_host = service.get(f"/webhook/{TOKEN}", headers={"Host": "evil.example"})
        wait_for_mail(smtp, 1)

        assert [reply.status for reply in replies] == [500, 500, 500]
        assert all(reply.headers["Content-Type"] == "application/json" for reply in replies)
        assert not_found.status == 404 and not_found.headers["Content-Type"] == "application/json"
        assert bad_host.status == 400
        assert count(up, "SELECT COUNT(*) FROM epnhook.orders_delivery WHERE outcome = 'error' "
                         "AND query_string LIKE '%uniq_id=bug-%'") == 3
        assert stored_orders(up, "bug-") == []
        assert service.spool_backlog() == 0, "a bug is not an outage: nothing to retry from the spool"
        assert len(smtp.messages) == 1, smtp.subjects()
        assert "Internal Server Error" in smtp.subjects()[0] and "1406" in smtp.texts()[0]
        assert "Not Found: /webhook/<redacted>" in service.log()
        assert_no_token_anywhere(service, smtp)
        print(f"\n[unhandled error] statuses {[r.status for r in replies]}, emails {len(smtp.messages)}")


def test_unhandled_error_does_not_wait_for_a_hung_mail_server(up, narrow_column, tmp_path):
    with SilentSmtp() as silent, Service(production_env(up.url(), tmp_path, silent.url()), tmp_path) as service:
        reply = service.postback("bug-hung-mail", sub5="far too long")
        assert reply.status == 500
        assert reply.seconds < 2, "the 500 waited for the mail server (EMAIL_TIMEOUT is 3 s)"
        time.sleep(MAIL_GRACE)
        assert silent.connections, "the error email was attempted"
        assert_no_token_anywhere(service)


def connect_every_thread(service: Service, database: PrivateMariaDB) -> set[int]:
    """Have every request thread of every worker open its persistent connection; return their ids.

    Bursts of concurrent /health probes, twice as many as there are threads, go out until the server
    counts one connection per thread: no worker can take a whole burst (a worker with
    gunicorn.conf.py's worker_connections, three per thread, accepts no more), and each runs what it
    took on all its threads at once."""
    slots, burst = service.workers * service.threads, 2 * service.workers * service.threads

    def probe(barrier: threading.Barrier):
        barrier.wait()
        service.get("/health")

    for _ in range(20):
        barrier = threading.Barrier(burst)
        probes = [threading.Thread(target=probe, args=(barrier,)) for _ in range(burst)]
        for thread in probes:
            thread.start()
        for thread in probes:
            thread.join(30)
        connections = service_connections(database)
        if len(connections) == slots:
            return connections
    pytest.fail(f"{len(connections)} connections after 20 bursts, for {slots} threads")


def test_postbacks_reuse_their_connections_and_survive_killed_ones(up, tmp_path):
    """CONN_MAX_AGE under gunicorn: a postback opens no connection of its own, and a connection the
    server dropped meanwhile (wait_timeout, a restart, KILL) costs no postback."""
    with service_with_mailbox(up.url(), tmp_path) as (service, smtp):
        pooled = connect_every_thread(service, up)
        opened_before = connections_opened(up)
        replies = send_once(service, [f"reuse-{n:03d}" for n in range(200)], concurrency=4)
        opened = connections_opened(up) - opened_before - 1  # not counting the second status query's own
        assert Counter(reply.status for reply in replies) == {200: 200}
        assert opened == 0, f"200 postbacks opened {opened} connection(s)"
        assert service_connections(up) == pooled

        up.sql("; ".join(f"KILL CONNECTION {connection}" for connection in pooled))
        replies = send_once(service, [f"reuse-killed-{n:02d}" for n in range(50)], concurrency=4)
        assert Counter((reply.status, json.loads(reply.body)["status"]) for reply in replies) == {(200, "created"): 50}
        assert service_connections(up).isdisjoint(pooled), "every thread met its killed connection"
        assert len(stored_orders(up, "reuse-")) == 250 and service.spool_backlog() == 0
        time.sleep(1)
        assert smtp.messages == [], "no postback was spooled, so no alert"
        print(f"\n[connection reuse] 250 postbacks on {len(pooled)} pooled connections, 0 opened per postback")


def test_frozen_server_answers_503_within_the_bound(up, tmp_path):
    """mariadbd stops answering without closing its connections (SIGSTOP: a hung host or disk stall).
    This is the case the read and connect timeouts exist for; a killed server refuses at once."""
    with service_with_mailbox(up.url(), tmp_path) as (service, smtp):
        # Every thread holds a pooled connection, so that each postback after the freeze meets one and
        # waits out the read timeout (its health-check ping), then the connect timeout.
        connect_every_thread(service, up)
        os.kill(up.process.pid, signal.SIGSTOP)
        try:
            replies = send_once(service, [f"frozen-{n}" for n in range(4)], concurrency=4)
        finally:
            os.kill(up.process.pid, signal.SIGCONT)
        assert Counter(reply.status for reply in replies) == {503: 4}
        quickest, worst = min(reply.seconds for reply in replies), max(reply.seconds for reply in replies)
        assert quickest >= READ_TIMEOUT, "a postback met no pooled connection: the read timeout was not tried"
        assert worst <= BOUND
        service.drain_after_recovery()
        wait_for_mail(smtp, 1)
        assert sorted(stored_orders(up, "frozen-")) == [f"frozen-{n}" for n in range(4)]
        assert len(smtp.messages) == 1, smtp.subjects()
        assert_no_token_anywhere(service, smtp)
        print(f"\n[frozen server] 503 after {quickest:.2f}-{worst:.2f}s, emails {len(smtp.messages)}")


@pytest.mark.parametrize(("problem", "code"), [("unknown database", "1049"), ("wrong password", "1045")])
def test_configuration_error_answers_503_at_once_and_says_what_to_fix(up, tmp_path, problem, code):
    url = up.url("no_such_database") if problem == "unknown database" else \
        up.url().replace("root@", "root:wrong-password@")
    with service_with_mailbox(url, tmp_path) as (service, smtp):
        reply = service.postback(f"config-{code}")
        wait_for_mail(smtp, 1)
        assert reply.status == 503 and reply.headers.get("Retry-After")
        assert reply.seconds < 1.5, "a configuration error is not retried"
        assert service.spool_backlog() == 1
        assert service.get("/health").status == 503
        assert len(smtp.messages) == 1 and "configuration error" in smtp.subjects()[0]
        text = smtp.texts()[0]
        assert code in text and "DATABASE_URL" in text
        assert "wrong-password" not in text and "wrong-password" not in service.log()
        assert_no_token_anywhere(service, smtp)
        print(f"\n[configuration: {problem}] 503 after {reply.seconds:.2f}s, emails {len(smtp.messages)}")


@pytest.fixture
def app_user_url(up):
    """DATABASE_URL of an application user as in production: no SUPER, so read_only and
    max_connections bind it (root is exempt from both)."""
    up.sql("CREATE USER IF NOT EXISTS 'epnhook'@'127.0.0.1' IDENTIFIED BY 'app-password'; "
           "GRANT ALL ON epnhook.* TO 'epnhook'@'127.0.0.1'")
    return up.url().replace("root@", "epnhook:app-password@")


def test_read_only_server_spools_then_drains_when_writable_again(up, app_user_url, tmp_path):
    """read_only (an operator's failover, a replica promoted late): error 1290, retried, then spooled."""
    with service_with_mailbox(app_user_url, tmp_path) as (service, smtp):
        up.sql("SET GLOBAL read_only = ON")
        try:
            reply = service.postback("readonly-1")
        finally:
            up.sql("SET GLOBAL read_only = OFF")
        assert reply.status == 503 and reply.seconds <= BOUND
        service.drain_after_recovery()
        wait_for_mail(smtp, 1)
        assert stored_orders(up, "readonly-") == ["readonly-1"]
        assert len(smtp.messages) == 1 and "1290" in smtp.texts()[0]
        assert_no_token_anywhere(service, smtp)
        print(f"\n[read-only] 503 after {reply.seconds:.2f}s, emails {len(smtp.messages)}")


def test_too_many_connections_spools_then_drains(up, app_user_url, tmp_path):
    """Every connection slot taken (error 1040): retried, then spooled; stored once a slot frees up."""
    with service_with_mailbox(app_user_url, tmp_path) as (service, smtp):
        assert service.postback("slots-0").status == 200
        up.sql("SET GLOBAL max_connections = 10")  # MariaDB's minimum
        up.sql("KILL USER epnhook")  # the workers' pooled connections, so that they must connect anew
        holders = []
        try:
            with pytest.raises(MySQLdb.OperationalError, match="1040"):
                for _ in range(20):  # take every slot, until the server says so
                    holders.append(MySQLdb.connect(host="127.0.0.1", port=up.port, user="epnhook",
                                                   password="app-password"))
            reply = service.postback("slots-1")
        finally:
            for holder in holders:
                holder.close()
            up.sql("SET GLOBAL max_connections = 200")
        assert reply.status == 503 and reply.seconds <= BOUND
        service.drain_after_recovery()
        wait_for_mail(smtp, 1)
        assert sorted(stored_orders(up, "slots-")) == ["slots-0", "slots-1"]
        assert len(smtp.messages) == 1 and "1040" in smtp.texts()[0]
        assert_no_token_anywhere(service, smtp)
        print(f"\n[too many connections] 503 after {reply.seconds:.2f}s, emails {len(smtp.messages)}")
