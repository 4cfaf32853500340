"""Queued runs and claiming them: a run is queued (one per sync at a time), then claimed and executed by
one process; while another run of its sync is in progress it waits, queued. Real PostgreSQL, the sandbox
over real HTTP, a real SQLite and a real PostgreSQL metadata database."""

from __future__ import annotations

import pytest

from smartingest import service
from smartingest.engine.lease import sync_lease
from smartingest.errors import RunNotQueuedError, SyncLockedError, UnknownNameError
from tests.conftest import create_customers

SYNC = "customers_to_users"


@pytest.fixture
def ws(pg, sandbox, workspace_factory, metadata_database):
    create_customers(pg, 5)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    return workspace_factory(sandbox.url, sql=sql)


def test_a_queued_run_is_claimed_once_and_a_sync_has_one_queued_run(ws):
    run_id = service.enqueue_run(ws, SYNC, trigger="schedule")
    assert service.enqueue_run(ws, SYNC, full_resync=True) == run_id  # the waiting one, now a full resync
    queued = service.get_run(ws, run_id)
    assert queued is not None and (queued.status, queued.full_resync, queued.trigger) == ("queued", True, "schedule")

    result = service.execute_run(ws, run_id)
    assert (result.run_id, result.status, result.counts["synced"]) == (run_id, "succeeded", 5)
    with pytest.raises(RunNotQueuedError, match=f"run #{run_id} is not queued"):
        service.execute_run(ws, run_id)
    assert service.enqueue_run(ws, SYNC) != run_id  # a new one once the first ran


def test_a_run_waits_queued_while_another_of_its_sync_is_in_progress(ws):
    run_id = service.enqueue_run(ws, SYNC)
    target = service.sync_target(ws, SYNC)
    with sync_lease(ws.ledger.engine, target.id, SYNC, "run") as other:
        other.attach(999)
        with pytest.raises(SyncLockedError, match="already running"):
            service.execute_run(ws, run_id)
        record = service.get_run(ws, run_id)
        assert record is not None and record.status == "queued"
        # `sync run` meanwhile is refused and leaves the queued run as it was, and no run of its own.
        with pytest.raises(SyncLockedError):
            service.run(ws, SYNC)
        assert [r.id for r in service.list_runs(ws, SYNC)] == [run_id]
    assert service.execute_run(ws, run_id).status == "succeeded"


def test_sync_run_executes_the_queued_run_and_a_refused_one_leaves_nothing(ws):
    run_id = service.enqueue_run(ws, SYNC)
    assert service.run(ws, SYNC).run_id == run_id  # the waiting run, executed now
    target = service.sync_target(ws, SYNC)
    with sync_lease(ws.ledger.engine, target.id, SYNC, "plan"), pytest.raises(SyncLockedError, match="being planned"):
        service.run(ws, SYNC)
    assert [r.id for r in service.list_runs(ws, SYNC)] == [run_id]


def test_a_run_of_a_sync_no_longer_defined_is_refused(ws):
    with pytest.raises(UnknownNameError, match="no run #404"):
        service.execute_run(ws, 404)
    run_id, _ = ws.ledger.enqueue("gone", False, sync_name="gone")
    with pytest.raises(UnknownNameError, match="sync id 'gone', which is no longer defined"):
        service.execute_run(ws, run_id)


def test_a_queued_run_cancelled_never_starts(ws):
    run_id = service.enqueue_run(ws, SYNC)
    assert service.cancel_run(ws, run_id) is True
    ended = service.get_run(ws, run_id)
    assert ended is not None and (ended.status, ended.error) == ("failed", "cancelled by a user before it started")
    assert service.cancel_run(ws, run_id) is False  # ended already
    with pytest.raises(RunNotQueuedError):
        service.execute_run(ws, run_id)
    with pytest.raises(UnknownNameError, match="no run #999"):
        service.cancel_run(ws, 999)
