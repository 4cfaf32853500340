"""A catalog sync end to end: real PostgreSQL, the sandbox over real HTTP, CDC across runs.

What landed is read back through the sandbox's own catalog endpoints and compared with what the model
says the catalog should hold.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from smartingest import service
from smartingest.sandbox import SandboxServer
from tests.conftest import API_KEY

MAPPINGS = [
    {"from": "name", "to": "name"},
    {"from": "price", "to": "price"},
    {"from": "stock", "to": "inventory.stock"},
    {"from": "tags", "to": "tags"},
    {"from": "updated_at", "to": "updatedAt"},
    {"static": "acme", "to": "brand"},
]


def catalog_sync(**keys: Any) -> dict[str, Any]:
    """A catalog sync's keys for write_project (match_on left out: items are not users)."""
    return {"type": "catalog", "match_on": None, "catalog": "products", **keys}


class Catalogs:
    """Reads catalogs back through the sandbox's API."""

    def __init__(self, server: SandboxServer) -> None:
        self.http = httpx.Client(base_url=server.url, headers={"Api-Key": API_KEY}, timeout=30)

    def items(self, catalog: str = "products") -> dict[str, dict[str, Any]]:
        """Every item of a catalog: item id -> value."""
        items: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            answer = self.http.get(f"/api/catalogs/{catalog}/items", params={"page": page, "pageSize": 1000})
            answer.raise_for_status()
            body = answer.json()
            items.update((item["itemId"], item["value"]) for item in body["catalogItemsWithProperties"])
            if "nextPageUrl" not in body:
                return items
            page += 1

    def field_types(self, catalog: str = "products") -> dict[str, str]:
        answer = self.http.get(f"/api/catalogs/{catalog}/fieldMappings")
        answer.raise_for_status()
        return answer.json()["definedMappings"]

    def exists(self, catalog: str) -> bool:
        names = self.http.get("/api/catalogs", params={"pageSize": 100}).json()["catalogNames"]
        return catalog.lower() in {n["name"].lower() for n in names}


@pytest.fixture
def catalogs(sandbox: SandboxServer) -> Catalogs:
    return Catalogs(sandbox)


def create_products(pg, n: int, start: int = 1) -> None:
    pg.execute(
        """CREATE TABLE IF NOT EXISTS products (
             id bigint PRIMARY KEY, sku text, name text, price numeric(10,2), stock int, tags text[],
             updated_at timestamptz, note text)"""
    )
    pg.execute(
        """INSERT INTO products
           SELECT i, 'SKU-' || i, 'Product ' || i, (i * 3 %% 100) + 0.5, i %% 7,
                  ARRAY['t' || (i %% 3), 'all'], timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', NULL
           FROM generate_series(%s::bigint, %s::bigint) AS i""",
        (start, start + n - 1),
    )


def expected_items(pg) -> dict[str, dict[str, Any]]:
    """What the catalog should hold: one item per product row, as the mappings shape it."""
    rows = pg.execute("SELECT id, name, price, stock, tags, updated_at FROM products").fetchall()
    items = {}
    for pk, name, price, stock, tags, updated_at in rows:
        assert isinstance(price, Decimal) and isinstance(updated_at, dt.datetime)
        items[str(pk)] = {
            "name": name,
            "price": float(price),
            "inventory": {"stock": stock},
            "tags": tags,
            "updatedAt": updated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S +00:00"),
            "brand": "acme",
        }
    return items


def _accounted(counts: dict[str, int]) -> None:
    assert counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"]
    changes = counts["added"] + counts["changed"] + counts["removed"]
    assert changes == sum(counts[k] for k in ("synced", "rejected", "retried_next_run", "deferred", "skipped"))


def test_first_and_incremental_runs_keep_the_catalog_equal_to_the_model(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 120)
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=MAPPINGS,
        sync=catalog_sync(on_removed="delete", field_types={"price": "double"}),
    )
    assert not catalogs.exists("products")

    first = service.run(ws, "customers_to_users")
    assert first.status == "succeeded", first.error
    assert (first.counts["added"], first.counts["synced"]) == (120, 120)
    _accounted(first.counts)
    # 100 items a request (the sync's batch_size), paced and sent as bulk writes.
    assert first.delivery["requests"] == 2 and first.delivery["rows_sent"] == 120
    assert catalogs.items() == expected_items(pg)
    types = catalogs.field_types()
    assert types["price"] == "double" and types["inventory.stock"] == "long" and types["updatedAt"] == "date"

    pg.execute("UPDATE products SET price = 999.99, stock = 0 WHERE id IN (1, 2, 3)")
    pg.execute("UPDATE products SET tags = ARRAY['sale'] WHERE id = 4")
    pg.execute("DELETE FROM products WHERE id IN (10, 11, 12)")
    create_products(pg, 5, start=1001)

    second = service.run(ws, "customers_to_users")
    assert second.status == "succeeded", second.error
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (5, 4, 3)
    assert second.counts["synced"] == 12
    _accounted(second.counts)
    # One bulk write (9 items) and one bulk delete (3 ids).
    assert second.delivery["requests"] == 2 and second.delivery["rows_sent"] == 12
    items = catalogs.items()
    assert items == expected_items(pg)
    assert items["1"]["price"] == 999.99 and items["4"]["tags"] == ["sale"]
    assert "10" not in items and "1005" in items
    removed = service.run_rows(ws, second.run_id, limit=100)
    assert sorted(r.pk for r in removed if r.operation == "removed") == ["10", "11", "12"]

    third = service.run(ws, "customers_to_users")
    assert third.status == "succeeded"
    assert (third.counts["unchanged"], third.counts["synced"], third.delivery["requests"]) == (122, 0, 0)


def test_on_removed_nothing_leaves_the_items(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 5)
    ws = workspace_factory(
        sandbox.url, sql=f"select * from {pg.schema}.products", mappings=MAPPINGS, sync=catalog_sync()
    )
    assert service.run(ws, "customers_to_users").counts["synced"] == 5
    pg.execute("DELETE FROM products WHERE id IN (1, 2)")
    second = service.run(ws, "customers_to_users")
    assert (second.counts["removed"], second.counts["synced"], second.delivery["requests"]) == (2, 2, 0)
    assert set(catalogs.items()) == {"1", "2", "3", "4", "5"}


def test_replace_false_keeps_other_fields_and_replace_true_rewrites_items(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 3)
    catalogs.http.post("/api/catalogs/products").raise_for_status()
    # A field another tool wrote, which the sync does not map.
    catalogs.http.put("/api/catalogs/products/items/1", json={"value": {"color": "red", "name": "old"}})
    sql = f"select * from {pg.schema}.products"
    mappings = [{"from": "name", "to": "name"}]

    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings, sync=catalog_sync(replace=False))
    assert service.run(ws, "customers_to_users").status == "succeeded"
    assert catalogs.items()["1"] == {"color": "red", "name": "Product 1"}

    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings, sync=catalog_sync(replace=True))
    # How items are written is part of the fingerprint: every row is sent again.
    run = service.run(ws, "customers_to_users")
    assert (run.counts["changed"], run.counts["synced"]) == (3, 3)
    assert catalogs.items()["1"] == {"name": "Product 1"}


def test_item_ids_from_a_column_and_rows_sharing_one_are_invalid(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 4)
    pg.execute("UPDATE products SET sku = 'SKU-1' WHERE id = 2")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=[{"from": "name", "to": "name"}, {"from": "id", "to": "productId"}],
        sync=catalog_sync(item_id="sku"),
    )
    run = service.run(ws, "customers_to_users")
    assert run.status == "warning"
    assert (run.counts["invalid"], run.counts["synced"]) == (2, 2)
    invalid = service.run_rows(ws, run.run_id, status="invalid")
    assert {r.code for r in invalid} == {"shared_identifier"}
    assert "itemId 'SKU-1'" in (invalid[0].reason or "")
    assert catalogs.items() == {
        "SKU-3": {"name": "Product 3", "productId": 3},
        "SKU-4": {"name": "Product 4", "productId": 4},
    }
    # Changing an item id resends the row under its new id.
    pg.execute("UPDATE products SET sku = 'SKU-2' WHERE id = 2")
    again = service.run(ws, "customers_to_users")
    assert (again.counts["added"], again.counts["synced"]) == (2, 2)
    assert set(catalogs.items()) == {"SKU-1", "SKU-2", "SKU-3", "SKU-4"}


def test_rows_iterable_would_refuse_are_rejected_before_sending_with_their_codes(
    pg, sandbox, catalogs, workspace_factory
):
    create_products(pg, 6)
    pg.execute("UPDATE products SET sku = 'has space' WHERE id = 1")
    pg.execute("UPDATE products SET sku = repeat('x', 256) WHERE id = 2")
    pg.execute("UPDATE products SET sku = NULL WHERE id = 3")
    pg.execute("UPDATE products SET note = repeat('n', 31000) WHERE id = 4")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=[{"from": "name", "to": "name"}, {"from": "note", "to": "note"}],
        sync=catalog_sync(item_id="sku"),
    )
    run = service.run(ws, "customers_to_users")
    assert run.status == "warning"
    assert (run.counts["rejected"], run.counts["synced"]) == (4, 2)
    assert run.delivery["rows_sent"] == 2  # the rejected rows never left
    rejected = {r.pk: r for r in service.run_rows(ws, run.run_id, status="rejected")}
    assert {pk: r.code for pk, r in rejected.items()} == {
        "1": "invalid_item_id",
        "2": "invalid_item_id",
        "3": "no_identifier",
        "4": "too_large",
    }
    assert "'has space'" in (rejected["1"].reason or "")
    assert "30 KiB" in (rejected["4"].reason or "")
    assert set(catalogs.items()) == {"SKU-5", "SKU-6"}

    pg.execute("UPDATE products SET sku = 'SKU-' || id, note = NULL WHERE id <= 4")
    fixed = service.run(ws, "customers_to_users")
    assert fixed.status == "succeeded", fixed.error
    assert (fixed.counts["added"], fixed.counts["synced"]) == (4, 4)
    assert len(catalogs.items()) == 6


def test_field_types_are_set_before_the_first_write(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 3)
    pg.execute("ALTER TABLE products ADD COLUMN store jsonb")
    pg.execute("""UPDATE products SET store = jsonb_build_object('lat', 48.85, 'lon', 2.35)""")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=[{"from": "stock", "to": "stock"}, {"from": "store", "to": "store"}],
        sync=catalog_sync(field_types={"stock": "double", "store": "geo_location"}),
    )
    run = service.run(ws, "customers_to_users")
    assert run.status == "succeeded", run.error
    types = catalogs.field_types()
    # Without field_types, the first values would have made them long and object.
    assert (types["stock"], types["store"]) == ("double", "geo_location")
    assert catalogs.items()["1"] == {"stock": 1, "store": {"lat": 48.85, "lon": 2.35}}


def test_field_types_already_in_the_catalog_refuse_misfit_rows_before_sending(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 4)
    catalogs.http.post("/api/catalogs/products").raise_for_status()
    catalogs.http.put(
        "/api/catalogs/products/fieldMappings", json={"mappingsUpdates": [{"fieldName": "price", "fieldType": "long"}]}
    ).raise_for_status()
    pg.execute("UPDATE products SET price = NULL WHERE id = 4")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=[{"from": "name", "to": "name"}, {"from": "price", "to": "price"}],
        sync=catalog_sync(field_types={"price": "double"}),
    )
    run = service.run(ws, "customers_to_users")
    assert run.status == "warning"
    assert any("already of type long, not double" in w for w in run.warnings)
    assert any(
        w.startswith("field type conflict: field 'price' of catalog 'products' is of type long") for w in run.warnings
    )
    # The rows with a price are refused unsent; the one without (null clears nothing) goes.
    assert (run.counts["rejected"], run.counts["synced"], run.delivery["rows_sent"]) == (3, 1, 1)
    assert {r.code for r in service.run_rows(ws, run.run_id, status="rejected")} == {"type_mismatch"}
    assert catalogs.items() == {"4": {"name": "Product 4", "price": None}}


def _date_field_note(pg, catalogs) -> None:
    create_products(pg, 8)
    catalogs.http.post("/api/catalogs/products").raise_for_status()
    catalogs.http.put(
        "/api/catalogs/products/fieldMappings", json={"mappingsUpdates": [{"fieldName": "note", "fieldType": "date"}]}
    ).raise_for_status()


def test_text_into_a_date_field_is_refused_before_sending_where_it_is_no_date(pg, sandbox, catalogs, workspace_factory):
    _date_field_note(pg, catalogs)
    pg.execute("UPDATE products SET note = '2024-05-01'")
    pg.execute("UPDATE products SET note = 'someday' WHERE id IN (3, 6)")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=[{"from": "note", "to": "note"}],
        sync=catalog_sync(),
    )
    run = service.run(ws, "customers_to_users")
    assert (run.counts["rejected"], run.counts["synced"], run.delivery["splits"]) == (2, 6, 0)
    rejected = service.run_rows(ws, run.run_id, status="rejected")
    assert sorted(r.pk for r in rejected) == ["3", "6"]
    assert {r.code for r in rejected} == {"type_mismatch"}
    assert all("only text that is a date fits" in (r.reason or "") for r in rejected)
    assert set(catalogs.items()) == {"1", "2", "4", "5", "7", "8"}


def test_values_only_iterable_can_judge_are_refused_by_it_and_isolated(pg, sandbox, catalogs, workspace_factory):
    _date_field_note(pg, catalogs)
    # A JSON column's values are typed by each value: Iterable decides, row by row.
    note = """case when id in (3, 6) then '{"x": 1}'::jsonb else '"2024-05-01"'::jsonb end as note"""
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, {note} from {pg.schema}.products",
        mappings=[{"from": "note", "to": "note"}],
        sync=catalog_sync(),
    )
    run = service.run(ws, "customers_to_users")
    assert (run.counts["rejected"], run.counts["synced"]) == (2, 6)
    assert run.delivery["splits"] > 0
    rejected = service.run_rows(ws, run.run_id, status="rejected")
    assert sorted(r.pk for r in rejected) == ["3", "6"]
    assert {r.code for r in rejected} == {"type_mismatch"}
    assert all("RequestFieldsTypesMismatched" in (r.reason or "") for r in rejected)
    assert set(catalogs.items()) == {"1", "2", "4", "5", "7", "8"}


def test_plan_shows_a_sample_bulk_write_and_sends_nothing(pg, sandbox, catalogs, workspace_factory):
    create_products(pg, 10)
    ws = workspace_factory(
        sandbox.url,
        sql=f"select * from {pg.schema}.products",
        mappings=MAPPINGS,
        sync=catalog_sync(),
    )
    result = service.plan(ws, "customers_to_users", samples=2)
    assert result.counts.added == 10
    assert result.request == "POST /api/catalogs/products/items"
    body = result.sample_requests[0]
    assert body["replaceUploadedFieldsOnly"] is True
    documents = body["documents"]
    assert len(documents) == 2
    item = next(iter(documents.values()))
    assert set(item) == {"name", "price", "inventory", "tags", "updatedAt", "brand"}
    assert "catalog 'products' does not exist yet: the run creates it" in result.warnings
    assert not catalogs.exists("products")


def test_config_errors_name_the_key(pg, sandbox, workspace_factory):
    create_products(pg, 2)
    sql = f"select * from {pg.schema}.products"
    ws = workspace_factory(
        sandbox.url,
        sql=sql,
        mappings=[{"from": "name", "to": "name"}],
        sync=catalog_sync(item_id="price"),
    )
    run = service.run(ws, "customers_to_users")
    assert run.status == "failed"
    assert "syncs.customers_to_users.item_id: column 'price' is decimal128(10, 2)" in (run.error or "")

    ws = workspace_factory(
        sandbox.url,
        sql=sql,
        mappings=[{"from": "price", "to": "price"}],
        sync=catalog_sync(field_types={"price": "long"}),
    )
    run = service.run(ws, "customers_to_users")
    assert run.status == "failed"
    assert "syncs.customers_to_users.field_types: field 'price' is declared long" in (run.error or "")


def test_a_catalog_that_cannot_be_read_or_created_fails_the_run_and_keeps_every_row(
    pg, sandbox, admin, catalogs, workspace_factory
):
    create_products(pg, 5)
    ws = workspace_factory(
        sandbox.url, sql=f"select * from {pg.schema}.products", mappings=MAPPINGS, sync=catalog_sync()
    )
    admin.faults(endpoint="POST /api/catalogs/{catalogName}", error_rate=1.0)
    failed = service.run(ws, "customers_to_users")
    assert failed.status == "failed"
    assert "catalog 'products'" in (failed.error or "")
    assert (failed.counts["retried_next_run"], failed.counts["rejected"]) == (5, 0)
    assert admin.requests("POST /api/catalogs/{catalogName}/items") == 0

    admin.faults()
    again = service.run(ws, "customers_to_users")
    assert again.status == "succeeded", again.error
    assert (again.counts["added"], again.counts["synced"]) == (5, 5)
    assert len(catalogs.items()) == 5
