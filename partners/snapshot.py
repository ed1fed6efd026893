"""What each process knows of the networks configured in the admin and of the tokens issued there, and how
it learns of a change without a database query per postback.

A process keeps a Snapshot: the parser of each configured network and the digests of the live admin
tokens (the environment's tokens are in the settings). The request that finds it older than
REFRESH_SECONDS has it read again, in two small queries, on a thread of its own, and carries on with the
snapshot it has: no postback ever waits for the database on its account, which a frozen server would
make it do for the read timeout, past INGEST_DEADLINE. No other request queries anything for it,
whatever its token (known, unknown, a flood of wrong ones). So a token issued or revoked, or a mapping
changed, reaches every worker of every process within REFRESH_SECONDS (5 s) and a round trip. What
must act on the latest description (the admin's network pages, replay_webhook, the spool drain) reads
it at once, with refresh(); a change saved in this process makes its next request read it again.

The uses of admin tokens are counted in memory and written to NetworkToken.last_used_at by the same
refresh, at most once every LAST_USE_WRITE_SECONDS per process: last use is known to the minute.

Every refresh leaves a copy in SNAPSHOT_FILE under SPOOL_DIR (the digests and the networks'
descriptions, never a token in clear). A process starts from that copy, until its first read answers;
when the database cannot be read, a process keeps the snapshot it has. So a worker started during an
outage still knows the admin tokens, and their postbacks are spooled like any other rather than answered
404, which a network may take for "disable this URL". Without the file either, `loaded` is False and the
webhook answers an unknown token 503.
"""

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .configured import ConfiguredPartner, NetworkConfig
from .models import Network, NetworkToken

log = logging.getLogger("epnhook.networks")

# How old a process's snapshot may be before a request reads it again: a change reaches every worker
# within this many seconds (the issue asks for 10).
REFRESH_SECONDS = 5.0
# How often a process writes the last use of the admin tokens it saw.
LAST_USE_WRITE_SECONDS = 60.0
# The snapshot's copy on disk, in SPOOL_DIR: durable local storage every process may write.
SNAPSHOT_FILE = "networks.json"


@dataclass(frozen=True)
class AdminToken:
    id: int
    partner: str
    implied_status: str  # "" when the network's postbacks carry their status word
    digest: bytes  # token_digest() of the token, and of the token in lower case
    casefolded_digest: bytes

    def to_json(self) -> dict:
        return {"id": self.id, "partner": self.partner, "implied_status": self.implied_status,
                "digest": self.digest.hex(), "casefolded_digest": self.casefolded_digest.hex()}

    @classmethod
    def from_json(cls, data: dict) -> "AdminToken":
        return cls(data["id"], data["partner"], data["implied_status"], bytes.fromhex(data["digest"]),
                   bytes.fromhex(data["casefolded_digest"]))


@dataclass(frozen=True)
class Snapshot:
    networks: dict[str, ConfiguredPartner]  # by slug: the configured networks only
    tokens: tuple[AdminToken, ...]  # the live ones
    # False until the database or the file has answered once: an unknown token may be an admin token.
    loaded: bool = True

    def to_json(self) -> dict:
        return {"networks": [partner.config.to_json() for partner in self.networks.values()],
                "tokens": [token.to_json() for token in self.tokens]}


NOT_LOADED = Snapshot({}, (), loaded=False)
# Seconds that only go forward, for the refresh intervals (tests drive it).
_clock = time.monotonic


class _Refresher:
    """The thread that reads the snapshot for the requests: one per process, started by the first request
    that asks, woken by each later one. Its database connection is kept between reads and recycled as a
    request's is (CONN_MAX_AGE, health checks), so reading the snapshot opens no connection each time."""

    def __init__(self):
        self.wanted = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def ask(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="networks-refresh", daemon=True)
                self.thread.start()
        self.wanted.set()

    def run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            close_old_connections()
            try:
                refresh()
            except Exception:  # a bug of ours: the requests go on with the snapshot they have
                log.exception("reading the networks and admin tokens failed")


# How a request has the snapshot read again (tests read it in place, on the test's own connection).
_ask = _Refresher().ask


class _State:
    def __init__(self, snapshot: Snapshot = NOT_LOADED, checked_at: float = -math.inf):
        self.snapshot = snapshot
        self.checked_at = checked_at
        # Counts the changes this process saved, so that a refresh running meanwhile is not taken as fresh.
        self.generation = 0
        self.lock = threading.Lock()  # one read at a time
        # Held only to replace the snapshot, so that the saved copy never replaces a newer read (a read
        # holds `lock` for as long as the database takes; a request never waits for that).
        self.replacing = threading.Lock()
        self.file_read = False
        self.uses: dict[int, float] = {}  # token id -> when last used (Unix time)
        self.uses_written_at = -math.inf
        self.file_text: str | None = None  # what SNAPSHOT_FILE holds, as far as this process knows
        self.failing = False


_state = _State()


def current() -> Snapshot:
    """This process's snapshot, without waiting: if it is older than REFRESH_SECONDS, a refresh starts on
    its own thread for the requests that follow. A process without one starts from the saved copy."""
    state = _state
    if not state.snapshot.loaded and not state.file_read:
        _start_from_file()
    now = _clock()
    if now - state.checked_at >= REFRESH_SECONDS:
        state.checked_at = now  # one read per interval, whatever becomes of it
        _ask()
    return state.snapshot


def start() -> None:
    """Read the snapshot as a process starts, before its first request (epnhook.wsgi): from the saved
    copy, then the database if it answers. Without either, unknown tokens are answered 503 until it does."""
    _start_from_file()
    refresh()
    connections.close_all()  # this thread serves no request: its connection would only idle


def record_use(token_id: int) -> None:
    """Note a postback with an admin token; written to the database by a later refresh."""
    _state.uses[token_id] = time.time()


def forget() -> None:
    """Make the next request read the snapshot again (this process saved a change)."""
    _state.generation += 1
    _state.checked_at = -math.inf


@receiver([post_save, post_delete], sender=Network)
@receiver([post_save, post_delete], sender=NetworkToken)
def _forget_on_change(**kwargs):
    forget()


def refresh() -> Snapshot:
    """Read the snapshot from the database now (keeping the one there is if it cannot be read), and write
    the uses seen; one read at a time."""
    state = _state
    with state.lock:
        started, generation = _clock(), state.generation
        _write_uses(started)
        snapshot = _read(state.snapshot)
        with state.replacing:
            state.snapshot = snapshot
        # A change saved meanwhile may not be in what was read: then the next request reads again.
        state.checked_at = started if state.generation == generation else -math.inf
        return state.snapshot


def _start_from_file() -> None:
    """Start from the saved copy (a refresh that answered first is kept: it is newer)."""
    saved = _from_file()
    with _state.replacing:
        if not _state.snapshot.loaded and not _state.file_read:
            _state.snapshot = saved
        _state.file_read = True


def _read(previous: Snapshot) -> Snapshot:
    try:
        snapshot = _from_database(previous)
    except DatabaseError as error:
        if not _state.failing:
            log.warning("cannot read the networks and admin tokens (%s); using the last ones known%s", error,
                        "" if previous.loaded else " (none: unknown tokens are answered 503)")
        _state.failing = True
        return previous
    if _state.failing:
        log.info("the networks and admin tokens are read from the database again")
        _state.failing = False
    _save_file(snapshot)
    return snapshot


def _from_database(previous: Snapshot) -> Snapshot:
    """The snapshot as the database has it; `previous` itself when nothing changed, and its parsers
    for networks whose description did not change."""
    networks = {}
    for network in Network.objects.filter(built_in=False).order_by("pk"):
        config = network.config()
        partner = previous.networks.get(config.slug)
        if partner is None or partner.config != config:
            partner = _parser(config)
        if partner is not None:
            networks[config.slug] = partner
    tokens = tuple(
        AdminToken(pk, slug, implied_status, bytes.fromhex(digest), bytes.fromhex(casefolded))
        for pk, slug, implied_status, digest, casefolded in NetworkToken.objects.filter(revoked_at=None)
        .order_by("pk").values_list("pk", "network__slug", "implied_status", "digest", "casefolded_digest")
    )
    if previous.loaded and networks == previous.networks and tokens == previous.tokens:
        return previous
    return Snapshot(networks, tokens)


def _parser(config: NetworkConfig) -> ConfiguredPartner | None:
    try:
        return ConfiguredPartner(config)
    except (KeyError, ValueError) as error:  # a row written around the admin's validation
        log.error("network %s is not usable as configured (%s): its postbacks are stored as invalid",
                  config.slug, error)
        return None


def snapshot_path():
    return settings.SPOOL_DIR / SNAPSHOT_FILE


def _save_file(snapshot: Snapshot) -> None:
    """Leave the snapshot where a process that starts during an outage finds it (written when it changed)."""
    text = json.dumps(snapshot.to_json(), sort_keys=True)
    if text == _state.file_text:
        return
    path = snapshot_path()
    temporary = path.with_name(f".{SNAPSHOT_FILE}.{os.getpid()}.{threading.get_ident()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        log.warning("cannot write %s (%s): a process started during a database outage will answer admin "
                    "tokens 503 until the database is back", path, error)
    _state.file_text = text  # tried once per content, not at every refresh


def _from_file() -> Snapshot:
    path = snapshot_path()
    try:
        text = path.read_text()
        data = json.loads(text)
        networks = {config.slug: ConfiguredPartner(config) for config in map(NetworkConfig.from_json, data["networks"])}
        tokens = tuple(map(AdminToken.from_json, data["tokens"]))
    except FileNotFoundError:  # a first start: the database read that follows says if it fails too
        return NOT_LOADED
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.error("cannot read the saved networks and admin tokens in %s (%s): unknown tokens are answered 503 "
                  "until the database answers", path, error)
        return NOT_LOADED
    _state.file_text = text
    return Snapshot(networks, tokens)


def _write_uses(now: float) -> None:
    """Write the last use of each admin token seen since the last write, if that was a minute ago; kept
    for the next write if the database fails."""
    state = _state
    if not state.uses or now - state.uses_written_at < LAST_USE_WRITE_SECONDS:
        return
    uses, state.uses = state.uses, {}
    state.uses_written_at = now
    try:
        for token_id, used in uses.items():
            moment = datetime.fromtimestamp(used, UTC)
            # Never back in time: another process may have written a later use.
            NetworkToken.objects.filter(Q(last_used_at=None) | Q(last_used_at__lt=moment), pk=token_id) \
                .update(last_used_at=moment)
    except DatabaseError:
        for token_id, used in uses.items():
            state.uses[token_id] = max(used, state.uses.get(token_id, used))
