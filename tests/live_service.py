"""The service as it runs in production, for tests that break its surroundings.

`Service` is gunicorn started with the project's gunicorn.conf.py and the production settings module
(not tests.settings), talking to a `PrivateMariaDB` the test may kill, and mailing the admins through
a real SMTP server on loopback (`SmtpSink`, aiosmtpd) or a server that never answers (`SilentSmtp`).
"""

import http.client
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlencode

from aiosmtpd.controller import Controller

from devtools.mariadb import free_port, stop_process

BASE_DIR = Path(__file__).resolve().parent.parent
logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
TOKEN = "live-token-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"


class SmtpSink:
    """A real SMTP server on loopback that keeps every message it receives."""

    def __init__(self):
        self.port = free_port()
        self.messages = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(message["Subject"]) for message in self.messages]

    def texts(self) -> list[str]:
        """Each message as a reader sees it: headers, then every text part decoded."""
        with self._lock:
            messages = list(self.messages)
        return ["\n".join([*(f"{name}: {value}" for name, value in message.items()),
                           *(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")])
                for message in messages]

    def __enter__(self):
        self._controller.start()
        return self

    def __exit__(self, *exc):
        self._controller.stop()


class SilentSmtp:
    """Accepts TCP connections and never says a word: a hung mail server."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.connections = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._socket.close()
        for connection in self.connections:
            connection.close()


def production_env(database_url: str, var_dir: Path, email_url: str, **extra: str) -> dict:
    """The environment of a production process: production settings, nothing inherited from the tests."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "ENV_FILE": "",
        "DJANGO_SETTINGS_MODULE": "epnhook.settings",
        "SECRET_KEY": "live-test-secret-key-not-for-production-0123456789",
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "WEBHOOK_SECRET_TOKEN": TOKEN,
        "ADMINS": "Ops <ops@example.com>",
        "EMAIL_URL": email_url,
        "SPOOL_DIR": str(var_dir / "spool"),
        "ALERT_STATE_DIR": str(var_dir / "alerts"),
        "LANGUAGE_CODE": "en",
        **extra,
    }


def migrate(env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True,
                   capture_output=True)


@dataclass
class Reply:
    status: int  # 0: no valid HTTP answer (connection refused or reset, a garbled or cut-short reply)
    seconds: float
    body: bytes = b""
    headers: dict | None = None
    error: str = ""  # what went wrong, when status is 0


def http_get(url: str, timeout: float = 30, headers: dict | None = None) -> Reply:
    """GET `url`; every outcome is a Reply, so that a sender counting replies never loses one to an
    exception: a status line that is not HTTP (BadStatusLine) or a body cut short (IncompleteRead)
    is an http.client.HTTPException, not an OSError."""
    started = time.monotonic()
    try:
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout)
        except urllib.error.HTTPError as error:
            response = error  # a 4xx or 5xx answer is a reply like any other; its body too may be cut short
        with response:
            return Reply(response.status, time.monotonic() - started, response.read(), dict(response.headers))
    except (OSError, http.client.HTTPException) as error:
        return Reply(0, time.monotonic() - started, error=repr(error))


class Service:
    """gunicorn with the project's gunicorn.conf.py; its whole output is kept in `log_path`."""

    def __init__(self, env: dict, var_dir: Path, workers: int = 2, threads: int = 4):
        self.port = free_port()
        self.var_dir = var_dir
        self.spool_dir = Path(env["SPOOL_DIR"])
        self.workers, self.threads = workers, threads
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers),
                    "GUNICORN_THREADS": str(threads)}
        self.log_path = var_dir / "gunicorn.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "epnhook.wsgi"],
                cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited early:\n{self.log()}"
            if self.get("/health").status in (200, 503):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"gunicorn did not answer:\n{self.log()}")

    def __exit__(self, *exc):
        stop_process(self.process, 20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The gunicorn workers alive now: the arbiter's children."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return set(map(int, children.split()))

    def busy_workers(self, client_port: int | None = None) -> set[int]:
        """The workers holding a client connection to the service right now (read from /proc); with
        `client_port`, the one holding that client's connection."""
        # /proc/net/tcp: "sl local_address rem_address st ... inode"; 0A is LISTEN, the arbiter's socket.
        local, remote = f":{self.port:04X}", f":{client_port:04X}" if client_port else ""
        inodes = {fields[9] for fields in map(str.split, Path("/proc/net/tcp").read_text().splitlines()[1:])
                  if fields[1].endswith(local) and fields[3] != "0A" and fields[2].endswith(remote)}
        busy = set()
        for pid in self.worker_pids():
            try:
                descriptors = os.listdir(f"/proc/{pid}/fd")
            except FileNotFoundError:  # the worker exited meanwhile
                continue
            for descriptor in descriptors:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
                except FileNotFoundError:  # closed meanwhile
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    busy.add(pid)
                    break
        return busy

    def get(self, path: str, timeout: float = 30, headers: dict | None = None) -> Reply:
        return http_get(f"http://127.0.0.1:{self.port}{path}", timeout, headers)

    def postback(self, uniq_id: str, **params: str) -> Reply:
        query = urlencode({"click_id": "7", "order_number": f"N-{uniq_id}", "uniq_id": uniq_id,
                           "order_status": "waiting", "revenue": "100.50", "commission_fee": "7.25", **params})
        return self.get(f"/webhook/{TOKEN}?{query}")

    def spool_backlog(self) -> int:
        return len(list((self.spool_dir / "incoming").glob("*.json")))

    def quarantined(self) -> list[str]:
        directory = self.spool_dir / "quarantine"
        return sorted(path.name for path in directory.iterdir()) if directory.exists() else []

    def drain_after_recovery(self) -> None:
        """Probe /health as the container would (the database answers, so it starts the drain) and
        wait until the spool is empty."""
        assert self.get("/health").status == 200
        self.wait_for_empty_spool()

    def wait_for_empty_spool(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.spool_backlog() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.spool_backlog() == 0, f"spool not drained:\n{self.log()[-3000:]}"


@contextmanager
def service_with_mailbox(database_url: str, var_dir: Path, **env: str):
    """(Service, SmtpSink): the production service whose admins' mail goes to a loopback SMTP server."""
    with SmtpSink() as smtp, Service(production_env(database_url, var_dir, smtp.url(), **env), var_dir) as service:
        yield service, smtp


def stored_orders(database, prefix: str) -> list[str]:
    """uniq_id of every stored order whose uniq_id starts with `prefix`, repeats included."""
    output = database.sql(f"SELECT uniq_id FROM epnhook.orders_order WHERE uniq_id LIKE '{prefix}%'")
    return output.split()


def count(database, statement: str) -> int:
    return int(database.sql(statement).strip())


def service_connections(database) -> set[int]:
    """Ids of the server's connections to the `epnhook` database: the service's (a test's own queries
    through `database.sql` name no database)."""
    return set(map(int, database.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'epnhook'").split()))


def connections_opened(database) -> int:
    """The server's count of connection attempts since it started, this query's own included."""
    return int(database.sql("SHOW GLOBAL STATUS LIKE 'Connections'").split()[1])
