"""``from: COLUMN.a.b`` end to end: a path into a PostgreSQL jsonb column lands as the value it leads to,
and a change of the column resends the row. Real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers

SYNC = "customers_to_users"


def test_a_path_into_a_jsonb_column_sends_what_it_leads_to(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    create_customers(pg, 3)
    geo = "jsonb_build_object('zip', 1000 + id, 'tags', array['a', plan])"
    sql = f"select id, email, jsonb_build_object('city', city, 'geo', {geo}) as address from {pg.schema}.customers"
    mappings = [
        {"from": "email", "to": "email"},
        {"from": "address.city", "to": "city"},
        {"from": "address.geo.zip", "to": "zip"},
        {"from": "address.geo.tags", "to": "tags"},
        {"from": "address.geo.missing", "to": "missing", "skip_null": True},
    ]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)
    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    assert admin.users()["user2@example.com"]["dataFields"] == {"city": "Osaka", "zip": 1002, "tags": ["a", "team"]}
    assert admin.get_fields()["zip"] == "long"

    pg.execute("UPDATE customers SET city = 'Kyoto' WHERE id = 2")
    second = service.run(ws, SYNC)
    assert (second.counts["changed"], second.counts["synced"]) == (1, 1)
    assert admin.users()["user2@example.com"]["dataFields"]["city"] == "Kyoto"
