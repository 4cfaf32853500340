"""Events: each row becomes a custom event of a user, tracked through ``POST /api/events/trackBulk``.

Keys (``config.syncs.EventsSync``): ``event_name`` (one name for every row) or ``event_name_column``;
``created_at`` (a timestamp, date or unix-time column; null or absent: when Iterable receives the
event); ``event_id`` (a column of ids; absent: an id derived from the sync's key path and the row's
primary key); ``match_on`` and the identifier mapping, as for users; ``mappings`` fill the event's
``dataFields``; ``batch_size``.

What CDC found decides what is sent:

- an added row is tracked as a new event;
- a changed row is tracked again with the same id: Iterable replaces the event (ids make every
  resend idempotent, so a crash between sending and committing never duplicates an event);
- a removed row does nothing (Iterable keeps events; there is no endpoint to delete one): synced
  without a request.

Rows of one user are many events, not one profile: sharing an identifier is normal here, so CDC does
not hold such rows back (``matching`` is None). Rows refused before sending: no identifier, no event
name, no event id (from an id column), a createdAt or a dataFields value Iterable cannot take.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.config.models import EventsSync, SyncBase
from smartingest.errors import ConfigError, MappingError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.events import EventsWriter
from smartingest.iterable.outcomes import SYNCED, Rejected
from smartingest.iterable.writer import Record, Writer
from smartingest.mapping.encode import JSON_NULL, json_string
from smartingest.mapping.event_values import (
    check_created_at_type,
    check_text_type,
    created_at,
    derived_ids,
    event_ids,
    event_names,
)
from smartingest.mapping.kinds import RunInfo
from smartingest.mapping.plan import MappedBatch, UserRecordPlan, assemble, json_join
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided, Matching
from smartingest.synctypes.common import compile_identified, record_columns

# Bumped when the way an event's own keys are built changes, so every row is sent again once.
EVENTS_ENCODING_VERSION = 1


@dataclass
class EventsPlan:
    """An events sync compiled for one run (a ``TypePlan``).

    ``id_namespace`` is what derived event ids hash beside the primary key: the sync's key path in
    its project (``syncs.NAME``), so two syncs never share an id and a sync's ids never change.
    """

    sync: EventsSync
    records: UserRecordPlan
    id_namespace: str
    endpoint_name: str = "POST /api/events/trackBulk"

    @property
    def own_columns(self) -> list[str]:
        """The columns of the event's own keys: event name, time and id, those the sync reads from columns."""
        sync = self.sync
        return [c for c in (sync.event_name_column, sync.created_at, sync.event_id) if c is not None]

    @property
    def source_columns(self) -> list[str]:
        return sorted({*self.records.source_columns, *self.own_columns})

    @property
    def fingerprint(self) -> str:
        sync = self.sync
        doc = {
            "v": EVENTS_ENCODING_VERSION,
            "mapping": self.records.fingerprint,
            "event_name": sync.event_name,
            "event_name_column": sync.event_name_column,
            "created_at": sync.created_at,
            "event_id": sync.event_id,
            "ids": self.id_namespace if sync.event_id is None else None,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def matching(self) -> Matching | None:
        # Many events of one user are many rows with one identifier: nothing to hold back.
        return None

    def map_changes(self, batch: pa.RecordBatch) -> tuple[list[Record], list[Decided]]:
        """Removed rows need no request (events stay in Iterable); the others become events."""
        is_removed = pc.equal(batch.column(OP_COLUMN), "removed")
        removed = batch.filter(is_removed).column(PK_COLUMN).to_pylist()
        decided: list[Decided] = [(pk, "removed", SYNCED) for pk in removed]
        tracked = batch.filter(pc.invert(is_removed)) if removed else batch
        if tracked.num_rows == 0:
            return [], decided
        mapped = self.map_events(tracked)
        decided.extend((pk, op, Rejected(reason, code)) for pk, op, reason, code in mapped.rejected)
        return list(record_columns(mapped)), decided

    def map_events(self, batch: pa.RecordBatch) -> MappedBatch:
        """One ``TrackRequest`` per row, built column-wise; rows refused before sending, with their reasons."""
        sync = self.sync
        mapped = self.records.map_columns(batch)
        problems = mapped.problems
        identifier = sync.identifier_field
        pieces: list[pa.Array | str] = [
            "{" + orjson.dumps(identifier).decode() + ":",
            pc.fill_null(json_string(mapped.identity[identifier]), JSON_NULL),
            ',"eventName":',
        ]
        if sync.event_name_column is not None:
            where = f"eventName (column {sync.event_name_column!r})"
            pieces.append(pc.fill_null(event_names(batch.column(sync.event_name_column), where, problems), '""'))
        else:
            pieces.append(orjson.dumps(sync.event_name).decode())
        if sync.event_id is not None:
            ids = event_ids(batch.column(sync.event_id), f"id (column {sync.event_id!r})", problems)
        else:
            ids = derived_ids(batch.column(PK_COLUMN), self.id_namespace)
        pieces += [',"id":', pc.fill_null(ids, '""')]
        if sync.created_at is not None:
            times = created_at(batch.column(sync.created_at), f"createdAt (column {sync.created_at!r})", problems)
            # Left out where null: Iterable then takes the time it receives the event.
            pieces.append(pc.fill_null(pc.binary_join_element_wise(',"createdAt":', times, ""), ""))
        if mapped.fields is not None:
            pieces += [',"dataFields":', mapped.fields]
        pieces.append("}")
        return assemble(batch, PK_COLUMN, OP_COLUMN, json_join(pieces, mapped.rows), mapped)

    def sample_body(self, records: Sequence[Record]) -> bytes:
        return b'{"events":[' + b",".join(r.body for r in records) + b"]}"

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        """Nothing to read: Iterable types event fields per event name and lists them nowhere in its API."""
        return []

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        """Nothing to create: an event name exists once an event of it is tracked."""
        return []

    def writer(self, client: IterableClient) -> Writer:
        return EventsWriter(client, self.sync.batch_size)


class Events:
    """The events sync type."""

    name = "events"

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> EventsPlan:
        """Compile an events sync; ``where`` (``syncs.NAME``) also names the sync in derived event ids.

        Raises MappingError naming the key at fault: a column the model lacks, or of a type its key
        cannot take (createdAt: timestamp, date or integer; name and id: text or integer).
        """
        if not isinstance(sync, EventsSync):
            raise ConfigError(f"{where}: not an events sync")
        records = compile_identified(sync, schema, where, run=run)
        other = "userId" if sync.identifier_field == "email" else "email"
        if any(m.to == other for m in sync.mappings):
            raise MappingError(
                f"{where}.mappings: an event names its user by one identifier ({sync.identifier_field}, by match_on); "
                f"map the column to another field than {other!r} to keep it in the event's dataFields"
            )
        for key, column in (
            ("event_name_column", sync.event_name_column),
            ("created_at", sync.created_at),
            ("event_id", sync.event_id),
        ):
            if column is None:
                continue
            at = f"{where}.{key}"
            if column not in schema.names:
                raise MappingError(f"{at}: the model has no column {column!r} (columns: {', '.join(schema.names)})")
            dtype = schema.field(column).type
            if key == "created_at":
                check_created_at_type(at, column, dtype)
            else:
                check_text_type(at, column, dtype, "an event name" if key == "event_name_column" else "an event id")
        return EventsPlan(sync, records, where)


SYNC_TYPE = Events()
