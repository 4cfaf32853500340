"""Bulk writers of endpoints that take users' items (users, events, list members): one verdict per record.

Iterable answers these with partial failures that name the refused users by email or userId
(``failedUpdates.invalidEmails``, ``forgottenUserIds``...); they are mapped back to the records that
carried those identities. A whole request refused for a field's type (``RequestFieldsTypesMismatched``)
is split until one row confirms it; from then on, rows whose value for that field cannot fit its type
are rejected without a request, so a run of such rows costs one confirmation, not a split down to every
single row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

import orjson

from smartingest.codes import ReasonCode
from smartingest.iterable.client import IterableClient, Refused
from smartingest.iterable.endpoints import USERS_BULK_UPDATE, Endpoint
from smartingest.iterable.fields import fits, json_kind
from smartingest.iterable.outcomes import SYNCED, Rejected
from smartingest.iterable.writer import BulkWriter, Outcome, Record, SameVerdict

log = logging.getLogger(__name__)

TYPE_MISMATCH = "RequestFieldsTypesMismatched"

# failedUpdates list -> (identity it names, reason code, reason given to the row)
FAILURE_LISTS: dict[str, tuple[str, ReasonCode, str]] = {
    "invalidEmails": (
        "email",
        ReasonCode.INVALID_EMAIL,
        "InvalidEmailAddressError: Iterable refused the email address as invalid",
    ),
    "invalidUserIds": (
        "userId",
        ReasonCode.INVALID_USER_ID,
        "InvalidUserIdError: Iterable refused the userId as invalid",
    ),
    "forgottenEmails": (
        "email",
        ReasonCode.FORGOTTEN,
        "ForgottenUserError: the user was forgotten (GDPR) and cannot be updated",
    ),
    "forgottenUserIds": (
        "userId",
        ReasonCode.FORGOTTEN,
        "ForgottenUserError: the user was forgotten (GDPR) and cannot be updated",
    ),
    "conflictEmails": ("email", ReasonCode.CONFLICT, "conflict: the email address already belongs to another user"),
    "conflictUserIds": ("userId", ReasonCode.CONFLICT, "conflict: the userId already belongs to another user"),
    "invalidDataEmails": ("email", ReasonCode.INVALID_DATA, "invalid data: Iterable refused a value in dataFields"),
    "invalidDataUserIds": ("userId", ReasonCode.INVALID_DATA, "invalid data: Iterable refused a value in dataFields"),
    "notFoundEmails": ("email", ReasonCode.NOT_FOUND, "not found: no such user in Iterable"),
    "notFoundUserIds": ("userId", ReasonCode.NOT_FOUND, "not found: no such user in Iterable"),
}


class UserRecord(Record, Protocol):
    """A record for a user: its identity, so partial failures can be read back to it."""

    @property
    def email(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...


class IdentifiedBulkWriter(BulkWriter):
    """A bulk writer whose items name a user (see the module docstring).

    Field types may be fixed per *scope* of items (events: per event name): ``misfit_scope`` says an
    item's, and a confirmed mismatch only holds back items of its scope.
    """

    # "field 'planCode' is of type long but the request has a value of type string"
    mismatch = re.compile(r"field '([^']+)' is of type (\w+) but the request has a value of type (\w+)")

    def __init__(
        self, client: IterableClient, endpoint: Endpoint, list_key: str, batch_size: int, extra: bytes = b""
    ) -> None:
        super().__init__(client, endpoint, list_key, batch_size, extra)
        # (scope, field path) -> (its type in Iterable, the reason Iterable gave): values that cannot fit it
        self.misfits: dict[tuple[str | None, str], tuple[str, str]] = {}

    def misfit_scope(self, item: dict) -> str | None:
        """The scope within which an item's field types are fixed (default: the whole project)."""
        return None

    def read_answer(self, batch: Sequence[Record], response: dict) -> Sequence[Outcome]:
        return read_identity_failures(batch, response, self.endpoint.name)

    def refuse_before_sending(self, batch: Sequence[Record]) -> tuple[Sequence[Record], list[Outcome]]:
        return self._without_misfits(batch) if self.misfits else (batch, [])

    def on_refused(self, batch: Sequence[Record], refused: Refused) -> None:
        if len(batch) != 1 or refused.code != TYPE_MISMATCH:
            return
        scope = self.misfit_scope(orjson.loads(batch[0].body))
        for path, fixed, sent in self.mismatch.findall(refused.message):
            if fits(fixed, sent) is False:  # text into a date field fits where the text is a date: no rule
                self.misfits.setdefault((scope, path), (fixed, refused.reason))

    def _without_misfits(self, batch: Sequence[Record]) -> tuple[Sequence[Record], list[Outcome]]:
        """Split off the records that carry a value of a confirmed misfit kind, each rejected."""
        keep: list[Record] = []
        refused: list[Outcome] = []
        for record in batch:
            item = orjson.loads(record.body)
            reason = self._misfit(self.misfit_scope(item), item.get("dataFields") or {})
            if reason is None:
                keep.append(record)
            else:
                verdict = Rejected(f"{reason} (refused without a request once confirmed)", ReasonCode.TYPE_MISMATCH)
                refused.append((record, verdict))
        return keep, refused

    def _misfit(self, scope: str | None, data: dict) -> str | None:
        for (misfit_scope, path), (fixed, why) in self.misfits.items():
            if misfit_scope == scope and (kind := _kind_at(data, path)) is not None and fits(fixed, kind) is False:
                return why
        return None


def _kind_at(data: dict, path: str) -> str | None:
    """The JSON kind of the value at a dot path of dataFields (None when absent or null)."""
    node: object = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return json_kind(node)


def users_writer(client: IterableClient, batch_size: int) -> IdentifiedBulkWriter:
    """The writer of ``POST /api/users/bulkUpdate``."""
    return IdentifiedBulkWriter(client, USERS_BULK_UPDATE, "users", batch_size)


def read_identity_failures(batch: Sequence[Record], response: dict, endpoint: str) -> Sequence[Outcome]:
    """Verdicts of a 200 answer: a record whose email or userId a failure list names is rejected with the
    list's reason (naming the refused value); every other record is synced."""
    failed = response.get("failedUpdates")
    if not isinstance(failed, dict):
        # Older answers carry only the deprecated top-level lists.
        failed = {k: response.get(k) for k in ("invalidEmails", "invalidUserIds")}
    by_email: dict[str, Rejected] = {}
    by_user_id: dict[str, Rejected] = {}
    for list_name, (identity, code, reason) in FAILURE_LISTS.items():
        names = failed.get(list_name) or []
        target = by_email if identity == "email" else by_user_id
        for name in names:
            if isinstance(name, str):
                # Name the value Iterable refused, so the row can be found and fixed at its source.
                verdict = Rejected(f"{reason} ({identity} {name!r})", code)
                target.setdefault(name, verdict)
                if identity == "email":
                    target.setdefault(name.lower(), verdict)
    if not by_email and not by_user_id and not response.get("failCount"):
        return SameVerdict(batch, SYNCED)  # the usual answer: nobody refused, nothing to look up
    outcomes: list[Outcome] = []
    rejected = 0
    for record in batch:
        found: Rejected | None = None
        # Records of these endpoints are UserRecords; a Record without an identity is never named.
        email, user_id = getattr(record, "email", None), getattr(record, "user_id", None)
        if email is not None:
            found = by_email.get(email) or by_email.get(email.lower())
        if found is None and user_id is not None:
            found = by_user_id.get(user_id)
        if found is None:
            outcomes.append((record, SYNCED))
        else:
            rejected += 1
            outcomes.append((record, found))
    fail_count = response.get("failCount")
    if isinstance(fail_count, int) and fail_count > rejected:
        log.warning("%s reported %d failures but named only %d users", endpoint, fail_count, rejected)
    return outcomes
