"""One run per sync across machines: the lease in the metadata database. Refused while held, taken over
when its holder's process is gone or it expired, and a run that loses it commits nothing. Real SQLite and
PostgreSQL metadata databases, a real run process against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import Engine, insert, select, update

from smartingest import service
from smartingest.engine.lease import sync_lease
from smartingest.errors import SyncLockedError
from smartingest.store.db import open_database
from smartingest.store.tables import SyncLease
from tests.conftest import create_customers, fresh_pg_database, write_project


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield open_database(f"sqlite:///{tmp_path / 'meta.db'}")
        return
    with fresh_pg_database() as url:
        database = open_database(url)
        try:
            yield database
        finally:
            database.dispose()


def _plant(engine: Engine, host: str, pid: int, expires_in: float, run_id: int | None = 7) -> None:
    """A lease row as another process would have left it."""
    now = datetime.now(UTC)
    with engine.begin() as con:
        con.execute(
            insert(SyncLease).values(
                sync_id="s",
                holder="other",
                purpose="run",
                run_id=run_id,
                host=host,
                pid=pid,
                acquired_at=now,
                expires_at=now + timedelta(seconds=expires_in),
            )
        )


def _take(engine: Engine, purpose: str = "run") -> None:
    with sync_lease(engine, "s", "people", purpose):
        pass


def test_a_held_lease_refuses_a_second_holder_and_is_released(engine):
    with sync_lease(engine, "s", "people", "run") as lease:
        lease.attach(42)
        with pytest.raises(SyncLockedError, match=r"sync 'people' is already running \(run #42, pid \d+ on "):
            _take(engine)
        with pytest.raises(SyncLockedError, match="already running"):
            _take(engine, "plan")
    # Released, it is free again.
    with sync_lease(engine, "s", "people", "plan"), pytest.raises(SyncLockedError, match="is being planned"):
        _take(engine)


def test_a_lease_of_a_process_gone_from_this_machine_is_taken_over_at_once(engine):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _plant(engine, os.uname().nodename, gone.pid, expires_in=600)
    with sync_lease(engine, "s", "people", "run") as lease, engine.connect() as con:
        assert con.execute(select(SyncLease.holder)).scalar() == lease.holder


def test_a_lease_of_another_machine_holds_until_it_expires(engine):
    _plant(engine, "another-host", 1, expires_in=600)
    with pytest.raises(SyncLockedError, match="run #7, pid 1 on another-host"):
        _take(engine)
    with engine.begin() as con:
        con.execute(update(SyncLease).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    _take(engine)


def test_renewals_keep_a_lease_and_find_it_taken_over(engine):
    with sync_lease(engine, "s", "people", "run", seconds=1, renew=0.05) as lease:
        time.sleep(1.5)  # past its first expiry: renewals kept it
        with pytest.raises(SyncLockedError):
            _take(engine)
        with engine.begin() as con:
            con.execute(update(SyncLease).values(holder="thief"))
        deadline = time.monotonic() + 5
        while lease.held and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lease.lost


def test_a_run_that_loses_its_lease_commits_nothing(pg, sandbox, admin, tmp_path):
    create_customers(pg, 300)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    project = write_project(tmp_path, sandbox.url, sql=sql, sync={"batch_size": 20})
    doc = yaml.safe_load(project.read_text())
    doc["lease_seconds"] = 1
    project.write_text(yaml.safe_dump(doc))
    home = tmp_path / "home"
    home.mkdir()
    admin.faults(latency_ms=200)  # 15 requests: about 3 s of sending, in which the lease is taken
    command = [sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", "customers_to_users"]
    run = subprocess.Popen(command, env={**os.environ, "SMARTINGEST_HOME": str(home)}, stdout=subprocess.PIPE)
    engine = open_database(f"sqlite:///{home / 'metadata.db'}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as con:
            if con.execute(select(SyncLease.run_id)).scalar():
                break
        time.sleep(0.05)
    time.sleep(0.5)
    with engine.begin() as con:  # another process took the lease over (it found it expired)
        con.execute(update(SyncLease).values(holder="thief"))
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 1, output
    ws = service.open_workspace(project, home=home)
    [record] = service.list_runs(ws, "customers_to_users")
    assert record.status == "failed" and "could not renew its lease" in (record.error or "")
    # Nothing was committed: the next plan sends every row again.
    with engine.begin() as con:
        con.execute(SyncLease.__table__.delete())
    assert service.plan(ws, "customers_to_users").counts.added == 300
