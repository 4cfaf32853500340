"""Deleting, forgetting or unforgetting users: a row fires when its primary key first appears in the model.

Keys (``config.syncs.UserDeletionSync``): ``action`` (delete, forget, unforget) and ``match_on`` with
the identifier mapped as for Users (the only mapping; the row hash covers it alone).

- added rows send one request each: ``delete`` is ``DELETE /api/users/{email}`` (match_on: email) or
  ``DELETE /api/users/byUserId/{userId}`` (match_on: user_id); ``forget`` and ``unforget`` are
  ``POST /api/users/forget`` / ``unforget`` with ``{"email"}`` or ``{"userId"}``;
- changed rows (same key, another identifier) and removed rows need no request: synced;
- ``forget`` and ``unforget`` have Iterable's daily cap (1000 requests per 24 hours per project): once
  Iterable answers that it is reached, the run's remaining rows are deferred (``daily_cap``) and a later
  run sends them (``iterable.per_row``).

A delete names its user in the URL path, so an email without ``@`` (it would be another route) and the
userIds ``.`` and ``..`` (a client or proxy may resolve them as path segments) are rejected before
sending. A delete of a user Iterable does not have is skipped (``no_such_user``): see
``iterable.single_user``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.config.models import SyncBase, UserDeletionSync
from smartingest.errors import ConfigError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.outcomes import Rejected
from smartingest.iterable.single_user import delete_writer, gdpr_writer
from smartingest.iterable.writer import Record, Writer
from smartingest.mapping.encode import JSON_NULL, json_string
from smartingest.mapping.kinds import RunInfo
from smartingest.mapping.plan import MappedColumns, UserRecordPlan, assemble, json_join
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided, Matching
from smartingest.synctypes.common import compile_identified, matching, record_columns
from smartingest.synctypes.one_user import first_body, settings_fingerprint, split_quiet

_PATH_DOT_SEGMENTS = pa.array([".", ".."])


@dataclass
class UserDeletionPlan:
    """A user_deletion sync compiled for one run (a ``TypePlan``)."""

    sync: UserDeletionSync
    records: UserRecordPlan

    @property
    def endpoint_name(self) -> str:
        if self.sync.action != "delete":
            return f"POST /api/users/{self.sync.action}"
        if self.sync.identifier_field == "email":
            return "DELETE /api/users/{email}"
        return "DELETE /api/users/byUserId/{userId}"

    @property
    def source_columns(self) -> list[str]:
        return self.records.source_columns

    @property
    def fingerprint(self) -> str:
        return settings_fingerprint(self.records, action=self.sync.action)

    @property
    def matching(self) -> Matching:
        return matching(self.sync, self.records)

    def map_changes(self, batch: pa.RecordBatch) -> tuple[list[Record], list[Decided]]:
        to_send, decided = split_quiet(batch, ("added",))
        if to_send.num_rows == 0:
            return [], decided
        mapped = self.records.map_columns(to_send)
        field = self.sync.identifier_field
        identifier = mapped.identity[field]
        if self.sync.action == "delete":
            self._refuse_unsafe_paths(mapped, identifier)
        # A delete's record holds the path's value; forget and unforget send it as their body.
        bodies = json_join(
            ['{"' + field + '":', pc.fill_null(json_string(identifier), JSON_NULL), "}"], len(identifier)
        )
        result = assemble(to_send, PK_COLUMN, OP_COLUMN, bodies, mapped)
        decided.extend((pk, op, Rejected(reason, code)) for pk, op, reason, code in result.rejected)
        return list(record_columns(result)), decided

    def _refuse_unsafe_paths(self, mapped: MappedColumns, identifier: pa.Array) -> None:
        if self.sync.identifier_field == "email":
            mapped.problems.add(
                pc.invert(pc.match_substring(identifier, "@")),
                "email is not an email address (no '@'): it cannot name a user in DELETE /api/users/{email}",
                ReasonCode.INVALID_EMAIL,
            )
        else:
            mapped.problems.add(
                pc.is_in(identifier, value_set=_PATH_DOT_SEGMENTS),
                "userId '.' or '..' cannot name a user in DELETE /api/users/byUserId/{userId} (a path segment)",
                ReasonCode.INVALID_USER_ID,
            )

    def sample_body(self, records: Sequence[Record]) -> bytes:
        return first_body(records)

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        return []  # nothing in the project changes what is sent

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        return []

    def writer(self, client: IterableClient) -> Writer:
        if self.sync.action == "delete":
            return delete_writer(client, "email" if self.sync.identifier_field == "email" else "userId")
        return gdpr_writer(client, self.sync.action)


class UserDeletion:
    """The user_deletion sync type."""

    name = "user_deletion"

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> UserDeletionPlan:
        if not isinstance(sync, UserDeletionSync):
            raise ConfigError(f"{where}: not a user_deletion sync")
        return UserDeletionPlan(sync, compile_identified(sync, schema, where, run=run))


SYNC_TYPE = UserDeletion()
