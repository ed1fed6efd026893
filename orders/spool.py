"""The durable spool: where a postback goes when the database cannot take it.

Each entry is one JSON file in SPOOL_DIR/incoming (a RawRequest's JSON form), written to a temporary
name, fsynced, renamed and the directory fsynced, so an entry either exists whole or not at all (a
crash leaves only a `.tmp` file, which the sender was never told about). A damaged entry is moved
to SPOOL_DIR/quarantine and reported.

This module is the directory and nothing else: it never touches the database. Storing the entries
is orders.spooldrain's work, through the write path.
"""

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from . import alerts, filelock
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.spool")

# A temporary file this old was left by a crash mid-write; its sender never got a 2xx.
_STALE_TMP_SECONDS = 3600
# The incoming directory's modification time when it was last seen empty (see has_pending).
_empty_at_mtime: int | None = None


def incoming_dir() -> Path:
    return settings.SPOOL_DIR / "incoming"


def quarantine_dir() -> Path:
    return settings.SPOOL_DIR / "quarantine"


def write(raw: RawRequest) -> str:
    """Write `raw` durably and return the entry id. Raises OSError if it cannot."""
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


def read(path: Path) -> RawRequest:
    """The postback an entry holds; raises OSError, ValueError, KeyError or TypeError on a damaged one."""
    return RawRequest.from_json(json.loads(path.read_bytes()))


def pending() -> list[Path]:
    """Entries waiting to be stored, oldest first. An entry's id is its file name's stem."""
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


@contextmanager
def exclusive() -> Iterator[bool]:
    """Hold the spool's drain lock for the block, across processes; yields False (and holds nothing)
    when another process holds it."""
    with filelock.held(settings.SPOOL_DIR / ".drain.lock") as held:
        yield held


def has_pending() -> bool:
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


def quarantine(path: Path, reason: str) -> None:
    """Move an entry that cannot be read out of the way, and tell the admins."""
    target = quarantine_dir()
    target.mkdir(parents=True, exist_ok=True)
    os.replace(path, target / path.name)
    log.error("spool entry %s quarantined: %s", path.name, reason)
    alerts.alert(
        "spool-corrupt",
        "A spooled postback could not be read and was quarantined",
        f"Entry {path.name} was moved to {target}.\nReason: {reason}\n"
        "Inspect it by hand; if it holds a postback, enter it with manage.py replay_webhook --query.",
    )


def quarantine_stale_temporaries() -> int:
    """Quarantine what crashed writes left behind; return how many."""
    if not incoming_dir().exists():
        return 0
    cutoff = time.time() - _STALE_TMP_SECONDS
    stale = [path for path in incoming_dir().glob(".*.tmp") if path.stat().st_mtime < cutoff]
    for path in stale:
        quarantine(path, "incomplete write (the process died while spooling)")
    return len(stale)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
