"""Draining the spool: storing each waiting entry through the write path, on demand or on a thread.

Each entry is stored by ingest.store, like a live request, keyed by the entry's id
(Delivery.spool_id, unique), so an entry drained twice (a crash between commit and unlink) is stored
once. Only one drain runs at a time across all processes (spool.exclusive). The web process starts a
drain on a thread whenever the database has just answered (orders.views: a stored postback, a
healthy /health); `manage.py check_health` and `replay_webhook --spool` drain on demand.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import DatabaseError, IntegrityError, connections

from partners import snapshot

from . import alerts, dberrors, ingest, spool
from .models import Delivery
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.spool")

# A process starts at most one drain thread per this many seconds (another process may hold the
# drain lock, or the database may fail again mid-drain; neither is worth a thread per request).
_START_INTERVAL = 1.0
_last_start = float("-inf")
_start_lock = threading.Lock()
_drain_thread: threading.Thread | None = None


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
    report = DrainReport()
    with spool.exclusive() as ours:
        if not ours:
            report.busy = True
            return report
        report.quarantined += spool.quarantine_stale_temporaries()
        snapshot.refresh()  # the configured networks as described now: the entries are read with them
        for done, path in enumerate(spool.pending()):
            if limit is not None and done >= limit:
                break
            try:
                raw = spool.read(path)
            except (OSError, ValueError, KeyError, TypeError) as error:
                spool.quarantine(path, f"unreadable entry: {type(error).__name__}: {error}")
                report.quarantined += 1
                continue
            try:
                result = ingest.store(raw, spool_id=path.stem)
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
        report.remaining = spool.backlog()
    return report


def drain_in_background_if_pending() -> None:
    """Called whenever the database has just answered (a stored postback, a healthy /health): if
    entries are waiting and this process is not draining already, drain them on a thread.

    No interval gates the first look after an outage, so the spool starts draining with the first
    postback (or health probe) that succeeds. The look itself is one directory scan that stops at the
    first entry (spool.has_pending), and a process starts at most one drain thread per
    _START_INTERVAL seconds.
    """
    global _last_start, _drain_thread
    if not _start_lock.acquire(blocking=False):
        return
    try:
        now = time.monotonic()
        if (_drain_thread is not None and _drain_thread.is_alive()) or now - _last_start < _START_INTERVAL:
            return
        if not spool.has_pending():
            return
        _last_start = now
        _drain_thread = threading.Thread(target=_drain_on_thread, name="spool-drain", daemon=True)
        _drain_thread.start()
    finally:
        _start_lock.release()


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
    return Delivery.objects.filter(spool_id=entry_id).exists()


def _keep_as_error_delivery(raw: RawRequest, path: Path, error: Exception, report: DrainReport) -> bool:
    """An entry that fails through a bug of ours becomes an `error` delivery (kept for replay once the
    bug is fixed) instead of blocking every entry behind it. False if even that cannot be stored."""
    log.error("spool entry %s could not be stored: %s", path.name, error, exc_info=error)
    try:
        ingest.record_failure(raw, error, spool_id=path.stem)
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
