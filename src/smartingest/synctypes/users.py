"""Users: each row becomes a user profile, sent through ``POST /api/users/bulkUpdate``.

Keys (``config.syncs.UsersSync``): ``match_on`` and the identifier mapping, ``mode: upsert | update``
(update: only users Iterable has, ``iterable/existing_users.py``),
``on_removed: nothing | clear | delete`` (a row leaving the model leaves its user as it is, clears every
mapped field of it, or deletes it: the user is named by the identifier the snapshot kept for the row),
``prefer_user_id``, ``merge_nested_objects``, ``batch_size``. Before sending, the project's field types
are read (``users/getFields``) and rows whose values cannot fit them are rejected without a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.config.models import SyncBase, UsersSync
from smartingest.errors import ConfigError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.existing_users import ExistingUsersOnly
from smartingest.iterable.identified import users_writer
from smartingest.iterable.outcomes import SYNCED, Rejected
from smartingest.iterable.records import MappedRecord
from smartingest.iterable.single_user import delete_writer
from smartingest.iterable.writer import ByOperation, Record, Writer
from smartingest.mapping.kinds import RunInfo
from smartingest.mapping.plan import UserRecordPlan
from smartingest.synctypes.base import IDENT_COLUMN, OP_COLUMN, PK_COLUMN, Decided, Matching
from smartingest.synctypes.common import (
    by_fields_sent,
    compile_identified,
    matching,
    record_columns,
    refuse_user_field_misfits,
    user_objects,
)


@dataclass
class UsersPlan:
    """A users sync compiled for one run (a ``TypePlan``)."""

    sync: UsersSync
    records: UserRecordPlan
    endpoint_name: str = "POST /api/users/bulkUpdate"
    alone: tuple[str, ...] = ()  # parts sent alone to rows whose values are unchanged

    @property
    def source_columns(self) -> list[str]:
        return self.records.source_columns

    @property
    def fingerprint(self) -> str:
        return self.records.fingerprint

    @property
    def matching(self) -> Matching:
        return matching(self.sync, self.records)

    @property
    def _depth(self) -> int:
        # bulkUpdate replaces top-level fields whole, or with mergeNestedObjects merges them one level deep.
        return 2 if self.sync.merge_nested_objects else 1

    def field_parts(self) -> dict[str, str]:
        return self.records.parts(self._depth)

    def send_alone(self, parts: Sequence[str]) -> None:
        self.alone = tuple(parts)

    def map_changes(self, batch: pa.RecordBatch) -> tuple[Sequence[Record], list[Decided]]:
        """Added and changed rows become user records; removed rows need no request (on_removed: nothing),
        clear every mapped field of their user (clear) or delete it (delete)."""
        is_removed = pc.equal(batch.column(OP_COLUMN), "removed")
        removed = batch.filter(is_removed)
        records: Sequence[Record] = []
        decided: list[Decided] = []
        if removed.num_rows:
            if self.sync.on_removed == "nothing":
                decided = [(pk, "removed", SYNCED) for pk in removed.column(PK_COLUMN).to_pylist()]
            else:
                records, decided = self._removals(removed)
        upserts = batch.filter(pc.invert(is_removed)) if removed.num_rows else batch
        if upserts.num_rows:
            for rows, plan in by_fields_sent(upserts, self.records, self.alone, self._depth):
                mapped = user_objects(plan, rows, PK_COLUMN, OP_COLUMN)
                columns = record_columns(mapped)
                records = columns if not records else [*records, *columns]
                decided += [(pk, op, Rejected(reason, code)) for pk, op, reason, code in mapped.rejected]
        return records, decided

    def _removals(self, removed: pa.RecordBatch) -> tuple[list[Record], list[Decided]]:
        """One record per removed row, naming its user by the identifier its snapshot kept: a user object
        with null in every mapped field (clear), or the delete's path value (delete)."""
        field = self.sync.identifier_field
        if self.sync.on_removed == "clear":
            nulls = self.records.data_targets
            tail = b',"dataFields":' + orjson.dumps(_nested_nulls(nulls)) + b"}"
        else:
            tail = b"}"  # the delete writer reads the path's value from {"email": ...} / {"userId": ...}
        records: list[Record] = []
        decided: list[Decided] = []
        for pk, identifier in zip(
            removed.column(PK_COLUMN).to_pylist(), removed.column(IDENT_COLUMN).to_pylist(), strict=True
        ):
            reason = _unsendable_removal(field, identifier, self.sync.on_removed)
            if reason is not None:
                decided.append((pk, "removed", Rejected(reason, ReasonCode.NO_IDENTIFIER)))
                continue
            body = b"{" + orjson.dumps(field) + b":" + orjson.dumps(identifier) + tail
            email, user_id = (identifier, None) if field == "email" else (None, identifier)
            records.append(MappedRecord(pk, "removed", email, user_id, body))
        return records, decided

    def sample_body(self, records: Sequence[Record]) -> bytes:
        return b'{"users":[' + b",".join(r.body for r in records) + b"]}"

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        """Read the project's field types; rows whose values cannot fit them will be rejected unsent.

        If Iterable cannot list them, the run sends as it would have (Iterable then refuses what does
        not fit). Raises DestinationAuthError.
        """
        self.records, warnings = await refuse_user_field_misfits(client, self.records)
        return warnings

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        return await self.inspect_destination(client)

    def writer(self, client: IterableClient) -> Writer:
        identifier: Literal["email", "userId"] = "email" if self.sync.identifier_field == "email" else "userId"
        updates: Writer = users_writer(client, self.sync.batch_size)
        if self.sync.mode == "update":
            updates = ExistingUsersOnly(updates, client, identifier)
        if self.sync.on_removed != "delete":
            return updates
        return ByOperation(updates, delete_writer(client, identifier))


def _unsendable_removal(field: str, identifier: str | None, action: str) -> str | None:
    """Why a removed row's user cannot be named (None when it can)."""
    if identifier is None:
        return f"the row was synced before its identifier was kept: {action} its user in Iterable by hand"
    if action == "delete" and (identifier in (".", "..") or (field == "email" and "@" not in identifier)):
        # As a path segment such a value would name another route, not a user.
        return f"{field} {identifier!r} cannot name a user in DELETE /api/users/...: delete it in Iterable by hand"
    return None


def _nested_nulls(targets: list[str]) -> dict:
    """``{"address": {"city": None}}`` from ``address.city``: every mapped field, null."""
    tree: dict = {}
    for target in targets:
        node = tree
        *parents, leaf = target.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = None
    return tree


class Users:
    """The users sync type."""

    name = "users"

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> UsersPlan:
        if not isinstance(sync, UsersSync):
            raise ConfigError(f"{where}: not a users sync")
        records = compile_identified(
            sync,
            schema,
            where,
            run=run,
            # Per user in the contract (OptionalApiUser), so they go in each user's object.
            prefer_user_id=sync.prefer_user_id,
            merge_nested_objects=sync.merge_nested_objects,
        )
        return UsersPlan(sync, records)


SYNC_TYPE = Users()
