"""A private MariaDB server, for tests that kill and restart the database and for `make bench`.

Never a shared server: each PrivateMariaDB has its own data directory and a free port, and needs only
the `mariadb-server` package's binaries (mariadbd, mariadb-install-db), not DATABASE_URL.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL if `process` has not exited within `timeout` seconds."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def available() -> bool:
    return Path(MARIADBD).exists() and shutil.which("mariadb-install-db") is not None


class PrivateMariaDB:
    """start(), kill() (SIGKILL, like a crash), stop(), restart(); `url(db)` gives a DATABASE_URL."""

    def __init__(self, base_dir: Path, port: int | None = None):
        self.base_dir = Path(base_dir)
        self.datadir = self.base_dir / "data"
        self.socket = self.base_dir / "mariadb.sock"
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.log = self.base_dir / "mariadbd.log"

    def url(self, database: str = "epnhook") -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def start(self, timeout: float = 60) -> None:
        if not self.datadir.exists():
            self.install()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.base_dir / 'pid'}",
                 "--user=root", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=1",
                 "--innodb-buffer-pool-size=64M", "--max-connections=200", "--character-set-server=utf8mb4",
                 "--collation-server=utf8mb4_unicode_ci"],
                stdout=log, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.process.returncode}; see {self.log}")
            if self.ping():
                return
            time.sleep(0.2)
        raise TimeoutError(f"mariadbd did not answer within {timeout}s; see {self.log}")

    def ping(self) -> bool:
        result = subprocess.run(
            ["mariadb-admin", "--no-defaults", "--host=127.0.0.1", f"--port={self.port}", "--user=root",
             "--connect-timeout=1", "ping"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def sql(self, statement: str) -> str:
        return subprocess.run(
            ["mariadb", "--no-defaults", "--host=127.0.0.1", f"--port={self.port}", "--user=root", "-N", "-e",
             statement],
            check=True, capture_output=True, text=True,
        ).stdout

    def kill(self) -> None:
        """SIGKILL, as in a crash or the OOM killer: no clean shutdown, no flush beyond what was committed."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        stop_process(self.process, 30)

    def restart(self) -> None:
        self.kill()
        self.start()
