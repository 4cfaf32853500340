"""Object and array mappings end to end: built from several columns, read back from Iterable as objects
and arrays (of objects too), and typed there. Users and catalog items, real PostgreSQL, the sandbox over
real HTTP."""

from __future__ import annotations

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers
from tests.test_catalog_sync import Catalogs, catalog_sync, create_products

SYNC = "customers_to_users"


def test_a_users_sync_sends_objects_and_arrays_built_from_columns(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    create_customers(pg, 3)
    sql = f"select id, email, first_name, plan, ltv, city from {pg.schema}.customers"
    mappings = [
        {"from": "email", "to": "email"},
        {"object": [{"from": "city", "to": "city"}, {"from": "ltv", "to": "value.ltv"}], "to": "profile"},
        {
            "array": [
                {"object": [{"from": "plan", "to": "name"}, {"static": True, "to": "active"}]},
                {"object": [{"static": "newsletter", "to": "name"}, {"static": False, "to": "active"}]},
            ],
            "to": "subscriptions",
        },
        {"array": [{"from": "first_name"}, {"from": "city"}], "to": "labels"},
    ]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)
    run = service.run(ws, SYNC)
    assert run.status == "succeeded", run.error
    assert admin.users()["user1@example.com"]["dataFields"] == {
        "profile": {"city": "Austin", "value": {"ltv": 7.25}},
        "subscriptions": [{"name": "pro", "active": True}, {"name": "newsletter", "active": False}],
        "labels": ["First1", "Austin"],
    }
    fields = admin.get_fields()
    assert (fields["profile.value.ltv"], fields["subscriptions"], fields["labels"]) == ("double", "array", "array")

    pg.execute("UPDATE customers SET city = 'Lyon' WHERE id = 1")  # read by an object and an array
    second = service.run(ws, SYNC)
    assert (second.counts["changed"], second.counts["synced"]) == (1, 1)
    assert admin.users()["user1@example.com"]["dataFields"]["labels"] == ["First1", "Lyon"]


def test_a_catalog_sync_sends_an_object_mapping_in_its_items(pg, sandbox, workspace_factory):
    create_products(pg, 2)
    mappings = [
        {"from": "name", "to": "name"},
        {"object": [{"from": "price", "to": "amount"}, {"static": "EUR", "to": "currency"}], "to": "price"},
    ]
    sql = f"select id, name, price from {pg.schema}.products"
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings, sync=catalog_sync())
    assert service.run(ws, SYNC).status == "succeeded"
    assert Catalogs(sandbox).items()["1"] == {"name": "Product 1", "price": {"amount": 3.5, "currency": "EUR"}}
