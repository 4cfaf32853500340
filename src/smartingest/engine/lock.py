"""One run per sync at a time: an exclusive lock file per sync, released by the OS if the process dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smartingest.errors import StateError, SyncLockedError


@contextmanager
def sync_lock(state_dir: Path, sync_name: str) -> Iterator[None]:
    """Hold the sync's lock (``<state_dir>/<sync>/run.lock``) for the duration.

    Raises SyncLockedError at once if another process holds it, and StateError naming the state
    directory if the lock file cannot be created or written there (no permission, a path through a
    regular file, a read-only or full file system).
    """
    directory = Path(state_dir) / sync_name
    path = directory / "run.lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _unusable(state_dir, path, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise SyncLockedError(
                f"sync {sync_name!r} is already running (pid {holder}); wait for it to finish"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            raise _unusable(state_dir, path, exc) from exc
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _unusable(state_dir: Path, path: Path, exc: OSError) -> StateError:
    return StateError(
        f"the state directory {state_dir} is not usable: cannot create or write {path} ({exc.strerror or exc}); "
        "state_dir (in the project file, default SMARTINGEST_HOME/state) must be a directory smartingest "
        "can create and write"
    )
