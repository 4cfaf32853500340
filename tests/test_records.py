"""Records as columns: grouped into requests and joined into bodies exactly as records one by one are."""

from __future__ import annotations

import random

import pyarrow as pa

from smartingest.iterable.outcomes import SYNCED
from smartingest.iterable.records import MappedRecord, RecordColumns
from smartingest.iterable.writer import BulkWriter, SameVerdict


def _columns(bodies: list[bytes]) -> RecordColumns:
    n = len(bodies)
    return RecordColumns(
        pa.array([str(i) for i in range(n)]),
        pa.array(["added"] * n),
        pa.array(bodies, pa.binary()),
        pa.array([f"u{i}@x.io" for i in range(n)]),
        None,
    )


def _writer(batch_size: int, max_body: int) -> BulkWriter:
    writer = BulkWriter.__new__(BulkWriter)  # the grouping only needs its limits and framing
    writer.batch_size, writer.max_body = batch_size, max_body
    writer._head, writer._tail = b'{"users":[', b"]}"
    return writer


def test_columns_are_grouped_and_joined_as_rows_are():
    rng = random.Random(7)
    for _ in range(300):
        bodies = [b"x" * rng.randint(0, 30) for _ in range(rng.randint(0, 40))]
        writer = _writer(rng.randint(1, 10), rng.randint(1, 80))
        columns = _columns(bodies)
        as_columns = list(writer.batches(columns))
        as_rows = list(writer.batches(list(columns)))
        assert [[r.pk for r in batch] for batch in as_columns] == [[r.pk for r in batch] for batch in as_rows]
        assert all(isinstance(batch, RecordColumns) for batch in as_columns)
        assert [writer.body(b) for b in as_columns] == [writer.body(b) for b in as_rows]


def test_columns_read_as_records_one_by_one():
    columns = _columns([b'{"email":"u0@x.io"}', b'{"email":"u1@x.io"}', b'{"email":"u2@x.io"}'])
    assert columns[1] == MappedRecord("1", "added", "u1@x.io", None, b'{"email":"u1@x.io"}')
    assert [r.pk for r in columns[1:]] == ["1", "2"]
    assert [r.pk for r in columns[::2]] == ["0", "2"]
    assert columns.joined == b'{"email":"u0@x.io"},{"email":"u1@x.io"},{"email":"u2@x.io"}'
    assert columns[3:].joined == b"" and len(columns[3:]) == 0
    answered = SameVerdict(columns, SYNCED)
    assert list(answered) == [(record, SYNCED) for record in columns]
    assert answered[0] == (columns[0], SYNCED)
    assert [pair[0].pk for pair in answered[1:]] == ["1", "2"]
