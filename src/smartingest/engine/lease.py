"""One run per sync across every machine that shares the metadata database: a lease per sync.

A run (or a plan, or a reset) takes its sync's lease before it touches the sync's state, and a thread
keeps it alive while the work lasts (renewed every ``RENEW_SECONDS``); whoever finds it held is refused,
told who holds it. A lease whose holder stopped renewing expires after ``LEASE_SECONDS`` and is then taken
over: that is how a run on a machine that died is found abandoned. On the holder's own machine nothing
needs to wait: a lease whose process is gone (kill -9) is taken over at once.

Taking a lease is a read and a conditional write in one transaction (an insert, or an update of the row
as it was read): of two processes racing, one writes and the other finds it held, on SQLite and on
PostgreSQL alike. A holder that could not renew in time (its database unreachable for a minute, its
process suspended) finds its lease ``lost``: it must then commit nothing, since another may run now.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from smartingest.errors import SyncLockedError
from smartingest.store.tables import SyncLease

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
RENEW_SECONDS = 15.0
_DOING = {"run": "already running", "plan": "being planned", "reset": "being reset"}


@dataclass
class Lease:
    """A held lease: whose it is, and whether renewals found it taken over."""

    engine: Engine
    sync_id: str
    holder: str
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def attach(self, run_id: int) -> None:
        """Name the run that holds it (what a refused caller is told)."""
        with self.engine.begin() as con:
            con.execute(_mine(self).values(run_id=run_id))

    @property
    def held(self) -> bool:
        return not self.lost


@contextmanager
def sync_lease(
    engine: Engine, sync_id: str, name: str, purpose: str, seconds: float = LEASE_SECONDS, renew: float = RENEW_SECONDS
) -> Iterator[Lease]:
    """Hold the lease of the sync ``sync_id`` (named ``name`` in messages) for ``purpose`` (run, plan,
    reset) while the block runs. Raises SyncLockedError at once when another process holds it."""
    lease = _acquire(engine, sync_id, name, purpose, seconds)
    keeper = threading.Thread(target=_keep, args=(lease, seconds, renew), name=f"lease {sync_id}", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        lease._stop.set()
        keeper.join()
        try:
            with engine.begin() as con:
                con.execute(delete(SyncLease).where(SyncLease.sync_id == sync_id, SyncLease.holder == lease.holder))
        except SQLAlchemyError as exc:  # it expires by itself: the next run waits LEASE_SECONDS at worst
            log.warning("could not release the lease of sync %s: %s", name, exc)


def _acquire(engine: Engine, sync_id: str, name: str, purpose: str, seconds: float) -> Lease:
    holder = uuid.uuid4().hex
    for _ in range(5):  # only a lost race goes round again
        now = _now()
        values = {
            "holder": holder,
            "purpose": purpose,
            "run_id": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=seconds),
        }
        try:
            with engine.begin() as con:
                row = con.execute(select(SyncLease.__table__).where(SyncLease.sync_id == sync_id)).mappings().first()
                if row is None:
                    con.execute(insert(SyncLease).values(sync_id=sync_id, **values))
                    return Lease(engine, sync_id, holder)
                if _alive(row, now):
                    raise SyncLockedError(_held(name, row))
                taken = con.execute(
                    update(SyncLease)
                    .where(SyncLease.sync_id == sync_id, SyncLease.holder == row["holder"])
                    .values(**values)
                )
                if taken.rowcount == 1:
                    log.info(
                        "sync %s: took over the lease of pid %s on %s, which is gone", name, row["pid"], row["host"]
                    )
                    return Lease(engine, sync_id, holder)
        except IntegrityError:
            continue  # another process inserted first: look again
    raise SyncLockedError(f"sync {name!r} is being started by another process; try again")


def _keep(lease: Lease, seconds: float, renew: float) -> None:
    """Renew the lease every ``renew`` seconds until told to stop, or until it is found taken over."""
    while not lease._stop.wait(renew):
        try:
            with lease.engine.begin() as con:
                renewed = con.execute(_mine(lease).values(expires_at=_now() + timedelta(seconds=seconds)))
        except SQLAlchemyError as exc:  # the database may come back before the lease expires
            log.warning("could not renew the lease of sync %s: %s", lease.sync_id, exc)
            continue
        if renewed.rowcount != 1:
            lease.lost = True
            log.error(
                "sync %s: the lease was taken over by another process; this one commits nothing more", lease.sync_id
            )
            return


def _mine(lease: Lease) -> Any:
    return update(SyncLease).where(SyncLease.sync_id == lease.sync_id, SyncLease.holder == lease.holder)


def _alive(row: Any, now: datetime) -> bool:
    """Whether a lease's holder may still be at work: not expired, and its process not gone from this host."""
    expires = row["expires_at"] if row["expires_at"].tzinfo else row["expires_at"].replace(tzinfo=UTC)
    if expires <= now:
        return False
    if row["host"] == socket.gethostname() and row["pid"] != os.getpid():
        return _process_exists(int(row["pid"]))
    return True


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _held(name: str, row: Any) -> str:
    run = f"run #{row['run_id']}, " if row["run_id"] else ""
    since = row["acquired_at"].strftime("%Y-%m-%d %H:%M:%S")
    doing = _DOING.get(row["purpose"], "busy")
    return (
        f"sync {name!r} is {doing} ({run}pid {row['pid']} on {row['host']}, since {since} UTC); wait for it to finish"
    )


def _now() -> datetime:
    return datetime.now(UTC)
