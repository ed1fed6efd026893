"""A lock that one process at a time holds across processes on one host: an flock on a file."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def held(path: Path) -> Iterator[bool]:
    """Hold the lock named by `path` (created, with its folder, if missing) for the block; yields False,
    holding nothing, when another process holds it. The kernel releases it when the holder dies, so a
    killed process never leaves it taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
