"""Variable mappings end to end: the run's metadata lands in Iterable, typed, and a new run id alone
resends nothing. Users and catalog items, real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

import datetime as dt

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers
from tests.test_catalog_sync import Catalogs, catalog_sync, create_products

SYNC = "customers_to_users"
VARIABLES = [
    {"variable": "run_id", "to": "sync.runId"},
    {"variable": "run_started_at", "to": "sync.startedAt"},
    {"variable": "sync_name", "to": "sync.name"},
    {"variable": "model_name", "to": "sync.model"},
]


def _iterable_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


def test_a_users_sync_sends_the_run_s_metadata_and_resends_only_changed_rows(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 5)
    sql = f"select id, email, plan from {pg.schema}.customers"
    mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}, *VARIABLES]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)

    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    [recorded] = service.list_runs(ws, SYNC)
    expected = {
        "runId": first.run_id,
        "startedAt": _iterable_time(recorded.started_at),
        "name": SYNC,
        "model": "customers",
    }
    assert {u["dataFields"]["sync"]["runId"] for u in admin.users().values()} == {first.run_id}
    assert admin.users()["user1@example.com"]["dataFields"]["sync"] == expected
    fields = admin.get_fields()
    assert (fields["sync.runId"], fields["sync.startedAt"], fields["sync.name"]) == ("long", "date", "string")

    # A new run has a new id, but no row changed: nothing is sent.
    second = service.run(ws, SYNC)
    assert (second.counts["unchanged"], second.counts["synced"]) == (5, 0)
    pg.execute("UPDATE customers SET plan = 'enterprise' WHERE id = 2")
    third = service.run(ws, SYNC)
    assert (third.counts["changed"], third.counts["synced"]) == (1, 1)
    users = admin.users()
    assert users["user2@example.com"]["dataFields"]["sync"]["runId"] == third.run_id
    assert users["user1@example.com"]["dataFields"]["sync"]["runId"] == first.run_id


def test_a_catalog_sync_sends_variables_in_its_items(pg, sandbox, workspace_factory):
    create_products(pg, 3)
    mappings = [
        {"from": "name", "to": "name"},
        {"variable": "sync_id", "to": "importedBy"},
        {"variable": "now", "to": "importedAt"},
    ]
    ws = workspace_factory(
        sandbox.url, sql=f"select id, name from {pg.schema}.products", mappings=mappings, sync=catalog_sync()
    )
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run = service.run(ws, SYNC)
    assert run.status == "succeeded", run.error
    items = Catalogs(sandbox).items()
    assert {item["importedBy"] for item in items.values()} == {SYNC}
    for item in items.values():
        imported = dt.datetime.strptime(item["importedAt"], "%Y-%m-%d %H:%M:%S +00:00").replace(tzinfo=dt.UTC)
        assert before <= imported <= dt.datetime.now(dt.UTC)
