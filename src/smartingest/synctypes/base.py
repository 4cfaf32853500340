"""The sync-type seam: what the engine needs of a sync type, as small Protocols.

A sync type joins mapping and iterable for one kind of data (users, events, catalog items, list
members...). The engine knows none of them by name: it compiles the sync's type against the model's
schema into a ``TypePlan`` and asks the plan what the row hash covers, how changed rows become
requests (and which need none), what to check or create in Iterable before sending, and which writer
sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pyarrow as pa

from smartingest.config.models import SyncBase
from smartingest.iterable.client import IterableClient
from smartingest.iterable.outcomes import Verdict
from smartingest.iterable.writer import Record, Writer
from smartingest.mapping.kinds import RunInfo

# Columns of the change batches besides the model's: the row's key as text, what CDC found, and the
# identifier as Iterable compares it (a removed row still has the one committed with it).
PK_COLUMN = "__pk"
OP_COLUMN = "__op"
IDENT_COLUMN = "__ident"
# True for a changed row whose values are as before, so only the fields mappings added need sending.
SAME_BEFORE_COLUMN = "__same_before"

# (primary key, operation, verdict): a row decided without a request (removed with nothing to do,
# refused before sending).
Decided = tuple[str, str, Verdict]


@dataclass(frozen=True)
class Matching:
    """The column that identifies a row's user in Iterable, compared as Iterable compares it: CDC holds
    back every row of an identifier several rows share (they would overwrite each other)."""

    column: str
    field: str  # email or userId, for messages
    ignore_case: bool
    trim: bool


class TypePlan(Protocol):
    """One sync type compiled against a model's schema for one run."""

    @property
    def source_columns(self) -> list[str]:
        """The model columns the requests are built from, sorted: exactly what the row hash covers."""
        ...

    @property
    def fingerprint(self) -> str:
        """Digest of everything that shapes a request besides the row's values: a change resends every row."""
        ...

    @property
    def matching(self) -> Matching | None:
        """The identifier the destination matches rows on, or None when rows are not users."""
        ...

    @property
    def endpoint_name(self) -> str:
        """The request the plan's sample bodies stand for ("POST /api/users/bulkUpdate"), for plans."""
        ...

    def map_changes(self, batch: pa.RecordBatch) -> tuple[Sequence[Record], list[Decided]]:
        """Turn a batch of changes (the model's columns plus PK_COLUMN and OP_COLUMN) into records to send
        and the rows decided without a request. Never raises for a bad value: such a row is rejected."""
        ...

    def sample_body(self, records: Sequence[Record]) -> bytes:
        """One request body carrying these records, as the writer would send it (for plans)."""
        ...

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        """Read what Iterable holds that changes what is sent (field types...), refining the plan; returns
        warnings. Changes nothing in Iterable: plans call it too. Raises DestinationAuthError."""
        ...

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        """Before a run sends: create what the sync needs (a catalog, a list), then inspect. Returns warnings."""
        ...

    def writer(self, client: IterableClient) -> Writer:
        """The writer that sends this plan's records."""
        ...


@runtime_checkable
class SendsFieldsAlone(Protocol):
    """A plan whose requests may carry some fields alone, because the destination merges them into what
    it holds (users' bulkUpdate, catalog items with ``replaceUploadedFieldsOnly``). When mappings are
    only added, the rows whose values did not change then get only the added fields."""

    def field_parts(self) -> dict[str, str] | None:
        """The fingerprint split into ``""`` (what every request shares) and one digest per group of
        fields the destination replaces as one (``HashSpec.parts``); None when requests go whole."""
        ...

    def send_alone(self, parts: Sequence[str]) -> None:
        """Rows flagged SAME_BEFORE_COLUMN carry only the fields of these parts (and what identifies them)."""
        ...


class SyncType(Protocol):
    """One sync type: compiles a sync of its kind for a run."""

    name: str

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> TypePlan:
        """Check the sync against the model's schema and compile it; raises MappingError or ConfigError
        naming the key at fault (``where`` is the sync's key path; ``run`` what variable mappings send)."""
        ...
