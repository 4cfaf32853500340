"""``skip_null: true`` end to end: where the column is null the field is left out of the request, so
Iterable keeps what it holds; without it, null is sent and clears the field. Users and events, real
PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers
from tests.events_support import create_purchases, derived_id, events_by_id, purchases_sql

SYNC = "customers_to_users"


def test_a_users_sync_leaves_out_null_fields_that_skip_nulls(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    create_customers(pg, 3)
    mappings = [
        {"from": "email", "to": "email"},
        {"from": "first_name", "to": "firstName"},
        {"from": "plan", "to": "plan", "skip_null": True},
        {"from": "city", "to": "address.city", "skip_null": True},
    ]
    sql = f"select id, email, first_name, plan, city from {pg.schema}.customers"
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)
    assert service.run(ws, SYNC).status == "succeeded"
    before = admin.users()["user1@example.com"]["dataFields"]
    assert before == {"firstName": "First1", "plan": "pro", "address": {"city": "Austin"}}

    pg.execute("UPDATE customers SET first_name = NULL, plan = NULL, city = NULL WHERE id = 1")
    run = service.run(ws, SYNC)
    assert (run.status, run.counts["changed"], run.counts["synced"]) == ("succeeded", 1, 1)
    # firstName does not skip nulls: cleared. plan and the address were left out: kept as they were.
    assert admin.users()["user1@example.com"]["dataFields"] == {
        "firstName": None,
        "plan": "pro",
        "address": before["address"],
    }


def test_an_events_sync_leaves_null_fields_out_of_the_event(pg, sandbox, workspace_factory):
    create_purchases(pg, 2)
    pg.execute("UPDATE purchases SET sku = NULL, amount = NULL WHERE id = 2")
    mappings = [
        {"from": "email", "to": "email"},
        {"from": "amount", "to": "amount"},
        {"from": "sku", "to": "item.sku", "skip_null": True},
    ]
    sync = {"type": "events", "event_name": "purchase", "created_at": "bought_at", "match_on": None}
    ws = workspace_factory(sandbox.url, sql=purchases_sql(pg), mappings=mappings, sync=sync)
    assert service.run(ws, SYNC).status == "succeeded"
    events = events_by_id(sandbox.url, {"buyer1@example.com", "buyer2@example.com"})
    assert events[derived_id(1)]["dataFields"] == {"amount": 3.5, "item": {"sku": "sku-1"}}
    assert events[derived_id(2)]["dataFields"] == {"amount": None}
