"""The service on a MariaDB Galera cluster: two gunicorn replicas, each writing through its own node of the
private 3-node cluster (the session fixture `galera_cluster`, devtools.galera), and the ledger exact under
faults: identical and conflicting postbacks sent to both at once, a node killed mid-load, a replica killed
mid-load, a node cut off from the others.

Replica 1 writes through node 1, replica 2 through node 2; node 3 takes no client but the tests' reads,
which wait until it has applied everything committed anywhere (wsrep_sync_wait), so a row counted there is
a row the whole cluster has. Where a load balancer matters, `Balancer` does what Traefik does in front of
the replicas: it probes /health and sends postbacks round robin to the replicas that answered 200; the
senders retry every answer that is not 2xx, as the networks do. Each test leaves the cluster and both
replicas running.

Each scenario adds a line to the end of the run's summary: postbacks sent (every request, retries
included), acknowledged (2xx), stored (orders, and deliveries), the certification conflicts retried (the
replicas' retry lines with error 1213, and the nodes' own count of certification failures and brute-force
aborts), current rows per order, and every answer that is not 2xx.
"""

import itertools
import json
import os
import re
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_service import Reply, Service, SmtpSink, migrate, production_env

pytestmark = [pytest.mark.private_mariadb, pytest.mark.galera]

DATABASE = "epnhook"
# How often the balancer probes /health (Traefik's interval in docs/SCALING.md is longer: the tests are short).
PROBE_INTERVAL = 0.5
# One line per retried attempt (orders.ingest), with the MariaDB error code.
RETRY_LINE = re.compile(r"postback attempt \d+ failed, retrying in \d+ ms: .*? MariaDB error (\d+) ")
DEADLOCK = "1213"  # what a transaction that failed certification gets
# The nodes' own counters: transactions of theirs refused at certification, and ones aborted by a replicated
# write that needed their locks.
GALERA_COUNTERS = ("wsrep_local_cert_failures", "wsrep_local_bf_aborts")


class Replica(Service):
    """One replica of the service: gunicorn, as in production, writing through one Galera node."""

    def __init__(self, name: str, node, var_dir: Path, smtp: SmtpSink, alert_dir: Path):
        env = production_env(node.url(DATABASE), var_dir, smtp.url(), ALERT_STATE_DIR=str(alert_dir))
        super().__init__(env, var_dir)
        self.name, self.node = name, node

    def __repr__(self) -> str:
        return f"<Replica {self.name} on {self.node.name}>"

    def kill(self) -> None:
        """SIGKILL to gunicorn's arbiter and every worker (its process group), as in a crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def log_mark(self) -> int:
        return len(self.log())

    def retries_since(self, mark: int) -> Counter:
        """Retried attempts since `mark` (a log_mark()), by MariaDB error code."""
        return Counter(RETRY_LINE.findall(self.log()[mark:]))


def query(node, statement: str) -> list[list[str]]:
    """The rows of `statement` (each a list of strings), read on `node` once it has applied every write
    committed anywhere in the cluster before the read."""
    output = node.sql(f"SET SESSION wsrep_sync_wait=1; USE {DATABASE}; {statement}")
    return [line.split("\t") for line in output.splitlines()]


@pytest.fixture(scope="module")
def cluster(galera_cluster):
    """The session's cluster with the service's database, migrated."""
    galera_cluster.ensure_running()
    node = galera_cluster.node(1)
    node.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    with tempfile.TemporaryDirectory() as var_dir:
        migrate(production_env(node.url(DATABASE), Path(var_dir), "consolemail://"))
    yield galera_cluster
    galera_cluster.ensure_running()
    node.sql(f"DROP DATABASE {DATABASE}")


@pytest.fixture(scope="module")
def replicas(cluster, tmp_path_factory):
    """Replica 1 on node 1 and replica 2 on node 2, each with its own spool, sharing the alert throttle's
    directory (as replicas on one host share a volume); both running when each test starts."""
    alert_dir = tmp_path_factory.mktemp("alerts")
    with SmtpSink() as smtp:
        running = [Replica(f"replica {index}", cluster.node(index), tmp_path_factory.mktemp(f"replica{index}"), smtp,
                           alert_dir) for index in (1, 2)]
        for replica in running:
            replica.__enter__()
        try:
            yield running
        finally:
            for replica in running:
                replica.__exit__(None, None, None)


class Scenario:
    """What one scenario counts: every reply, the replicas' retries and the nodes' Galera counters."""

    def __init__(self, name: str, cluster, replicas: list[Replica], prefix: str):
        self.name, self.cluster, self.replicas, self.prefix = name, cluster, replicas, prefix
        self.replies: list[tuple[str, Replica, Reply]] = []  # (uniq_id, replica, reply)
        self.lock = threading.Lock()
        self.marks = {replica: replica.log_mark() for replica in replicas}
        self.galera_before = self.galera_counters()

    def record(self, uniq_id: str, replica: Replica, reply: Reply) -> None:
        with self.lock:
            self.replies.append((uniq_id, replica, reply))

    def galera_counters(self) -> dict[str, Counter]:
        """GALERA_COUNTERS of each running node, by node name."""
        return {node.name: Counter({name: int(value) for name, value in node.status().items()
                                    if name in GALERA_COUNTERS})
                for node in self.cluster.nodes if node.running()}

    def galera_counted(self) -> Counter:
        """What the nodes counted since the scenario began (all of it, on a node that restarted meanwhile)."""
        total = Counter()
        for name, after in self.galera_counters().items():
            before = self.galera_before.get(name, Counter())
            restarted = any(after[counter] < before[counter] for counter in GALERA_COUNTERS)
            total.update(after if restarted else after - before)
        return total

    def statuses(self) -> Counter:
        return Counter(reply.status for _, _, reply in self.replies)

    def acknowledged(self) -> list[tuple[str, Replica, Reply]]:
        return [entry for entry in self.replies if 200 <= entry[2].status < 300]

    def retries(self) -> Counter:
        return sum((replica.retries_since(self.marks[replica]) for replica in self.replicas), Counter())

    def stored_orders(self) -> Counter:
        """Order rows per uniq_id of this scenario."""
        return Counter(uniq_id for uniq_id, in query(self.reader(), f"SELECT uniq_id FROM orders_order "
                                                                   f"WHERE uniq_id LIKE '{self.prefix}%'"))

    def current_rows(self) -> Counter:
        """How many orders have 0, 1, 2... rows marked current."""
        rows = query(self.reader(), f"SELECT SUM(is_current) FROM orders_order WHERE uniq_id LIKE '{self.prefix}%' "
                                    "GROUP BY partner, uniq_id")
        return Counter(int(current) for current, in rows)

    def deliveries(self, where: str = "TRUE") -> int:
        return int(query(self.reader(), f"SELECT COUNT(*) FROM orders_delivery WHERE query_string LIKE "
                                        f"'%uniq_id={self.prefix}%' AND {where}")[0][0])

    def reader(self):
        return self.cluster.node(3)

    def assert_acknowledged_deliveries_are_stored_once(self) -> None:
        """Each 2xx answer names its delivery: all distinct, all in the database."""
        ids = [json.loads(reply.body)["delivery_id"] for _, _, reply in self.acknowledged()]
        assert len(set(ids)) == len(ids), "two acknowledgements named one delivery"
        stored = query(self.reader(), f"SELECT COUNT(*) FROM orders_delivery WHERE id IN ({','.join(map(str, ids))})")
        assert int(stored[0][0]) == len(ids), "an acknowledged delivery is missing"

    def report(self, terminal_report, **extra) -> str:
        retries = self.retries()
        galera = self.galera_counted()
        stored = self.stored_orders()
        not_2xx = {status: n for status, n in sorted(self.statuses().items()) if not 200 <= status < 300}
        fields = [
            f"sent {len(self.replies)}",
            f"acknowledged {len(self.acknowledged())}",
            f"stored {len(stored)} orders ({sum(stored.values())} rows) + {self.deliveries()} deliveries",
            f"certification conflicts retried {retries[DEADLOCK]}"
            f" (nodes: {galera['wsrep_local_cert_failures']} certification failures,"
            f" {galera['wsrep_local_bf_aborts']} brute-force aborts)",
            f"other retries {dict(retries - Counter({DEADLOCK: retries[DEADLOCK]})) or 0}",
            f"current rows per order {dict(sorted(self.current_rows().items()))}",
            f"answers not 2xx {not_2xx or 0}",
            *(f"{name} {value}" for name, value in extra.items()),
        ]
        line = f"[galera: {self.name}] " + ", ".join(fields)
        terminal_report(line)
        print(f"\n{line}")
        return line


class Balancer:
    """Traefik, as the senders see it: a probe of every replica's /health each PROBE_INTERVAL, and each
    postback sent to the next replica (round robin) whose last probe answered 200, or to any replica when
    none did. `probes` keeps every probe's answer, by replica."""

    def __init__(self, replicas: list[Replica]):
        self.replicas = replicas
        self.healthy = list(replicas)
        self.probes: dict[Replica, list[int]] = {replica: [] for replica in replicas}
        self.turn = itertools.count()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.probe, daemon=True)

    def probe(self) -> None:
        while not self.stopping.is_set():
            for replica in self.replicas:
                status = replica.get("/health", timeout=5).status
                self.probes[replica].append(status)
                self.healthy = [r for r in self.replicas if (self.probes[r] or [200])[-1] == 200]
            self.stopping.wait(PROBE_INTERVAL)

    def pick(self) -> Replica:
        choices = self.healthy or self.replicas
        return choices[next(self.turn) % len(choices)]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(30)


def send_with_retries(scenario: Scenario, balancer: Balancer, ids: Iterator[str], concurrency: int,
                      acknowledged: set, stop: threading.Event | None = None) -> list[threading.Thread]:
    """Started sender threads: each takes the next id and sends it through the balancer until an answer is
    2xx, retrying with capped exponential backoff as a network does; `acknowledged` collects the ids. They
    end when the ids run out, or take no new one once `stop` is set."""
    lock = threading.Lock()

    def sender():
        while stop is None or not stop.is_set():
            with lock:
                uniq_id = next(ids, None)
            if uniq_id is None:
                return
            delay = 0.1
            while True:
                replica = balancer.pick()
                reply = replica.postback(uniq_id)
                scenario.record(uniq_id, replica, reply)
                if 200 <= reply.status < 300:
                    with lock:
                        acknowledged.add(uniq_id)
                    break
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    return threads


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def send_at_once(scenario: Scenario, sends: list[tuple[Replica, str, dict]]) -> None:
    """Every (replica, uniq_id, params) postback at the same moment, one thread each."""
    barrier = threading.Barrier(len(sends))

    def send(replica, uniq_id, params):
        barrier.wait()
        scenario.record(uniq_id, replica, replica.postback(uniq_id, **params))

    threads = [threading.Thread(target=send, args=entry) for entry in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def assert_nothing_escaped(replicas: list[Replica]) -> None:
    for replica in replicas:
        log = replica.log()
        assert "Traceback" not in log, f"an exception escaped in {replica}:\n{log[-3000:]}"


def test_identical_postbacks_across_nodes_store_one_order(cluster, replicas, terminal_report):
    """40 copies of one postback at once, half to each replica, 20 times over: one order each time, every
    copy acknowledged and kept as a delivery, exactly one of them `created`."""
    scenario = Scenario("identical postbacks across nodes", cluster, replicas, "same-")
    rounds, copies = 20, 40
    for number in range(rounds):
        uniq_id = f"same-{number:02d}"
        send_at_once(scenario, [(replicas[copy % 2], uniq_id, {}) for copy in range(copies)])
    scenario.report(terminal_report)

    assert scenario.statuses() == {200: rounds * copies}
    outcomes = Counter((uniq_id, json.loads(reply.body)["status"]) for uniq_id, _, reply in scenario.replies)
    for number in range(rounds):
        uniq_id = f"same-{number:02d}"
        assert outcomes[uniq_id, "created"] == 1 and outcomes[uniq_id, "duplicate"] == copies - 1, uniq_id
    assert scenario.stored_orders() == {f"same-{number:02d}": 1 for number in range(rounds)}
    assert scenario.deliveries() == rounds * copies
    assert scenario.current_rows() == {1: rounds}
    scenario.assert_acknowledged_deliveries_are_stored_once()
    assert_nothing_escaped(replicas)


def expected_current(rows: list[list[str]]) -> str:
    """The status the rule of orders.current makes current, from (status, created_at, id) rows."""
    finals = ("completed", "rejected")
    return max(rows, key=lambda row: (row[0] in finals, row[1], int(row[2])))[0]


def test_conflicting_statuses_across_nodes_leave_one_current_row(cluster, replicas, terminal_report):
    """Statuses of one order sent at once to both replicas, several orders at once: 30 orders whose `waiting`
    and `completed` race, five orders at a time, then 20 orders whose four statuses all race, two orders at
    a time (each round no more postbacks than the replicas' threads, so that all of them run together).
    Every order ends with exactly one current row, the one the rule picks from its stored rows."""
    scenario = Scenario("conflicting statuses across nodes", cluster, replicas, "race-")

    def race(prefix: str, orders: int, at_a_time: int, statuses: tuple[str, ...]) -> int:
        # The statuses of each order alternate between the replicas, the first one on replica 1 or 2 in turn.
        sends = [(replicas[(number + index) % 2], f"{prefix}-{number:02d}", {"order_status": status})
                 for number in range(orders) for index, status in enumerate(statuses)]
        per_round = at_a_time * len(statuses)
        for first in range(0, len(sends), per_round):
            send_at_once(scenario, sends[first:first + per_round])
        return len(sends)

    sent = race("race-pair", 30, 5, ("waiting", "completed"))
    sent += race("race-four", 20, 2, ("waiting", "pending", "completed", "rejected"))
    scenario.report(terminal_report)

    assert scenario.statuses() == {200: sent}
    assert {json.loads(reply.body)["status"] for _, _, reply in scenario.replies} == {"created"}
    # Transactions refused at COMMIT (the nodes' certification failures), each one retried by ingest.
    assert 0 < scenario.galera_counted()["wsrep_local_cert_failures"] <= scenario.retries()[DEADLOCK]
    assert scenario.current_rows() == {1: 50}
    rows = query(scenario.reader(), "SELECT uniq_id, order_status, created_at, id, is_current FROM orders_order "
                                    "WHERE uniq_id LIKE 'race-%'")
    by_order: dict[str, list[list[str]]] = {}
    for uniq_id, *row in rows:
        by_order.setdefault(uniq_id, []).append(row)
    assert len(by_order) == 50
    for uniq_id, order_rows in by_order.items():
        current = [row[0] for row in order_rows if row[3] == "1"]
        assert current == [expected_current(order_rows)], (uniq_id, order_rows)
        if uniq_id.startswith("race-pair-"):
            assert current == ["completed"], uniq_id
    scenario.assert_acknowledged_deliveries_are_stored_once()
    assert_nothing_escaped(replicas)


def test_node_killed_mid_load_loses_nothing_and_its_replica_drains_after_the_rejoin(cluster, replicas,
                                                                                   terminal_report):
    """Unique postbacks at concurrency 8 through the balancer; node 2 is SIGKILLed after 400 and restarted
    5 s later, rejoining by IST. Replica 2 spools what it holds and answers /health 503, so the balancer
    sends everything to replica 1 meanwhile; once node 2 is back, replica 2 answers 200, drains its spool
    and takes its share again (the load goes on until it has acknowledged 200 more). Every acknowledged
    postback is stored once, and every spooled one becomes one delivery."""
    scenario = Scenario("node killed mid-load", cluster, replicas, "nodekill-")
    node, replica = cluster.node(2), replicas[1]
    ids = (f"nodekill-{n:05d}" for n in itertools.count())
    acknowledged: set[str] = set()
    stop = threading.Event()

    def acknowledged_by_replica_2() -> int:
        return sum(1 for _, each, reply in list(scenario.replies) if each is replica and reply.status == 200)

    with Balancer(replicas) as balancer:
        threads = send_with_retries(scenario, balancer, ids, 8, acknowledged, stop)
        wait_until(lambda: len(acknowledged) >= 400, 120, "the load never got going")
        node.kill()
        down_at = time.monotonic()
        wait_until(lambda: 503 in balancer.probes[replica][-2:], 30, "replica 2's /health never answered 503")
        time.sleep(max(0.0, down_at + 5 - time.monotonic()))
        acknowledged_before_restart = set(acknowledged)
        node.start()
        rejoined_by = node.state_transfer()
        after_rejoin = acknowledged_by_replica_2()
        wait_until(lambda: acknowledged_by_replica_2() >= after_rejoin + 200, 120, "replica 2 took no load again")
        stop.set()
        for thread in threads:
            thread.join(300)
        assert not any(thread.is_alive() for thread in threads)
        for each in replicas:
            each.wait_for_empty_spool(120)  # the balancer's probes start the drains
        probes_of_replica_2 = list(balancer.probes[replica])
    sent_ids = {uniq_id for uniq_id, _, _ in scenario.replies}
    scenario.report(terminal_report, **{"replica 2's /health probes": dict(Counter(probes_of_replica_2)),
                                        "node 2 rejoined by": rejoined_by})

    assert rejoined_by == "IST"
    assert 503 in probes_of_replica_2 and probes_of_replica_2[-1] == 200
    assert acknowledged == sent_ids
    assert scenario.stored_orders() == {uniq_id: 1 for uniq_id in sent_ids}, "every postback stored exactly once"
    assert acknowledged_before_restart <= set(scenario.stored_orders())
    statuses = scenario.statuses()
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, "the outage was not observed"
    spooled = [reply for _, _, reply in scenario.replies if reply.status == 503]
    assert {json.loads(reply.body)["status"] for reply in spooled} == {"spooled"}
    assert scenario.deliveries("spool_id IS NOT NULL") == len(spooled), "each spooled postback is one delivery"
    assert scenario.current_rows() == {1: len(sent_ids)}
    scenario.assert_acknowledged_deliveries_are_stored_once()
    assert_nothing_escaped(replicas)


def test_replica_killed_mid_load_loses_nothing_acknowledged(cluster, replicas, terminal_report):
    """Unique postbacks at concurrency 8 through the balancer; replica 2 (gunicorn's arbiter and workers) is
    SIGKILLed a third of the way in. The requests it held get no answer (behind Traefik: a 502) and are sent
    again, as is every one sent to it before the balancer's probe sees it gone. Every acknowledged postback
    is stored, each once; the database never failed, so nothing was spooled."""
    scenario = Scenario("replica killed mid-load", cluster, replicas, "replicakill-")
    replica = replicas[1]
    ids = [f"replicakill-{n:04d}" for n in range(900)]
    acknowledged: set[str] = set()
    try:
        with Balancer(replicas) as balancer:
            threads = send_with_retries(scenario, balancer, iter(ids), 8, acknowledged)
            wait_until(lambda: len(acknowledged) >= len(ids) // 3, 120, "the load never got going")
            replica.kill()
            for thread in threads:
                thread.join(300)
            assert not any(thread.is_alive() for thread in threads)
    finally:
        replica.__enter__()  # restarted for the next test
    scenario.report(terminal_report)

    statuses = scenario.statuses()
    assert set(statuses) <= {200, 0}, statuses
    assert statuses[0] > 0, "the kill was not observed"
    assert {each.name for _, each, reply in scenario.replies if reply.status == 0} == {replica.name}
    assert acknowledged == set(ids)
    assert scenario.stored_orders() == {uniq_id: 1 for uniq_id in ids}, "every postback stored exactly once"
    assert scenario.deliveries("spool_id IS NOT NULL") == 0
    assert scenario.current_rows() == {1: len(ids)}
    scenario.assert_acknowledged_deliveries_are_stored_once()
    assert_nothing_escaped(replicas)


def test_node_cut_off_from_the_cluster_spools_and_drains_when_it_rejoins(cluster, replicas, terminal_report):
    """Node 2 loses the others (gmcast.isolate: a network partition) and, alone, is no longer in the primary
    component: it answers a bare SELECT 1 but refuses every table (error 1047). Replica 2 answers /health 503
    and spools its postbacks (503, never a 500); replica 1 stores as usual. When node 2 rejoins, replica 2
    drains its spool: each postback stored once."""
    scenario = Scenario("node cut off from the cluster", cluster, replicas, "cutoff-")
    node, replica = cluster.node(2), replicas[1]
    node.sql("SET GLOBAL wsrep_provider_options='gmcast.isolate=1'")
    try:
        wait_until(lambda: node.status().get("wsrep_cluster_status") == "non-Primary"
                   and cluster.node(1).counts_at_most(2), 60, "node 2 was never cut off")
        health = replica.get("/health")
        for number in range(10):
            uniq_id = f"cutoff-{number:02d}"
            scenario.record(uniq_id, replica, replica.postback(uniq_id))
            scenario.record(f"{uniq_id}-elsewhere", replicas[0], replicas[0].postback(f"{uniq_id}-elsewhere"))
    finally:
        node.sql("SET GLOBAL wsrep_provider_options='gmcast.isolate=0'")
    cluster.wait_synced(120)
    replica.drain_after_recovery()
    scenario.report(terminal_report)

    assert health.status == 503 and json.loads(health.body)["database"] == "error"
    by_replica = Counter((each.name, reply.status) for _, each, reply in scenario.replies)
    assert by_replica == {(replica.name, 503): 10, (replicas[0].name, 200): 10}
    assert {json.loads(reply.body)["status"] for _, each, reply in scenario.replies if each is replica} == {"spooled"}
    assert "MariaDB error 1047" in replica.log()[scenario.marks[replica]:]
    assert scenario.stored_orders() == {uniq_id: 1 for uniq_id, _, _ in scenario.replies}, "each stored once"
    assert scenario.deliveries("spool_id IS NOT NULL") == 10
    assert scenario.current_rows() == {1: 20}
    assert_nothing_escaped(replicas)
