"""One run per sync at a time: an exclusive lock file per sync, released by the OS if the process dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smartingest.errors import SyncLockedError


@contextmanager
def sync_lock(state_dir: Path, sync_name: str) -> Iterator[None]:
    """Hold the sync's lock for the duration; raise SyncLockedError at once if another process holds it."""
    directory = Path(state_dir) / sync_name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise SyncLockedError(
                f"sync {sync_name!r} is already running (pid {holder}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
