"""The shared type normalisation and re-batching, on hand-built Arrow data (no database)."""

from __future__ import annotations

import uuid

import pyarrow as pa

from smartingest.columns import JSON_TEXT
from smartingest.sources._common import Normaliser, rebatch, uuid_to_string


def test_uuid_to_string_handles_slices_and_nulls() -> None:
    values = [uuid.uuid4() for _ in range(5)]
    storage = pa.array([v.bytes if i != 2 else None for i, v in enumerate(values)], pa.binary(16))
    arr = pa.ExtensionArray.from_storage(pa.uuid(), storage)
    assert uuid_to_string(arr).to_pylist() == [str(v) if i != 2 else None for i, v in enumerate(values)]
    assert uuid_to_string(arr.slice(1, 3)).to_pylist() == [str(values[1]), None, str(values[3])]
    assert uuid_to_string(arr.slice(0, 0)).to_pylist() == []


def test_normaliser_gives_plain_types_and_keeps_only_the_json_marker() -> None:
    json_col = pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": 1}', None]))
    enum_col = pa.array(["ok", "sad"]).dictionary_encode()
    opaque = pa.opaque(pa.binary(), "inet", "PostgreSQL")
    opaque_col = pa.ExtensionArray.from_storage(opaque, pa.array([b"\x01", None]))
    nested = pa.array([[1, 2], None], pa.list_(pa.field("item", pa.int32(), metadata={"k": "v"})))
    list_of_json = pa.ListArray.from_arrays(
        pa.array([0, 1, 1], pa.int32()), pa.ExtensionArray.from_storage(pa.json_(), pa.array(["[1]"]))
    )
    schema = pa.schema(
        [
            pa.field("j", json_col.type, metadata={"POSTGRESQL:type": "jsonb"}),
            pa.field("e", enum_col.type),
            pa.field("o", opaque),
            pa.field("n", nested.type),
            pa.field("lj", list_of_json.type),
        ],
        metadata={"x": "y"},
    )
    batch = pa.RecordBatch.from_arrays([json_col, enum_col, opaque_col, nested, list_of_json], schema=schema)
    normalise = Normaliser(schema)
    assert normalise.schema.types == [
        pa.string(),
        pa.string(),
        pa.binary(),
        pa.list_(pa.int32()),
        pa.list_(pa.string()),
    ]
    out = normalise(batch)
    assert out.schema == normalise.schema
    assert out.schema.metadata is None
    assert [f.metadata for f in out.schema] == [JSON_TEXT, None, None, None, None]
    assert out.schema.field("n").type.value_field.metadata is None
    assert out.to_pylist() == [
        {"j": '{"a": 1}', "e": "ok", "o": b"\x01", "n": [1, 2], "lj": ["[1]"]},
        {"j": None, "e": "sad", "o": None, "n": None, "lj": []},
    ]
    # Sliced input (what rebatch produces) converts the same way.
    assert normalise(batch.slice(1, 1)).to_pylist() == out.slice(1, 1).to_pylist()


def test_maps_are_normalised_through_their_keys_and_items_also_when_sliced() -> None:
    items = pa.array(["a", "b", "c"]).dictionary_encode()
    raw = pa.MapArray.from_arrays(
        pa.array([0, 1, 1, 3], pa.int32()), pa.array(["x", "y", "z"]), items, mask=pa.array([False, True, False])
    )
    normalise = Normaliser(pa.schema([pa.field("m", raw.type)]))
    assert normalise.schema.field("m").type == pa.map_(pa.string(), pa.string())
    out = normalise(pa.record_batch([raw.slice(1)], names=["m"])).column(0)
    assert out.type == pa.map_(pa.string(), pa.string())
    assert out.to_pylist() == [None, [("y", "b"), ("z", "c")]]


def test_rebatch_slices_and_skips_empty_batches() -> None:
    batch = pa.record_batch({"id": list(range(10))})
    sizes = [b.num_rows for b in rebatch([batch, batch.slice(0, 0), batch.slice(0, 3)], 4)]
    assert sizes == [4, 4, 2, 3]
