"""A sync's status as Smart Ingest shows it: each status from the runs that make it, and the list of syncs
showing it after real runs (real PostgreSQL, the sandbox over real HTTP)."""

from __future__ import annotations

import datetime as dt

import pytest

from smartingest import service
from smartingest.engine.ledger import RunRecord
from smartingest.engine.statuses import SyncStatus, sync_status
from smartingest.store.tables import COUNT_NAMES
from tests.conftest import create_customers

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def _run(status: str, ended: bool = True, **counts: int) -> RunRecord:
    return RunRecord(
        id=1,
        sync_id="s",
        sync_name="s",
        status=status,
        trigger="manual",
        full_resync=False,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW if ended else None,
        error=None,
        counts={name: counts.get(name, 0) for name in COUNT_NAMES},
        timings={},
        delivery={},
        warnings=[],
    )


@pytest.mark.parametrize(
    ("enabled", "runs", "expected"),
    [
        (True, [], SyncStatus.PENDING),
        (False, [], SyncStatus.DISABLED),
        (True, [_run("succeeded", synced=3)], SyncStatus.HEALTHY),
        (True, [_run("warning", synced=2, rejected=1)], SyncStatus.WARNING),
        (True, [_run("warning", synced=2, retried_next_run=1)], SyncStatus.INCOMPLETE),
        (True, [_run("failed", synced=2, retried_next_run=5)], SyncStatus.INCOMPLETE),
        (True, [_run("failed")], SyncStatus.ERROR),
        (False, [_run("succeeded")], SyncStatus.DISABLED),
        (True, [_run("queued", ended=False), _run("failed")], SyncStatus.QUEUED),
        (False, [_run("querying", ended=False)], SyncStatus.QUERYING),
        (True, [_run("queued", ended=False), _run("in_progress", ended=False)], SyncStatus.IN_PROGRESS),
    ],
)
def test_each_status_comes_from_the_runs_that_make_it(enabled, runs, expected):
    assert sync_status(enabled, runs) == expected


@pytest.mark.usefixtures("metadata_database")
def test_the_sync_list_shows_the_status_of_real_runs(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    pg.execute("UPDATE customers SET email = 'broken' WHERE id = 2")
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    ws = workspace_factory(sandbox.url, sql=sql)
    assert [s.status for s in service.list_syncs(ws)] == ["Pending"]
    service.enqueue_run(ws, "customers_to_users")
    assert [s.status for s in service.list_syncs(ws)] == ["Queued"]
    service.run(ws, "customers_to_users")
    assert [s.status for s in service.list_syncs(ws)] == ["Warning"]
    pg.execute("UPDATE customers SET email = 'fixed@example.com' WHERE id = 2")
    service.run(ws, "customers_to_users")
    assert [s.status for s in service.list_syncs(ws)] == ["Healthy"]
    ws = workspace_factory(sandbox.url, sql=sql, sync={"enabled": False})
    assert [(s.status, s.last_run is not None) for s in service.list_syncs(ws)] == [("Disabled", True)]
