"""Catalog items from change batches (Arrow in, request items out), and the catalog sync's config checks."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from smartingest.config import parse_project
from smartingest.config.models import CatalogSync
from smartingest.errors import ConfigError, MappingError
from smartingest.iterable.catalogs import field_definitions
from smartingest.iterable.outcomes import SYNCED, Rejected
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN
from smartingest.synctypes.catalog import SYNC_TYPE, CatalogPlan


def _plan(schema: pa.Schema, **keys: Any) -> CatalogPlan:
    sync = CatalogSync.model_validate({"model": "m", "destination": "d", "type": "catalog", "catalog": "shop", **keys})
    return SYNC_TYPE.compile(sync, schema, "syncs.x")


def _batch(ops: list[str], **columns: list[Any]) -> pa.RecordBatch:
    pks = [str(v) for v in columns["id"]]
    return pa.record_batch({**columns, PK_COLUMN: pks, OP_COLUMN: ops})


def test_documents_carry_the_mapped_fields_keyed_by_item_id():
    batch = _batch(
        ["added", "changed"],
        id=[1, 2],
        sku=["A-1", "B-2"],
        contact=["ann@example.com", None],
        city=["Paris", "Lyon"],
        qty=pa.array([3, None], pa.int32()),
    )
    plan = _plan(
        batch.schema,
        item_id="sku",
        mappings=[
            {"from": "contact", "to": "email"},
            {"from": "city", "to": "store.city"},
            {"from": "qty", "to": "qty"},
            {"static": True, "to": "active"},
        ],
    )
    records, decided = plan.map_changes(batch)
    assert decided == []
    body = orjson.loads(plan.sample_body(records))
    # email is an ordinary field of an item (sent as text), beside the others.
    assert body == {
        "documents": {
            "A-1": {"email": "ann@example.com", "store": {"city": "Paris"}, "qty": 3, "active": True},
            "B-2": {"email": None, "store": {"city": "Lyon"}, "qty": None, "active": True},
        },
        "replaceUploadedFieldsOnly": True,
    }
    assert [(r.pk, r.operation) for r in records] == [("1", "added"), ("2", "changed")]
    assert plan.source_columns == ["city", "contact", "qty", "sku"]
    assert plan.matching is not None and (plan.matching.column, plan.matching.field) == ("sku", "itemId")


def test_ids_default_to_the_primary_key_and_removed_rows_become_deletes():
    batch = _batch(["added", "removed", "removed"], id=[7, 8, 9], name=["x", None, None])
    plan = _plan(batch.schema, mappings=[{"from": "name", "to": "name"}], on_removed="delete", replace=True)
    assert plan.matching is None
    records, decided = plan.map_changes(batch)
    assert decided == []
    assert sorted((r.pk, r.operation, r.body) for r in records) == [
        ("7", "added", b'"7":{"name":"x"}'),
        ("8", "removed", b'"8"'),
        ("9", "removed", b'"9"'),
    ]
    keep = _plan(batch.schema, mappings=[{"from": "name", "to": "name"}])
    records, decided = keep.map_changes(batch)
    assert [r.pk for r in records] == ["7"]
    assert decided == [("8", "removed", SYNCED), ("9", "removed", SYNCED)]


def test_bad_ids_and_oversized_items_are_decided_without_a_request():
    big = "b" * (30 * 1024)
    batch = _batch(["added"] * 4, id=[1, 2, 3, 4], sku=["ok-1", "no/slash", None, "ok-4"], text=["a", "b", "c", big])
    plan = _plan(batch.schema, item_id="sku", mappings=[{"from": "text", "to": "text"}])
    records, decided = plan.map_changes(batch)
    assert [r.pk for r in records] == ["1"]
    codes = {pk: (v.code if isinstance(v, Rejected) else None) for pk, _, v in decided}
    assert codes == {"2": "invalid_item_id", "3": "no_identifier", "4": "too_large"}


def test_fingerprint_follows_what_shapes_the_request():
    schema = pa.schema({"id": pa.int64(), "name": pa.string(), "sku": pa.string()})
    base = {"mappings": [{"from": "name", "to": "name"}]}
    prints = {
        _plan(schema, **base).fingerprint,
        _plan(schema, **base, replace=True).fingerprint,
        _plan(schema, **base, item_id="sku").fingerprint,
        _plan(schema, **{**base, "catalog": "other"}).fingerprint,
    }
    assert len(prints) == 4
    # Catalog names are case-insensitive; on_removed does not change a request.
    assert _plan(schema, **{**base, "catalog": "SHOP"}).fingerprint == _plan(schema, **base).fingerprint
    assert _plan(schema, **base, on_removed="delete").fingerprint == _plan(schema, **base).fingerprint


def test_compile_errors_name_the_key():
    schema = pa.schema({"id": pa.int64(), "email": pa.string(), "price": pa.float64(), "n": pa.int64()})
    with pytest.raises(MappingError, match=r"syncs\.x\.item_id: the model has no column 'sku'"):
        _plan(schema, item_id="sku", mappings=[{"from": "n", "to": "n"}])
    with pytest.raises(MappingError, match=r"syncs\.x\.item_id: column 'price' is double"):
        _plan(schema, item_id="price", mappings=[{"from": "n", "to": "n"}])
    with pytest.raises(MappingError, match=r"syncs\.x\.mappings: 'email' is mapped as a value and also"):
        _plan(schema, mappings=[{"from": "email", "to": "email"}, {"from": "n", "to": "email.n"}])
    with pytest.raises(MappingError, match=r"syncs\.x\.field_types: field 'price' is declared long"):
        _plan(schema, mappings=[{"from": "price", "to": "price"}], field_types={"price": "long"})
    # A long fits a double field, an object holds nested fields.
    _plan(schema, mappings=[{"from": "n", "to": "a.n"}], field_types={"a": "object", "a.n": "double"})


def test_field_types_become_nested_definitions():
    assert field_definitions({"price": "double", "store.geo": "geo_location", "store.city": "string"}) == [
        {"fieldName": "price", "fieldType": "double"},
        {
            "fieldName": "store",
            "fieldType": "object",
            "children": [
                {"fieldName": "city", "fieldType": "string"},
                {"fieldName": "geo", "fieldType": "geo_location"},
            ],
        },
    ]


PROJECT = """
sources:
  s: {type: sqlite, path: x.db}
models:
  m: {source: s, table: products, primary_key: %(key)s}
destinations:
  d: {api_key: k}
syncs:
  x:
    model: m
    destination: d
    type: catalog
    mappings: [{from: name, to: name}]
"""


def _project(extra: str, key: str = "id") -> Any:
    return parse_project(PROJECT % {"key": key} + extra, env={})


def test_config_checks_name_the_key():
    assert _project("    catalog: Shop-2\n").syncs["x"].catalog == "Shop-2"
    with pytest.raises(ConfigError, match=r"syncs\.x\.catalog: 'my shop' is not a catalog name"):
        _project("    catalog: my shop\n")
    with pytest.raises(ConfigError, match=r"syncs\.x\.catalog: '.*' is not a catalog name"):
        _project(f"    catalog: {'c' * 256}\n")
    with pytest.raises(ConfigError, match=r"syncs\.x\.item_id: the model's primary key has several columns"):
        _project("    catalog: shop\n", key="[store, sku]")
    _project("    catalog: shop\n    item_id: sku\n", key="[store, sku]")
    with pytest.raises(ConfigError, match=r"syncs\.x\.on_removed: delete needs the item ids to be the model's"):
        _project("    catalog: shop\n    item_id: sku\n    on_removed: delete\n")
    _project("    catalog: shop\n    item_id: sku\n    on_removed: delete\n", key="sku")
    with pytest.raises(ConfigError, match=r"syncs\.x\.field_types\.a\.b: 'a\.b' makes 'a' an object"):
        _project("    catalog: shop\n    field_types: {a: long, a.b: string}\n")
    with pytest.raises(ConfigError, match=r"syncs\.x\.field_types\.a: Input should be 'string', 'long'"):
        _project("    catalog: shop\n    field_types: {a: int}\n")
    with pytest.raises(ConfigError, match=r"syncs\.x\.match_on: unknown key"):
        _project("    catalog: shop\n    match_on: email\n")
