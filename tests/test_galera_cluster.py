"""The Galera cluster fixture itself (devtools.galera): what the scenario tests on several writable nodes
rely on. Replication to every node, certification conflicts between nodes, and a node killed mid-writes
that rejoins by IST with every row.

Plain MySQLdb connections to each node; Django is not involved. Marked `mariadb` so that the cluster
starts in the MariaDB pass of CI only.
"""

import threading
import time
from contextlib import closing

import MySQLdb
import pytest

pytestmark = [pytest.mark.private_mariadb, pytest.mark.galera]

DATABASE = "galera_smoke"
DEADLOCK = 1213  # ER_LOCK_DEADLOCK: what a transaction that fails certification gets at COMMIT
# A read that must see every write committed anywhere in the cluster waits for this node to apply them.
SYNC_WAIT = "SET SESSION wsrep_sync_wait=1"


def connect(node, **options):
    # read_timeout: a statement stuck on a broken cluster fails the test instead of hanging it.
    return MySQLdb.connect(host="127.0.0.1", port=node.port, user="root", database=DATABASE, charset="utf8mb4",
                           read_timeout=60, **options)


def query(node, statement, parameters=()):
    """The rows of `statement`, read on `node` once it has applied everything committed before."""
    with closing(connect(node, init_command=SYNC_WAIT)) as connection, connection.cursor() as cursor:
        cursor.execute(statement, parameters)
        return cursor.fetchall()


@pytest.fixture(scope="module")
def cluster(galera_cluster):
    galera_cluster.node(1).sql(f"CREATE DATABASE {DATABASE}")
    yield galera_cluster
    galera_cluster.ensure_running()
    galera_cluster.node(1).sql(f"DROP DATABASE {DATABASE}")


@pytest.fixture
def table(cluster, request):
    """A new table `t_<test name>` (CREATE TABLE replicates to every node)."""
    name = f"t_{request.node.name.removeprefix('test_')}"[:64]
    yield name
    cluster.ensure_running()
    cluster.node(1).sql(f"DROP TABLE {DATABASE}.{name}")


def test_every_node_is_synced_in_a_cluster_of_three(cluster):
    for node in cluster.nodes:
        status = node.status()
        assert status["wsrep_local_state_comment"] == "Synced"
        assert status["wsrep_cluster_size"] == "3"
        assert status["wsrep_cluster_status"] == "Primary"
        assert node.url("epnhook") == f"mysql://root@127.0.0.1:{node.port}/epnhook"
    assert len({node.status()["wsrep_cluster_state_uuid"] for node in cluster.nodes}) == 1


def test_a_row_written_on_node_1_is_read_on_node_3(cluster, table):
    one, three = cluster.node(1), cluster.node(3)
    with closing(connect(one, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, note VARCHAR(20))")
        cursor.execute(f"INSERT INTO {table} VALUES (1, %s)", ["written on node 1"])
    assert query(three, f"SELECT note FROM {table} WHERE id = 1") == (("written on node 1",),)


def test_of_two_nodes_updating_one_row_the_second_to_commit_gets_a_deadlock(cluster, table):
    one, two = cluster.node(1), cluster.node(2)
    one.sql(f"CREATE TABLE {DATABASE}.{table} (id INT PRIMARY KEY, amount INT); "
            f"INSERT INTO {DATABASE}.{table} VALUES (1, 0)")
    with closing(connect(one)) as first, closing(connect(two, init_command=SYNC_WAIT)) as second:
        first.cursor().execute(f"UPDATE {table} SET amount = amount + 1 WHERE id = 1")
        second.cursor().execute(f"UPDATE {table} SET amount = amount + 10 WHERE id = 1")
        first.commit()
        with pytest.raises(MySQLdb.OperationalError) as refused:
            second.commit()
    assert refused.value.args[0] == DEADLOCK
    for node in cluster.nodes:
        assert query(node, f"SELECT amount FROM {table}") == ((1,),)


class Writer(threading.Thread):
    """Inserts rows through one node, one autocommit INSERT after another, until stopped or refused."""

    def __init__(self, node, table):
        super().__init__(daemon=True)
        self.node, self.table = node, table
        self.acknowledged = []  # (node, n) of every INSERT that returned OK
        self.error = None
        self.stopping = threading.Event()

    def run(self):
        try:
            with closing(connect(self.node, autocommit=True)) as connection, connection.cursor() as cursor:
                while not self.stopping.is_set():
                    row = (self.node.index, len(self.acknowledged))
                    cursor.execute(f"INSERT INTO {self.table} (node, n) VALUES (%s, %s)", row)
                    self.acknowledged.append(row)
        except MySQLdb.Error as error:
            self.error = error


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_node_killed_mid_writes_rejoins_by_ist_with_every_row(cluster, table):
    three = cluster.node(3)
    cluster.node(1).sql(f"CREATE TABLE {DATABASE}.{table} (id INT AUTO_INCREMENT PRIMARY KEY, node INT, n INT, "
                        "UNIQUE (node, n))")
    writers = [Writer(node, table) for node in cluster.nodes]
    for writer in writers:
        writer.start()
    try:
        wait_for(lambda: all(len(writer.acknowledged) >= 20 for writer in writers))
        three.kill()
        survivors, killed = writers[:2], writers[2]
        goals = {writer: len(writer.acknowledged) + 50 for writer in survivors}
        wait_for(lambda: all(len(writer.acknowledged) >= goal for writer, goal in goals.items()))
        cluster.wait_synced()  # the survivors have evicted node 3
        assert cluster.node(1).status()["wsrep_cluster_size"] == "2"
    finally:
        for writer in writers:
            writer.stopping.set()
            writer.join(60)
    assert [writer.error for writer in survivors] == [None, None]
    assert killed.error is not None  # its connection died with node 3

    three.start()

    assert three.state_transfer() == "IST"
    rows = [set(query(node, f"SELECT node, n FROM {table}")) for node in cluster.nodes]
    assert rows[2] == rows[0] == rows[1]
    # Every acknowledged row; node 3's writer may have had one more row committed whose OK it never got.
    assert set().union(*(writer.acknowledged for writer in writers)) <= rows[2]
