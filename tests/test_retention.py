"""Row outcomes are pruned after row_outcomes_retention_days; runs keep their counts, the latest run its rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from smartingest import service
from smartingest.store.tables import SyncRun
from tests.conftest import create_customers

pytestmark = pytest.mark.usefixtures("metadata_database")  # pruning on SQLite and on PostgreSQL


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


def test_old_runs_lose_their_row_outcomes_but_keep_their_counts(pg, sandbox, workspace_factory):
    create_customers(pg, 5)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    first = service.run(ws, "customers_to_users")
    pg.execute("UPDATE customers SET plan = 'team' WHERE id = 1")
    second = service.run(ws, "customers_to_users")
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with ws.ledger.engine.begin() as con:
        con.execute(update(SyncRun).values(finished_at=long_ago))
    pg.execute("UPDATE customers SET plan = 'pro' WHERE id = 2")
    third = service.run(ws, "customers_to_users")

    assert service.run_rows(ws, first.run_id) == []  # older than 30 days: pruned
    pruned = service.get_run(ws, first.run_id)
    assert pruned.counts["synced"] == 5 and pruned.rows_pruned_at is not None
    assert not ws.ledger.outcomes.run_dir("customers_to_users", first.run_id).exists()  # the files went too
    # Also old, but the sync's latest run when the third one started (pruning happens then): kept.
    assert len(service.run_rows(ws, second.run_id)) == 1
    assert len(service.run_rows(ws, third.run_id)) == 1


def test_the_latest_run_keeps_its_rows_however_old(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    only = service.run(ws, "customers_to_users")
    with ws.ledger.engine.begin() as con:
        con.execute(update(SyncRun).values(finished_at=datetime.now(UTC) - timedelta(days=400)))
    assert ws.ledger.prune_rows("customers_to_users", 30) == []
    assert len(service.run_rows(ws, only.run_id)) == 3
    assert ws.ledger.prune_rows("customers_to_users", None) == []
