"""Static lists: the model's rows are the members of one static list.

Keys (``config.syncs.StaticListSync``): ``list`` (``{name: NAME}``, created by the first run if no
static list has that name, or ``{id: N}``), ``match_on`` and the identifier mapping, ``on_removed``
(``unsubscribe`` or ``nothing``), ``update_existing_users_only``, ``batch_size``; other mappings are
sent as profile fields (``dataFields``) with the subscription.

- added and changed rows are subscribed (``POST /api/lists/subscribe``; subscribing again is
  harmless and carries the changed profile fields);
- removed rows are unsubscribed (``POST /api/lists/unsubscribe``, ``channelUnsubscribe: false``) with
  ``on_removed: unsubscribe``, and synced without a request with ``on_removed: nothing``.

A removed row has nothing left but its key, so **the model's primary key is the identifier**: the
column mapped to email (or userId) must be the key, and it is sent exactly as the key holds it (the
sync refuses ``trim_identifier`` and ``lowercase_identifier``). Every key in the snapshot was then
subscribed under that very identity, and a removal unsubscribes that identity and no other; a changed
identifier is a new key, so its old identity is unsubscribed and its new one subscribed. A row whose
key is not its identifier stops the run (a sync-level error naming the model's key to set). Emails
must be lower-case keys: Iterable compares emails ignoring case, so ``Ann@x.io`` leaving the model in
the run where ``ann@x.io`` enters it would name one user twice, and an unsubscribe sent after the
subscribe would end a membership the model wants; such rows are rejected (``key_not_lower_case``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.config.models import StaticListSync, SyncBase
from smartingest.errors import ConfigError, MappingError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.list_members import REMOVED, ListMembersWriter, subscribe_options
from smartingest.iterable.lists import ListInfo, create_list, read_lists
from smartingest.iterable.outcomes import SYNCED, Rejected
from smartingest.iterable.records import MappedRecord
from smartingest.iterable.writer import Record, Writer
from smartingest.mapping.encode import Encoder, json_string
from smartingest.mapping.kinds import RunInfo
from smartingest.mapping.plan import UserRecordPlan, compile_user_plan, json_join
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided, Matching
from smartingest.synctypes.common import record_columns, refuse_user_field_misfits, user_objects


@dataclass
class StaticListPlan:
    """A static_list sync compiled for one run (a ``TypePlan``); ``list_id`` is known once the
    destination was inspected (None until then, or while the named list does not exist yet)."""

    sync: StaticListSync
    records: UserRecordPlan
    where: str
    list_id: int | None = None
    endpoint_name: str = "POST /api/lists/subscribe"

    @property
    def source_columns(self) -> list[str]:
        return self.records.source_columns

    @property
    def fingerprint(self) -> str:
        # Another list, or another update-only mode, must subscribe every row again.
        doc = {
            "records": self.records.fingerprint,
            "list": self.sync.list.model_dump(),
            "update_existing_users_only": self.sync.update_existing_users_only,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def identifier_column(self) -> str:
        """The model column mapped to the identifier (compile checked that one is)."""
        return self.records.identifier_column or self.sync.identifier_field

    @property
    def matching(self) -> Matching:
        # Iterable matches emails ignoring case and userIds exactly; the identifier is never trimmed.
        field_name = self.sync.identifier_field
        return Matching(self.identifier_column, field_name, ignore_case=field_name == "email", trim=False)

    def map_changes(self, batch: pa.RecordBatch) -> tuple[list[Record], list[Decided]]:
        """Removed rows are unsubscribed (or synced unsent with ``on_removed: nothing``); the others
        become subscribers. Raises MappingError when a row's key is not its identifier."""
        is_removed = pc.equal(batch.column(OP_COLUMN), REMOVED)
        removed = batch.filter(is_removed)
        joining = batch.filter(pc.invert(is_removed)) if removed.num_rows else batch
        records: list[Record] = []
        decided: list[Decided] = []
        if removed.num_rows:
            if self.sync.on_removed == "nothing":
                decided += [(pk, REMOVED, SYNCED) for pk in removed.column(PK_COLUMN).to_pylist()]
            else:
                records += self._leaving(removed)
        if joining.num_rows:
            self._check_keys(joining)
            mapped = user_objects(self.records, joining, PK_COLUMN, OP_COLUMN)
            decided += [(pk, op, Rejected(reason, code)) for pk, op, reason, code in mapped.rejected]
            not_lower = self._keys_not_lower_case(joining)
            for record in record_columns(mapped):
                if record.pk in not_lower:
                    decided.append((record.pk, record.operation, not_lower[record.pk]))
                else:
                    records.append(record)
        return records, decided

    def _leaving(self, removed: pa.RecordBatch) -> list[Record]:
        """Unsubscribers of removed rows, named by their key (the identifier they were subscribed with)."""
        keys = removed.column(PK_COLUMN).cast(pa.string())
        name = self.sync.identifier_field
        bodies = json_join(["{" + orjson.dumps(name).decode() + ":", json_string(keys), "}"], removed.num_rows)
        pks = keys.to_pylist()
        return [
            MappedRecord(pk, REMOVED, pk if name == "email" else None, pk if name == "userId" else None, body)
            for pk, body in zip(pks, bodies.cast(pa.binary()).to_pylist(), strict=True)
        ]

    def _check_keys(self, batch: pa.RecordBatch) -> None:
        """Raise MappingError unless every row's key is its identifier, as text."""
        identifiers = Encoder.text(batch.column(self.identifier_column))
        keys = batch.column(PK_COLUMN).cast(pa.string())
        differs = pc.invert(pc.fill_null(pc.equal(identifiers, keys), False))
        if not pc.any(differs).as_py():
            return
        first = pc.index(differs, True).as_py()
        field_name = self.sync.identifier_field
        raise MappingError(
            f"{self.where}: a static_list sync needs the model's primary key to be the column mapped to "
            f"{field_name} ({self.identifier_column!r}), so that a row leaving the model is unsubscribed by its "
            f"key: the row with key {keys[first].as_py()!r} has {field_name} {identifiers[first].as_py()!r}. "
            f"Set the model's primary_key to {self.identifier_column!r}"
        )

    def _keys_not_lower_case(self, batch: pa.RecordBatch) -> dict[str, Rejected]:
        """Rows whose email key has upper-case letters, each with its verdict (none when matching userIds)."""
        if self.sync.identifier_field != "email":
            return {}
        keys = batch.column(PK_COLUMN).cast(pa.string())
        upper = pc.fill_null(pc.not_equal(pc.utf8_lower(keys), keys), False)
        if not pc.any(upper).as_py():
            return {}
        verdict = Rejected(
            "the key (the email) has upper-case letters: Iterable compares emails ignoring case, so a key "
            "that later changes only in case would unsubscribe its own user; lower-case it in the model's "
            "SQL (SELECT lower(email) AS email ...)",
            ReasonCode.KEY_NOT_LOWER_CASE,
        )
        return dict.fromkeys(keys.filter(upper).to_pylist(), verdict)

    def sample_body(self, records: Sequence[Record]) -> bytes:
        options = subscribe_options(self.list_id, self.sync.update_existing_users_only)
        return b'{"subscribers":[' + b",".join(r.body for r in records) + b"]," + options + b"}"

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        """Check the project type, read the field types (rows whose values cannot fit them are rejected
        unsent) and find the list. Raises ConfigError when the list cannot be used."""
        warnings = await self._inspect(client)
        if self.list_id is None:
            warnings.append(f"static list {self.sync.list.name!r} does not exist yet: the run creates it")
        return warnings

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        """Inspect, then create the list when no static list has its name."""
        warnings = await self._inspect(client)
        name = self.sync.list.name
        if self.list_id is None and name is not None:
            self.list_id = await create_list(client, name, f"Members synced by smartingest ({self.where})")
            warnings.append(f"created static list {name!r} (id {self.list_id})")
        return warnings

    def writer(self, client: IterableClient) -> Writer:
        if self.list_id is None:
            raise RuntimeError("the list's id is unknown: prepare_destination runs before the writer is made")
        return ListMembersWriter(client, self.list_id, self.sync.batch_size, self.sync.update_existing_users_only)

    # -- the destination ------------------------------------------------------------------------------

    async def _inspect(self, client: IterableClient) -> list[str]:
        self._check_project_type(client.destination.project_type)
        warnings = await self._read_field_types(client)
        self.list_id = self._find_list(await read_lists(client))
        return warnings

    def _check_project_type(self, project_type: str) -> None:
        if self.sync.update_existing_users_only and project_type == "email":
            raise ConfigError(
                f"{self.where}.update_existing_users_only: Iterable respects it in userID-based and hybrid "
                "projects only; in this email-based project subscribing creates the users that do not exist. "
                "Remove the key, or filter the model to existing users"
            )

    async def _read_field_types(self, client: IterableClient) -> list[str]:
        """Reject unsent the rows whose values cannot fit their profile field's type; warnings for each.

        If Iterable cannot list the types, the run sends as it would have (Iterable then refuses what
        does not fit). Raises DestinationAuthError.
        """
        self.records, warnings = await refuse_user_field_misfits(client, self.records)
        return warnings

    def _find_list(self, lists: list[ListInfo]) -> int | None:
        """The id of the sync's list; None for a name no static list has yet. Raises ConfigError for an
        unknown id, a list that is not static, or a name several static lists share."""
        ref = self.sync.list
        if ref.id is not None:
            found = next((item for item in lists if item.id == ref.id), None)
            if found is None:
                raise ConfigError(
                    f"{self.where}.list.id: the project has no list with id {ref.id} ({_described(lists)})"
                )
            if not found.static:
                raise ConfigError(
                    f"{self.where}.list.id: list {ref.id} ({found.name!r}) is a {found.list_type or 'non-static'} "
                    "list: only static lists take subscribers"
                )
            return found.id
        named = [item for item in lists if item.static and item.name == ref.name]
        if len(named) > 1:
            ids = ", ".join(str(item.id) for item in named)
            raise ConfigError(
                f"{self.where}.list.name: {len(named)} static lists are named {ref.name!r} (ids {ids}): "
                "set list: {id: N} to the one this sync fills"
            )
        return named[0].id if named else None


def _described(lists: list[ListInfo], most: int = 10) -> str:
    static = [item for item in lists if item.static]
    if not static:
        return "it has no static list"
    shown = ", ".join(f"{item.id}: {item.name!r}" for item in static[:most])
    more = f" and {len(static) - most} more" if len(static) > most else ""
    return f"static lists {shown}{more}"


class StaticList:
    """The static_list sync type."""

    name = "static_list"

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> StaticListPlan:
        if not isinstance(sync, StaticListSync):
            raise ConfigError(f"{where}: not a static_list sync")
        records = compile_user_plan(
            sync.mappings,
            schema,
            sync.identifier_field,
            where=f"{where}.mappings",
            invalid_values=sync.invalid_values,
            run=run,
        )
        return StaticListPlan(sync, records, where)


SYNC_TYPE = StaticList()
