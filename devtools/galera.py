"""A private MariaDB Galera cluster on loopback (galera-4, rsync state transfer), for tests of the service
on several writable nodes.

Each node is a `mariadbd` with its own directory (option file `my.cnf`, data directory, log, socket) and
four ports of its own: clients, group communication, incremental state transfer (IST) and state snapshot
transfer (SST). The machine's own MariaDB is never touched. Every node has `root` with no password over
TCP, so `url(db)` is a DATABASE_URL for any node.

The tests run as root (PrivateMariaDB needs that too), but the nodes run as the `mysql` user: a joiner run
as root starts its rsync daemon (`wsrep_sst_rsync`) as root, which then drops to `nobody` and cannot write
into the data directory, so every SST fails. The base directory must therefore be reachable by `mysql`:
pytest's `tmp_path` is private to root, a directory from `tempfile.mkdtemp()` is fine (the cluster takes it
over).

Losing the quorum (two of three nodes down at once) is recovered by `ensure_running()`; all nodes down at
once is not (it would need the most advanced node found and bootstrapped by hand).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.mariadb import MARIADBD, PrivateMariaDB, free_port, stop_process

USER = "mysql"

PROVIDER_CANDIDATES = (
    "/usr/lib/galera/libgalera_smm.so",  # Debian, Ubuntu
    "/usr/lib/libgalera_smm.so",
    "/usr/lib/galera-4/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",  # Fedora, RHEL
    "/usr/lib64/galera/libgalera_smm.so",
)

# The status variables that say whether a node is part of the cluster and keeping up with it.
STATUS_VARIABLES = (
    "wsrep_local_state_comment",  # Synced, Joining, Joined, Donor/Desynced, ...
    "wsrep_cluster_size",
    "wsrep_cluster_status",  # Primary, or non-Primary when this node is cut off from the majority
    "wsrep_ready",
    "wsrep_connected",
    "wsrep_cluster_state_uuid",
    "wsrep_last_committed",
    "wsrep_local_cert_failures",
    "wsrep_local_bf_aborts",
    "wsrep_flow_control_paused",
    "wsrep_incoming_addresses",
)

# Loopback loses no packets, so a dead node can be declared dead sooner than Galera's defaults for real
# networks (suspected after 5 s, evicted after 15 s); writes wait for that. Not much sooner: on a busy
# 2-core machine a node's group thread can stall for 1.5 s, and a live node must never be suspected.
# The gcache (the write-sets a donor can replay to a rejoining node by IST) is written out in full at
# start, so it is small, yet far larger than what any test writes while a node is down.
PROVIDER_OPTIONS = (
    "gcache.size=32M",
    "evs.keepalive_period=PT0.5S",
    "evs.inactive_check_period=PT0.5S",
    "evs.suspect_timeout=PT3S",
    "evs.inactive_timeout=PT6S",
    "evs.install_timeout=PT6S",
)


def provider() -> Path | None:
    """The galera-4 library (`libgalera_smm.so`), wherever the distribution puts it."""
    return next((Path(path) for path in PROVIDER_CANDIDATES if Path(path).exists()), None)


def available() -> bool:
    return (
        Path(MARIADBD).exists()
        and provider() is not None
        and all(shutil.which(program) for program in ("mariadb-install-db", "wsrep_sst_rsync", "rsync"))
    )


class GaleraNode(PrivateMariaDB):
    """One node of a GaleraCluster: `start()` joins the running cluster and waits until Synced, `kill()` is
    SIGKILL, `restart()` both; `url()`, `sql()` and `stop()` as for PrivateMariaDB."""

    def __init__(self, cluster: "GaleraCluster", index: int, ports: tuple[int, int, int, int]):
        client_port, self.galera_port, self.ist_port, self.sst_port = ports
        super().__init__(cluster.base_dir / f"node{index}", client_port)
        self.cluster = cluster
        self.index = index
        self.name = f"node{index}"
        self.option_file = self.base_dir / "my.cnf"
        self.run_start = 0  # where the current run's lines begin in `log`

    def __repr__(self) -> str:
        return f"<GaleraNode {self.name} port={self.port}>"

    def options(self) -> str:
        provider_options = ";".join((
            *PROVIDER_OPTIONS,
            f"gmcast.listen_addr=tcp://127.0.0.1:{self.galera_port}",
            f"ist.recv_addr=127.0.0.1:{self.ist_port}",
        ))
        return "\n".join((
            "[mysqld]",
            f"user={USER}",
            f"datadir={self.datadir}",
            f"port={self.port}",
            "bind-address=127.0.0.1",
            f"socket={self.socket}",
            f"pid-file={self.base_dir / 'pid'}",
            "skip-log-bin",
            "max-connections=200",
            "character-set-server=utf8mb4",
            "collation-server=utf8mb4_unicode_ci",
            "default-storage-engine=InnoDB",
            # Small: three nodes share two cores, and every SST copies the redo log.
            "innodb-buffer-pool-size=64M",
            "innodb-log-file-size=32M",
            # A SIGKILLed mariadbd loses nothing that reached the kernel, and a node that lacks something
            # gets it from its peers; flushing to disk at every commit would only slow the tests.
            "innodb-flush-log-at-trx-commit=2",
            # Galera replicates rows, and its parallel appliers need interleaved auto-increment locking.
            "binlog-format=ROW",
            "innodb-autoinc-lock-mode=2",
            "wsrep-on=ON",
            f"wsrep-provider={self.cluster.provider}",
            f"wsrep-provider-options={provider_options}",
            "wsrep-cluster-name=epnhook-test",
            f"wsrep-cluster-address={self.cluster.address()}",
            f"wsrep-node-name={self.name}",
            f"wsrep-node-address=127.0.0.1:{self.galera_port}",
            f"wsrep-node-incoming-address=127.0.0.1:{self.port}",
            "wsrep-sst-method=rsync",
            f"wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            "wsrep-slave-threads=2",  # appliers, one per core
            "",
        ))

    def prepare(self) -> None:
        """The node's directory and option file. Only node 1 gets system tables (its `root` user); the
        others receive everything by SST when they first join."""
        if not self.datadir.exists():
            if self.index == 1:
                self.install()
            else:
                self.datadir.mkdir(parents=True)
        self.option_file.write_text(self.options())
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(self.base_dir)], check=True)

    def start(self, timeout: float = 120, new_cluster: bool = False) -> None:
        """Starts the node and waits until it is Synced; `new_cluster` bootstraps a cluster of one."""
        if not new_cluster:
            # Joining while the others still count a killed incarnation of this node, it would be stuck in
            # the membership protocol until an install timeout or more.
            self.cluster.wait_evicted(timeout)
        self.prepare()
        self.run_start = self.log.stat().st_size if self.log.exists() else 0
        position = self.recover_position()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [MARIADBD, f"--defaults-file={self.option_file}",
                 *([f"--wsrep-start-position={position}"] if position else []),
                 *(["--wsrep-new-cluster"] if new_cluster else [])],
                stdout=log, stderr=log, start_new_session=True,
            )
        self.wait_synced(timeout)

    def recover_position(self) -> str | None:
        """After a crash, grastate.dat no longer says how far the node got (seqno -1, and no cluster UUID
        on the node that bootstrapped the cluster), but InnoDB does: `--wsrep-recover` reads it. The
        position is written into grastate.dat, where Galera reads it; on the command line alone (what
        `galera_recovery` does under systemd) Galera ignores it when grastate.dat has no UUID. Without it
        the node would rejoin by a full SST instead of IST. None when there is nothing to recover: a new
        node, or one that was shut down cleanly."""
        grastate = self.datadir / "grastate.dat"
        if not grastate.exists() or not re.search(r"^seqno:\s*-1$", grastate.read_text(), re.MULTILINE):
            return None
        with open(self.log, "ab") as log:
            subprocess.run([MARIADBD, f"--defaults-file={self.option_file}", "--wsrep-recover"],
                           stdout=log, stderr=log)
        recovered = re.findall(r"WSREP: Recovered position: (\S+):(\d+)$", self.run_log(), re.MULTILINE)
        if not recovered:
            return None  # the node will get a full SST
        uuid, seqno = recovered[-1]
        state = re.sub(r"^uuid:.*$", f"uuid:    {uuid}", grastate.read_text(), flags=re.MULTILINE)
        grastate.write_text(re.sub(r"^seqno:.*$", f"seqno:   {seqno}", state, flags=re.MULTILINE))
        return f"{uuid}:{seqno}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, str]:
        """The wsrep status variables of STATUS_VARIABLES, by name."""
        names = ", ".join(f"'{name}'" for name in STATUS_VARIABLES)
        rows = self.sql(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        return dict(row.split("\t", 1) for row in rows.splitlines())

    def synced(self) -> bool:
        """Synced, in the primary component, and in a cluster of exactly the nodes that are running."""
        try:
            status = self.status()
        except subprocess.CalledProcessError:
            return False  # not accepting clients yet
        return (
            status.get("wsrep_local_state_comment") == "Synced"
            and status.get("wsrep_cluster_status") == "Primary"
            and status.get("wsrep_ready") == "ON"
            and status.get("wsrep_cluster_size") == str(self.cluster.running_count())
        )

    def counts_at_most(self, members: int) -> bool:
        try:
            return int(self.status().get("wsrep_cluster_size", 0)) <= members
        except subprocess.CalledProcessError:
            return False  # not accepting clients (yet)

    def wait_synced(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.synced():
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; {self.run_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not Synced within {timeout}s; {self.run_tail()}")
            time.sleep(0.2)

    def state_transfer(self) -> str | None:
        """How the node's current run got the cluster's state: "IST" (the write-sets it missed, from a
        donor's gcache), "SST" (a copy of a donor's data directory), or None (it bootstrapped the cluster,
        or was up to date). `wsrep_sst_rsync` says which in the joiner's log."""
        transfers = re.findall(r"WSREP_SST: \[INFO\] \S+ (IST|SST) completed on joiner", self.run_log())
        return transfers[-1] if transfers else None

    def run_log(self) -> str:
        """The log of the node's current run."""
        with open(self.log, "rb") as log:
            log.seek(self.run_start)
            return log.read().decode(errors="replace")

    def run_tail(self, lines: int = 30) -> str:
        return f"end of {self.log}:\n" + "\n".join(self.run_log().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, as in a crash, to mariadbd and to any state transfer it runs (its process group)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """A clean shutdown, then SIGKILL for any helper that outlived it. Harmless on a dead node."""
        stop_process(self.process, 60)
        self.kill()


class GaleraCluster:
    """`size` nodes, numbered from 1: `node(1)` bootstraps the cluster. `start()` starts them all and waits
    until each is Synced in a cluster of `size`; `stop()` stops them all. Also a context manager."""

    def __init__(self, base_dir: Path, size: int = 3):
        self.base_dir = Path(base_dir)
        self.provider = provider()
        if self.provider is None:
            raise RuntimeError("libgalera_smm.so not found: install galera-4")
        ports = []
        while len(ports) < 4 * size:  # free_port() may hand out the same port twice
            if (port := free_port()) not in ports:
                ports.append(port)
        self.nodes = [GaleraNode(self, index, tuple(ports[4 * index - 4:4 * index])) for index in range(1, size + 1)]

    def node(self, index: int) -> GaleraNode:
        return self.nodes[index - 1]

    def address(self) -> str:
        return "gcomm://" + ",".join(f"127.0.0.1:{node.galera_port}" for node in self.nodes)

    def running_count(self) -> int:
        return sum(node.running() for node in self.nodes)

    def start(self, timeout: float = 120) -> None:
        """The whole cluster, new or after `stop()`: node 1 bootstraps it, the others join one at a time
        (joining together, they stall one another and gain little)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.base_dir, USER, USER)
        if subprocess.run(["test", "-w", str(self.base_dir)], user=USER, group=USER, extra_groups=[]).returncode:
            raise RuntimeError(f"the {USER} user, who runs the nodes, cannot reach {self.base_dir}")
        first, *others = self.nodes
        first.start(timeout, new_cluster=True)
        for node in others:
            node.start(timeout)
        self.wait_synced(timeout)

    def ensure_running(self, timeout: float = 120) -> None:
        """Restarts every node that is down (a test killed it) and waits until all are Synced. If the nodes
        left lost the quorum (two of three killed at once), the first of them is made the primary component
        again first (pc.bootstrap, as an operator would): a rejoining node cannot restore it."""
        self.wait_evicted(timeout)
        survivors = [node for node in self.nodes if node.running()]
        if survivors and all(node.status().get("wsrep_cluster_status") != "Primary" for node in survivors):
            survivors[0].sql("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        for node in self.nodes:
            if not node.running():
                node.start(timeout)
        self.wait_synced(timeout)

    def wait_synced(self, timeout: float = 60) -> None:
        """Until every running node is Synced and sees all running nodes (a killed one has been evicted)."""
        for node in self.nodes:
            if node.running():
                node.wait_synced(timeout)

    def wait_evicted(self, timeout: float = 60) -> None:
        """Until no running node counts a node that is down as a member. Unlike `wait_synced()`, this also
        returns when the nodes left lost the quorum (non-Primary)."""
        deadline = time.monotonic() + timeout
        while not all(node.counts_at_most(self.running_count()) for node in self.nodes if node.running()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"a node that is down is still a member after {timeout}s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Last node first: node 1, leaving last, has the newest state and may bootstrap the next start()."""
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> "GaleraCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextlib.contextmanager
def temporary_cluster(log_dir: Path, size: int = 3):
    """A started GaleraCluster in a new temporary directory, deleted afterwards (the nodes, which run as
    mysql, cannot enter pytest's `tmp_path`); the nodes' logs are copied into `log_dir` first."""
    base_dir = Path(tempfile.mkdtemp(prefix="galera-"))
    try:
        with GaleraCluster(base_dir, size) as cluster:
            yield cluster
    finally:
        for log in base_dir.glob("node*/mariadbd.log"):
            shutil.copy(log, Path(log_dir) / f"{log.parent.name}.log")
        shutil.rmtree(base_dir)
