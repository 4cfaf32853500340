"""When the mappings change, the plan and the run say what the next run resends, and why: every row whole,
or, when the mappings only added fields the destination merges in, only those fields to the rows whose
values did not change. Once the snapshot holds the new mappings, they say nothing. Real PostgreSQL, the
sandbox over real HTTP, reading back what it received and what it holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from smartingest import service
from smartingest.sandbox import SandboxServer
from tests.conftest import SandboxAdmin, create_customers, running_sandbox
from tests.test_catalog_sync import Catalogs, catalog_sync, create_products

SYNC = "customers_to_users"
REMAPPED = "the mappings (or settings that shape requests) changed since the snapshot was written"
ADDED = "the mappings only added"
EMAIL_PLAN = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox that keeps what it received."""
    with running_sandbox(tmp_path / "sandbox", record_requests=1000) as server:
        yield server


def received(server: SandboxServer, endpoint: str) -> list[dict[str, Any]]:
    """The bodies an endpoint received, oldest first (the record is cleared after reading)."""
    answer = httpx.get(f"{server.url}/_sandbox/requests", params={"endpoint": endpoint}, timeout=10).json()
    httpx.delete(f"{server.url}/_sandbox/requests", timeout=10)
    return [orjson.loads(r["body"]) for r in answer["requests"].get(endpoint, [])]


def sent_users(server: SandboxServer) -> dict[str, dict[str, Any]]:
    """Every user object bulkUpdate received since the last read, by email."""
    return {user["email"]: user for body in received(server, "POST /api/users/bulkUpdate") for user in body["users"]}


def test_a_changed_mapping_resends_every_row_whole(pg, sandbox, workspace_factory):
    create_customers(pg, 4)
    sql = f"select id, email, plan, city from {pg.schema}.customers"
    ws = workspace_factory(sandbox.url, sql=sql, mappings=EMAIL_PLAN)
    assert service.run(ws, SYNC).status == "succeeded"
    assert not any(REMAPPED in w for w in service.plan(ws, SYNC).warnings)

    # The field "plan" now comes from another column: what Iterable holds there is stale for every row.
    ws = workspace_factory(sandbox.url, sql=sql, mappings=[EMAIL_PLAN[0], {"from": "city", "to": "plan"}])
    plan = service.plan(ws, SYNC)
    assert plan.counts.changed == 4
    assert any(REMAPPED in w for w in plan.warnings) and not any(ADDED in w for w in plan.warnings)
    run = service.run(ws, SYNC)
    assert (run.status, run.counts["synced"]) == ("succeeded", 4)
    assert any(REMAPPED in w for w in run.warnings)

    again = service.plan(ws, SYNC)
    assert again.counts.changed == 0 and not any(REMAPPED in w for w in again.warnings)


def test_added_fields_go_alone_to_the_rows_whose_values_did_not_change(pg, recording, workspace_factory):
    create_customers(pg, 4)
    sql = f"select id, email, first_name, plan, city from {pg.schema}.customers"
    ws = workspace_factory(recording.url, sql=sql, mappings=EMAIL_PLAN)
    assert service.run(ws, SYNC).status == "succeeded"
    received(recording, "POST /api/users/bulkUpdate")

    pg.execute("UPDATE customers SET plan = 'enterprise' WHERE id = 2")
    added = [{"from": "city", "to": "city"}, {"template": "{{ first_name }} from {{ city }}", "to": "greeting"}]
    ws = workspace_factory(recording.url, sql=sql, mappings=[*EMAIL_PLAN, *added])
    plan = service.plan(ws, SYNC)
    assert plan.counts.changed == 4
    (note,) = [w for w in plan.warnings if ADDED in w]
    assert "2 fields ('city', 'greeting')" in note
    assert "3 rows whose values did not change get only the added fields; 1 changed row is sent whole" in note
    assert not any(REMAPPED in w for w in plan.warnings)

    run = service.run(ws, SYNC)
    assert (run.status, run.counts["changed"], run.counts["synced"]) == ("succeeded", 4, 4)
    assert any(note == w for w in run.warnings)
    sent = sent_users(recording)
    assert sent["user1@example.com"] == {
        "email": "user1@example.com",
        "dataFields": {"city": "Austin", "greeting": "First1 from Austin"},
    }
    assert sent["user2@example.com"]["dataFields"] == {
        "plan": "enterprise",
        "city": "Osaka",
        "greeting": "First2 from Osaka",
    }
    # What Iterable holds is what whole requests would have left: the old fields kept, the new ones added.
    held = SandboxAdmin(recording).users()
    assert {email: user["dataFields"] for email, user in held.items()} == {
        f"user{i}@example.com": {
            "plan": ["free", "pro", "team"][i % 3] if i != 2 else "enterprise",
            "city": ["Paris", "Austin", "Osaka"][i % 3],
            "greeting": f"First{i} from {['Paris', 'Austin', 'Osaka'][i % 3]}",
        }
        for i in range(1, 5)
    }

    again = service.plan(ws, SYNC)
    assert again.counts.changed == 0 and not any(ADDED in w or REMAPPED in w for w in again.warnings)
    pg.execute("UPDATE customers SET city = 'Lima' WHERE id = 3")
    assert service.run(ws, SYNC).counts["synced"] == 1
    assert sent_users(recording)["user3@example.com"]["dataFields"] == {
        "plan": "free",
        "city": "Lima",
        "greeting": "First3 from Lima",
    }


def test_a_field_added_inside_an_object_iterable_replaces_whole_resends_every_row(pg, recording, workspace_factory):
    create_customers(pg, 3)
    sql = f"select id, email, plan, city from {pg.schema}.customers"
    before = [{"from": "email", "to": "email"}, {"from": "city", "to": "address.city"}]
    ws = workspace_factory(recording.url, sql=sql, mappings=before)
    assert service.run(ws, SYNC).status == "succeeded"

    # Without mergeNestedObjects, {"address": {"zip": ...}} alone would erase address.city.
    after = [*before, {"static": "75001", "to": "address.zip"}]
    ws = workspace_factory(recording.url, sql=sql, mappings=after)
    assert any(REMAPPED in w for w in service.plan(ws, SYNC).warnings)
    # With it, Iterable merges top-level objects one level deep: address.zip can go alone.
    merging = {"merge_nested_objects": True}
    ws = workspace_factory(recording.url, sql=sql, mappings=before, sync=merging)
    assert service.run(ws, SYNC, full_resync=True).status == "succeeded"
    received(recording, "POST /api/users/bulkUpdate")
    ws = workspace_factory(recording.url, sql=sql, mappings=after, sync=merging)
    (note,) = [w for w in service.plan(ws, SYNC).warnings if ADDED in w]
    assert "1 field ('address.zip')" in note
    assert service.run(ws, SYNC).status == "succeeded"
    sent = sent_users(recording)
    assert sent["user1@example.com"]["dataFields"] == {"address": {"zip": "75001"}}
    held = SandboxAdmin(recording).users()["user1@example.com"]["dataFields"]
    assert held["address"] == {"city": "Austin", "zip": "75001"}


def test_catalog_items_take_added_fields_alone_unless_whole_items_are_replaced(pg, recording, workspace_factory):
    create_products(pg, 3)
    sql = f"select * from {pg.schema}.products"
    before = [{"from": "name", "to": "name"}]
    after = [*before, {"from": "stock", "to": "stock"}]
    endpoint = "POST /api/catalogs/{catalogName}/items"
    ws = workspace_factory(recording.url, sql=sql, mappings=before, sync=catalog_sync())
    assert service.run(ws, SYNC).status == "succeeded"
    received(recording, endpoint)

    ws = workspace_factory(recording.url, sql=sql, mappings=after, sync=catalog_sync())
    (note,) = [w for w in service.plan(ws, SYNC).warnings if ADDED in w]
    assert "3 rows whose values did not change get only the added fields" in note
    assert service.run(ws, SYNC).status == "succeeded"
    (body,) = received(recording, endpoint)
    assert body["documents"] == {"1": {"stock": 1}, "2": {"stock": 2}, "3": {"stock": 3}}
    assert body["replaceUploadedFieldsOnly"] is True
    assert Catalogs(recording).items()["2"] == {"name": "Product 2", "stock": 2}

    # Whole items replace what the catalog holds: an item of the added field alone would lose its name.
    whole = catalog_sync(replace=True)
    ws = workspace_factory(recording.url, sql=sql, mappings=before, sync=whole)
    service.run(ws, SYNC)
    ws = workspace_factory(recording.url, sql=sql, mappings=after, sync=whole)
    warnings = service.plan(ws, SYNC).warnings
    assert any(REMAPPED in w for w in warnings) and not any(ADDED in w for w in warnings)
