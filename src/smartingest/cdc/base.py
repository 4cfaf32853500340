"""The change-detection seam: a detector plans a change set against a sync's snapshot and commits
what Iterable acknowledged.

Two engines sit behind it: Basic (snapshot in our own state store, diff in DuckDB) and Lightning
(snapshot in a schema inside the warehouse, diff as SQL there). The interface takes a model and
hands back changed rows as Arrow batches; it never assumes every row passes through Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

import pyarrow as pa

from smartingest.codes import ReasonCode
from smartingest.config.models import ModelConfig
from smartingest.sources.base import Source

Operation = Literal["added", "changed", "removed"]

# Columns the change batches carry besides the model's own.
PK = "__pk"
OP = "__op"
HASH = "__hash"
IDENT = "__ident"
# True for a changed row whose columns are as the snapshot holds them under the mappings it was written
# with: only the mappings added since change what it would send (see HashSpec.parts).
SAME_BEFORE = "__same_before"

T = TypeVar("T")
# Values of one column: a Python sequence or an Arrow array (what a batch's settling has at hand).
Column: TypeAlias = Sequence[T] | pa.Array | pa.ChunkedArray


def as_arrow(values: Column[Any], type_: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """A column's values as Arrow (as they are when they already are)."""
    return values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, type_)


@dataclass(frozen=True)
class ChangeCounts:
    """What CDC found. queried = invalid + unchanged + added + changed."""

    queried: int
    invalid: int
    unchanged: int
    added: int
    changed: int
    removed: int

    @property
    def to_send(self) -> int:
        return self.added + self.changed + self.removed


@dataclass(frozen=True)
class InvalidRow:
    """A row CDC refused: null or duplicated primary key, or an identifier another row has too (pk is
    None for a null key)."""

    pk: str | None
    reason: str
    code: ReasonCode


@dataclass(frozen=True)
class Identity:
    """The column that identifies a row in the destination, compared as the destination compares it.

    Two valid rows whose identifiers compare equal would overwrite each other there, so both are
    invalid (as with a duplicated primary key).
    """

    column: str
    field: str  # the destination's name for it (email, userId), for messages
    ignore_case: bool = False
    trim: bool = False


@dataclass(frozen=True)
class HashSpec:
    """What CDC needs of a sync: the key, what a row hash covers (the model columns a mapping reads and
    the mapping's fingerprint), the identifier, and the baseline the snapshot belongs to.

    ``baseline`` digests what makes a snapshot valid at all (the destination project, the sync type,
    the identifier): a snapshot of another baseline is ignored, so every row is sent as new.

    ``parts`` splits the fingerprint into named digests, one per piece of a request the destination
    replaces on its own (a field), plus ``""`` for what every request shares; empty when requests are
    only ever sent whole. When the snapshot's parts are a strict subset of these, the rows whose
    columns are unchanged under the snapshot's own mappings need only the added parts.
    """

    primary_key: str | tuple[str, ...]
    columns: tuple[str, ...]
    fingerprint: str
    identity: Identity | None = None
    baseline: str = ""
    parts: tuple[tuple[str, str], ...] = ()

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (self.primary_key,) if isinstance(self.primary_key, str) else tuple(self.primary_key)


class ChangeSet(Protocol):
    """The result of planning; holds its staging resources until closed."""

    counts: ChangeCounts
    new_baseline: str | None
    """Why the snapshot was not used (another destination, sync type or identifier), or None."""
    remapped: str | None
    """Why every row is sent again although the snapshot serves: the mappings changed since it was written."""
    added_parts: tuple[str, ...]
    """When the mappings only added parts (HashSpec.parts) since the snapshot was written: those parts.
    Changed rows then carry SAME_BEFORE, true where only those parts need sending."""
    same_before: int
    """How many changed rows are flagged SAME_BEFORE."""
    rows_read: int
    """How many rows planning read out of the source (every row for Basic; for Lightning, what its queries
    returned: the changed rows, the removed keys, the invalid rows' keys)."""

    def invalid_rows(self) -> Iterator[InvalidRow]:
        """Every invalid row with its reason."""
        ...

    def changes(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Added, changed and removed rows: the model's columns plus __pk (text), __op, __hash, __ident
        (the identifier as the destination compares it: lower-cased emails) and __same_before (see
        ``added_parts``; null when not compared).

        Removed rows carry only __pk, __op and the __ident committed with them (their model columns are
        null), so a sync type can still name the user a removed row belonged to.
        """
        ...

    def sample(self, limit: int) -> pa.Table:
        """Up to ``limit`` added or changed rows, shaped like ``changes`` (for plans)."""
        ...

    def settle(self, pks: Column[str], ops: Column[str], commit: Column[bool]) -> None:
        """Record that these rows got their verdict; rows with commit=True enter the snapshot on commit."""
        ...

    def unsettled(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Changed rows that have no verdict yet (after a run stopped early), as __pk and __op."""
        ...

    def checkpoint(self) -> int:
        """During a run: make the changes settled with commit=True since the last checkpoint part of the
        committed snapshot, at a cost that grows with those changes only (not with the snapshot). A crash
        after it returns resends none of them. Returns how many it made durable."""
        ...

    def commit(self) -> None:
        """End of a run: make the new snapshot durable: old state, plus every settled change marked commit
        (those of its checkpoints included).

        Other rows keep their old state, so the next run sends them again. Atomic: a crash leaves
        the previous snapshot (and the checkpoints after it) whole.
        """
        ...

    def close(self) -> None:
        """Drop staging state (also after a failed run)."""
        ...


class ChangeDetector(Protocol):
    """One CDC engine."""

    def plan(
        self,
        sync_key: str,
        source: Source,
        model: ModelConfig,
        spec: HashSpec,
        full_resync: bool = False,
        on_rows: Callable[[int], None] | None = None,
    ) -> ChangeSet:
        """Diff the model's rows against the sync's snapshot; on_rows is told of rows read as they stream.

        full_resync sends every valid row again (removed rows are still found against the snapshot).
        Raises SourceError subclasses from the source, StateError when the snapshot is unreadable.
        """
        ...

    def reset(self, sync_key: str) -> bool:
        """Forget the sync's snapshot (the next run sends every row). Returns whether one existed."""
        ...

    def snapshot_size(self, sync_key: str) -> int:
        """Rows in the committed snapshot (0 when there is none)."""
        ...
