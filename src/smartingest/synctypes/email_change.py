"""Email address changes: each row changes its user's email to ``new_email`` (``POST /api/users/updateEmail``).

Keys (``config.syncs.EmailChangeSync``): ``match_on`` with the current identifier mapped as for Users
(the only mapping), ``new_email`` (a column). Email-based projects only (a config error otherwise).

- ``match_on: email``: a row fires once, when its primary key first appears (added). Once the change is
  made the current email no longer names anyone, so a changed row sends nothing.
- ``match_on: user_id``: the userId still names the user after the change, so a changed row (its new
  email changed: the row hash covers ``new_email``) fires again and moves the user to the new address.
- removed rows do nothing.

A row without a new email is rejected before sending (``no_new_email``); ``trim_identifier`` and
``lowercase_identifier`` apply to the new email as to the identifier. What Iterable refuses (the new
email taken or forgotten, a forgotten user, an unknown current identifier, an invalid address) is a
rejected row with Iterable's reason (``iterable.single_user.EmailChangeWriter``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.config.models import EmailChangeSync, SyncBase
from smartingest.errors import ConfigError, MappingError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.outcomes import Rejected
from smartingest.iterable.single_user import EmailChangeWriter
from smartingest.iterable.writer import Record, Writer
from smartingest.mapping.encode import JSON_NULL, json_string
from smartingest.mapping.kinds import RunInfo
from smartingest.mapping.plan import UserRecordPlan, assemble, json_join
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided, Matching
from smartingest.synctypes.common import compile_identified, matching, record_columns
from smartingest.synctypes.one_user import first_body, settings_fingerprint, split_quiet


@dataclass
class EmailChangePlan:
    """An email_change sync compiled for one run (a ``TypePlan``)."""

    sync: EmailChangeSync
    records: UserRecordPlan
    endpoint_name: str = "POST /api/users/updateEmail"

    @property
    def source_columns(self) -> list[str]:
        return sorted({*self.records.source_columns, self.sync.new_email})

    @property
    def fingerprint(self) -> str:
        return settings_fingerprint(self.records, new_email=self.sync.new_email)

    @property
    def matching(self) -> Matching:
        return matching(self.sync, self.records)

    @property
    def fires_on(self) -> tuple[str, ...]:
        """The operations that send a request (see the module docstring)."""
        return ("added",) if self.sync.identifier_field == "email" else ("added", "changed")

    def map_changes(self, batch: pa.RecordBatch) -> tuple[list[Record], list[Decided]]:
        to_send, decided = split_quiet(batch, self.fires_on)
        if to_send.num_rows == 0:
            return [], decided
        mapped = self.records.map_columns(to_send)
        field = self.sync.identifier_field
        current = mapped.identity[field]
        # The new address is an identifier too: trimmed and lower-cased as the sync says.
        new_email = self.records.identifier_values(to_send.column(self.sync.new_email))
        mapped.problems.add(
            pc.fill_null(pc.equal(pc.utf8_trim_whitespace(new_email), ""), True),
            f"new_email (column {self.sync.new_email!r}) is empty: there is no address to change to",
            ReasonCode.NO_NEW_EMAIL,
        )
        current_key = "currentEmail" if field == "email" else "currentUserId"
        bodies = json_join(
            [
                f'{{"{current_key}":',
                pc.fill_null(json_string(current), JSON_NULL),
                ',"newEmail":',
                pc.fill_null(json_string(new_email), JSON_NULL),
                "}",
            ],
            to_send.num_rows,
        )
        result = assemble(to_send, PK_COLUMN, OP_COLUMN, bodies, mapped)
        decided.extend((pk, op, Rejected(reason, code)) for pk, op, reason, code in result.rejected)
        return list(record_columns(result)), decided

    def sample_body(self, records: Sequence[Record]) -> bytes:
        return first_body(records)

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        return []  # nothing in the project changes what is sent

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        return []

    def writer(self, client: IterableClient) -> Writer:
        return EmailChangeWriter(client)


class EmailChange:
    """The email_change sync type."""

    name = "email_change"

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> EmailChangePlan:
        if not isinstance(sync, EmailChangeSync):
            raise ConfigError(f"{where}: not an email_change sync")
        records = compile_identified(sync, schema, where, run=run)
        if sync.new_email not in schema.names:
            raise MappingError(
                f"{where}.new_email: the model has no column {sync.new_email!r} (columns: {', '.join(schema.names)})"
            )
        dtype = schema.field(sync.new_email).type
        if pa.types.is_dictionary(dtype):
            dtype = dtype.value_type
        if not (pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)):
            raise MappingError(
                f"{where}.new_email: column {sync.new_email!r} is {dtype}, but an email address is text: "
                "cast it in the model"
            )
        return EmailChangePlan(sync, records)


SYNC_TYPE = EmailChange()
