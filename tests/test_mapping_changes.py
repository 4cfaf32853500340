"""When the mappings change, the plan and the run say that every row is sent again, and why; once the
snapshot holds the new mappings, they say nothing. Real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

from smartingest import service
from tests.conftest import create_customers

SYNC = "customers_to_users"
REMAPPED = "the mappings (or settings that shape requests) changed since the snapshot was written"


def test_changed_mappings_are_announced_by_the_plan_and_the_run(pg, sandbox, workspace_factory):
    create_customers(pg, 4)
    sql = f"select id, email, plan, city from {pg.schema}.customers"
    before = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=before)
    assert service.run(ws, SYNC).status == "succeeded"
    assert not any(REMAPPED in w for w in service.plan(ws, SYNC).warnings)

    ws = workspace_factory(sandbox.url, sql=sql, mappings=[*before, {"from": "city", "to": "city"}])
    plan = service.plan(ws, SYNC)
    assert plan.counts.changed == 4
    assert any(REMAPPED in w for w in plan.warnings)
    run = service.run(ws, SYNC)
    assert (run.status, run.counts["synced"]) == ("succeeded", 4)
    assert any(REMAPPED in w for w in run.warnings)

    again = service.plan(ws, SYNC)
    assert again.counts.changed == 0 and not any(REMAPPED in w for w in again.warnings)
