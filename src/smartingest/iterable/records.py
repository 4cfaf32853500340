"""Records of one batch as columns, so the common path sends them without a Python step per row.

A record is one row's request item: its key, its operation, its user's identity where it names one, and
its JSON body. ``RecordColumns`` keeps a batch's records as Arrow arrays: ``BulkWriter`` groups them into
requests and builds each body from the arrays, and an answer that synced every record settles them as
columns (``writer.SameVerdict``). It is also a plain sequence of ``MappedRecord`` for code that goes row
by row (failure read-back, splitting, per-row endpoints), built once, when first asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property, partial
from typing import NamedTuple, overload

import pyarrow as pa
import pyarrow.compute as pc


class MappedRecord(NamedTuple):
    """One row as a request item: its key, operation, identity fields and JSON body.

    A tuple, not a dataclass: a batch makes one per row, and ``_records`` makes them without a Python
    call each."""

    pk: str
    operation: str
    email: str | None
    user_id: str | None
    body: bytes


_records = partial(tuple.__new__, MappedRecord)  # MappedRecords from (pk, operation, email, user_id, body) tuples


class RecordColumns(Sequence[MappedRecord]):
    """A batch's records as equal-length Arrow arrays (see the module docstring); slicing is zero-copy."""

    def __init__(
        self,
        pks: pa.Array,
        ops: pa.Array,
        bodies: pa.Array,
        emails: pa.Array | None = None,
        user_ids: pa.Array | None = None,
    ) -> None:
        self.pks = pks.cast(pa.string())
        self.ops = ops.cast(pa.string())
        self.bodies = bodies.cast(pa.binary())
        self.emails = emails
        self.user_ids = user_ids

    def __len__(self) -> int:
        return len(self.pks)

    @overload
    def __getitem__(self, index: int) -> MappedRecord: ...
    @overload
    def __getitem__(self, index: slice) -> RecordColumns: ...
    def __getitem__(self, index: int | slice) -> MappedRecord | RecordColumns:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return RecordColumns(*(_take(a, range(start, stop, step)) for a in self._arrays()))
            return RecordColumns(*(None if a is None else a.slice(start, stop - start) for a in self._arrays()))
        return self.rows[index]

    def __iter__(self) -> Iterator[MappedRecord]:
        return iter(self.rows)

    @cached_property
    def rows(self) -> list[MappedRecord]:
        """The records one by one."""
        n = len(self)
        pks, ops, bodies = self.pks.to_pylist(), self.ops.to_pylist(), self.bodies.to_pylist()
        emails = self.emails.to_pylist() if self.emails is not None else [None] * n
        user_ids = self.user_ids.to_pylist() if self.user_ids is not None else [None] * n
        return list(map(_records, zip(pks, ops, emails, user_ids, bodies, strict=True)))

    @cached_property
    def sizes(self) -> list[int]:
        """Each body's length in bytes."""
        return pc.binary_length(self.bodies).to_pylist()

    @cached_property
    def joined(self) -> bytes:
        """The bodies joined by commas (a request's items), in one step; kept once built."""
        if len(self) == 0:
            return b""
        one_list = pa.ListArray.from_arrays(pa.array([0, len(self)], pa.int32()), self.bodies)
        return bytes(pc.binary_join(one_list, pa.scalar(b",", pa.binary()))[0].as_py())

    def _arrays(self) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array | None, pa.Array | None]:
        return (self.pks, self.ops, self.bodies, self.emails, self.user_ids)


def _take(array: pa.Array | None, positions: range) -> pa.Array | None:
    return None if array is None else array.take(pa.array(positions, pa.int64()))
