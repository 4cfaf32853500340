"""A Users sync on the Lightning engine end to end: real PostgreSQL, the sandbox over real HTTP; then the
source switched to Basic and back, sending nothing twice."""

from __future__ import annotations

import psycopg

from smartingest import service
from tests.conftest import PG_DSN, SandboxAdmin, create_customers


def _source(engine: str, planner_schema: str) -> dict[str, object]:
    return {
        "type": "postgres",
        "host": "127.0.0.1",
        "database": "test",
        "user": "postgres",
        "engine": engine,
        "planner_schema": planner_schema,
    }


def test_a_lightning_sync_sends_only_changes_and_survives_switching_engines(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    planner = f"{pg.schema}_planner"
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    try:
        create_customers(pg, 120)
        ws = workspace_factory(sandbox.url, sql=sql, source=_source("lightning", planner))

        plan = service.plan(ws, "customers_to_users")
        assert plan.counts.added == 120
        first = service.run(ws, "customers_to_users")
        assert first.status == "succeeded", first.error
        assert (first.counts["added"], first.counts["synced"], first.rows_read) == (120, 120, 120 + 1)
        assert len(admin.users()) == 120
        assert service.sync_summary(ws, "customers_to_users").snapshot_rows == 120

        second = service.run(ws, "customers_to_users")
        assert (second.counts["unchanged"], second.counts["synced"]) == (120, 0)
        assert second.rows_read == 1  # the counts' one row: nothing else left the database

        pg.execute("UPDATE customers SET plan = 'enterprise' WHERE id IN (1, 2, 3)")
        pg.execute("DELETE FROM customers WHERE id = 10")
        third = service.run(ws, "customers_to_users")
        assert third.status == "succeeded", third.error
        assert (third.counts["changed"], third.counts["removed"], third.counts["synced"]) == (3, 1, 4)
        assert admin.users()["user2@example.com"]["dataFields"]["plan"] == "enterprise"

        basic = workspace_factory(sandbox.url, sql=sql, source=_source("basic", planner))
        switched = service.run(basic, "customers_to_users")
        assert switched.status == "succeeded", switched.error
        assert (switched.counts["unchanged"], switched.counts["synced"]) == (119, 0)
        pg.execute("UPDATE customers SET plan = 'enterprise' WHERE id = 4")
        assert service.run(basic, "customers_to_users").counts["changed"] == 1

        back = workspace_factory(sandbox.url, sql=sql, source=_source("lightning", planner))
        assert service.run(back, "customers_to_users").counts["unchanged"] == 119
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {planner} CASCADE")


def test_a_lightning_source_that_cannot_be_reached_leaves_the_sync_list_standing(pg, sandbox, workspace_factory):
    planner = f"{pg.schema}_planner"
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    try:
        create_customers(pg, 3)
        ws = workspace_factory(sandbox.url, sql=sql, source=_source("lightning", planner))
        assert service.run(ws, "customers_to_users").status == "succeeded"
        assert service.sync_summary(ws, "customers_to_users").snapshot_rows == 3
        unreachable = {**_source("lightning", planner), "port": 9, "connect_timeout_seconds": 2}
        ws = workspace_factory(sandbox.url, sql=sql, source=unreachable)
        assert service.sync_summary(ws, "customers_to_users").snapshot_rows is None  # unknown: the list stands
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {planner} CASCADE")
