"""The durable spool: where a postback goes when the database cannot take it.

Each entry is one JSON file in SPOOL_DIR/incoming, written to a temporary name, fsynced, renamed
and the directory fsynced, so an entry either exists whole or not at all (a crash leaves only a
`.tmp` file, which the sender was never told about). Draining stores each entry through the same
write path as a live request, keyed by the entry's id, so an entry drained twice (a crash between
commit and unlink) is stored once. A damaged entry is moved to SPOOL_DIR/quarantine and reported.
"""

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections

from . import alerts, dberrors

log = logging.getLogger("epnhook.spool")

# A process starts at most one drain thread per this many seconds (another process may hold the
# drain lock, or the database may fail again mid-drain; neither is worth a thread per request).
_START_INTERVAL = 1.0
# A temporary file this old was left by a crash mid-write; its sender never got a 2xx.
_STALE_TMP_SECONDS = 3600
_last_start = float("-inf")
_start_lock = threading.Lock()
_drain_thread: threading.Thread | None = None
# The incoming directory's modification time when it was last seen empty (see _has_pending).
_empty_at_mtime: int | None = None


def incoming_dir() -> Path:
    return settings.SPOOL_DIR / "incoming"


def quarantine_dir() -> Path:
    return settings.SPOOL_DIR / "quarantine"


def write(raw) -> str:
    """Write `raw` (an ingest.RawRequest) durably and return the entry id. Raises OSError if it cannot."""
    directory = incoming_dir()
    directory.mkdir(parents=True, exist_ok=True)
    entry_id = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    temporary = directory / f".{entry_id}.tmp"
    data = json.dumps(raw.to_json(), ensure_ascii=False).encode()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, directory / f"{entry_id}.json")
    _fsync_directory(directory)
    return entry_id


def pending() -> list[Path]:
    """Entries waiting to be stored, oldest first."""
    try:
        return sorted(p for p in incoming_dir().iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []


def backlog() -> int:
    return len(pending())


def quarantined_count() -> int:
    """Spool entries that could not be read and wait for a human (see docs/OPERATIONS.md)."""
    try:
        return sum(1 for path in quarantine_dir().iterdir() if path.is_file())
    except FileNotFoundError:
        return 0


@dataclass
class DrainReport:
    stored: int = 0
    already_stored: int = 0
    quarantined: int = 0
    failed: int = 0
    remaining: int = 0
    outcomes: dict = field(default_factory=dict)
    error: str = ""
    busy: bool = False


def drain(limit: int | None = None) -> DrainReport:
    """Store spooled entries until the spool is empty, `limit` entries are done, or the database fails.

    Only one drain runs at a time across all processes; a concurrent call returns `busy`.
    """
    from .ingest import RawRequest, store  # ingest imports this module

    report = DrainReport()
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.SPOOL_DIR / ".drain.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.busy = True
            return report
        _quarantine_stale_temporaries(report)
        entries = pending()
        for done, path in enumerate(entries):
            if limit is not None and done >= limit:
                break
            try:
                raw = RawRequest.from_json(json.loads(path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError) as error:
                _quarantine(path, f"unreadable entry: {type(error).__name__}: {error}", report)
                continue
            try:
                result = store(raw, spool_id=path.stem)
            except Exception as error:
                # Delivery.spool_id is unique: an entry stored by a drain that died before the unlink
                # is refused by the database (store's transaction rolls back), not looked up first.
                if isinstance(error, IntegrityError) and _already_stored(path.stem):
                    report.already_stored += 1
                elif isinstance(error, DatabaseError) and dberrors.classify(error) is not None:
                    report.error = dberrors.describe(error)
                    break  # the database is failing again: the entry waits for the next drain
                elif not _keep_as_error_delivery(raw, path, error, report):
                    break
            else:
                report.stored += 1
                report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
            path.unlink(missing_ok=True)
        report.remaining = backlog()
    return report


def drain_in_background_if_pending() -> None:
    """Called whenever the database has just answered (a stored postback, a healthy /health): if
    entries are waiting and this process is not draining already, drain them on a thread.

    No interval gates the first look after an outage, so the spool starts draining with the first
    postback (or health probe) that succeeds. The look itself is one directory scan that stops at the
    first entry, and a process starts at most one drain thread per _START_INTERVAL seconds.
    """
    global _last_start, _drain_thread
    if not _start_lock.acquire(blocking=False):
        return
    try:
        now = time.monotonic()
        if (_drain_thread is not None and _drain_thread.is_alive()) or now - _last_start < _START_INTERVAL:
            return
        if not _has_pending():
            return
        _last_start = now
        _drain_thread = threading.Thread(target=_drain_on_thread, name="spool-drain", daemon=True)
        _drain_thread.start()
    finally:
        _start_lock.release()


def _has_pending() -> bool:
    """Whether an entry waits; one stat() when nothing changed since the directory was seen empty.

    Adding or removing an entry changes the directory's mtime, so an unchanged mtime means still
    empty. The kernel stamps mtimes with a coarse clock, though, and a change within the tick of the
    recorded one would leave it equal; so an mtime is recorded only when it is already a second old.
    That holds on file systems that stamp times to a second or finer (ext4, xfs, overlayfs), not on
    FAT's two seconds: SPOOL_DIR must not be on FAT.
    """
    global _empty_at_mtime
    directory = incoming_dir()
    try:
        mtime = os.stat(directory).st_mtime_ns
        if mtime == _empty_at_mtime:
            return False
        with os.scandir(directory) as entries:
            pending = any(entry.name.endswith(".json") for entry in entries)
    except FileNotFoundError:
        return False
    settled = mtime < time.time_ns() - 1_000_000_000
    _empty_at_mtime = mtime if settled and not pending else None
    return pending


def _drain_on_thread() -> None:
    try:
        report = drain()
        if report.stored or report.quarantined or report.failed or report.error:
            log.info("spool drained: %s", report)
    except Exception:
        log.exception("spool drain failed")
    finally:
        connections.close_all()


def _already_stored(entry_id: str) -> bool:
    from .models import Delivery

    return Delivery.objects.filter(spool_id=entry_id).exists()


def _keep_as_error_delivery(raw, path: Path, error: Exception, report: DrainReport) -> bool:
    """An entry that fails through a bug of ours becomes an `error` delivery (kept for replay once the
    bug is fixed) instead of blocking every entry behind it. False if even that cannot be stored."""
    from .ingest import record_failure

    log.error("spool entry %s could not be stored: %s", path.name, error, exc_info=error)
    try:
        record_failure(raw, error, spool_id=path.stem)
    except Exception as second:
        report.error = f"{type(second).__name__}: {second}"
        return False
    report.failed += 1
    alerts.alert(
        "spool-error",
        "A spooled postback failed with an error and was kept as an error delivery",
        f"Entry {path.name} raised {type(error).__name__}: {error}\n"
        "It is stored as a delivery with outcome 'error'; replay it once the cause is fixed.",
    )
    return True


def _quarantine(path: Path, reason: str, report: DrainReport) -> None:
    target = quarantine_dir()
    target.mkdir(parents=True, exist_ok=True)
    os.replace(path, target / path.name)
    report.quarantined += 1
    log.error("spool entry %s quarantined: %s", path.name, reason)
    alerts.alert(
        "spool-corrupt",
        "A spooled postback could not be read and was quarantined",
        f"Entry {path.name} was moved to {target}.\nReason: {reason}\n"
        "Inspect it by hand; if it holds a postback, enter it with manage.py replay_webhook --query.",
    )


def _quarantine_stale_temporaries(report: DrainReport) -> None:
    cutoff = time.time() - _STALE_TMP_SECONDS
    for path in incoming_dir().glob(".*.tmp") if incoming_dir().exists() else ():
        if path.stat().st_mtime < cutoff:
            _quarantine(path, "incomplete write (the process died while spooling)", report)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
