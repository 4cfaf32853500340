"""The Users writer: user records to ``POST /api/users/bulkUpdate``, one verdict per record.

Batches are bounded by count (the sync's batch size) and by the endpoint's 4 MB body limit. A 200
answer can still refuse single users: ``failedUpdates`` names them by email or userId, and we map
those names back to the rows that carried them. A 400 or 413 on several rows (for example
``RequestFieldsTypesMismatched``, which fails the whole request) is split in halves until the bad
rows stand alone, so one bad value never holds back the rest.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Protocol

import orjson

from smartingest.iterable.client import Accepted, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import USERS_BULK_UPDATE
from smartingest.iterable.fields import fits, json_kind
from smartingest.iterable.outcomes import SYNCED, Rejected, Retry, Verdict

log = logging.getLogger(__name__)

_ENVELOPE = (b'{"users":[', b"]}")
_OVERHEAD = len(_ENVELOPE[0]) + len(_ENVELOPE[1])

TYPE_MISMATCH = "RequestFieldsTypesMismatched"
# "field 'planCode' is of type long but the request has a value of type string"
_MISMATCH = re.compile(r"field '([^']+)' is of type (\w+) but the request has a value of type (\w+)")

# failedUpdates list -> (identity it names, reason given to the row)
FAILURE_LISTS: dict[str, tuple[str, str]] = {
    "invalidEmails": ("email", "InvalidEmailAddressError: Iterable refused the email address as invalid"),
    "invalidUserIds": ("userId", "InvalidUserIdError: Iterable refused the userId as invalid"),
    "forgottenEmails": ("email", "ForgottenUserError: the user was forgotten (GDPR) and cannot be updated"),
    "forgottenUserIds": ("userId", "ForgottenUserError: the user was forgotten (GDPR) and cannot be updated"),
    "conflictEmails": ("email", "conflict: the email address already belongs to another user"),
    "conflictUserIds": ("userId", "conflict: the userId already belongs to another user"),
    "invalidDataEmails": ("email", "invalid data: Iterable refused a value in dataFields"),
    "invalidDataUserIds": ("userId", "invalid data: Iterable refused a value in dataFields"),
    "notFoundEmails": ("email", "not found: no such user in Iterable"),
    "notFoundUserIds": ("userId", "not found: no such user in Iterable"),
}


class UserRecord(Protocol):
    """What the writer needs of a record: its row's key and operation, its identity, its JSON body.

    A Protocol, so the iterable package knows nothing of how records are made (mapping.MappedRecord
    is one).
    """

    @property
    def pk(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def body(self) -> bytes: ...


Outcome = tuple[UserRecord, Verdict]


class UsersWriter:
    """Delivers user records through bulkUpdate (see the module docstring)."""

    endpoint = USERS_BULK_UPDATE

    def __init__(self, client: IterableClient, batch_size: int = 1000) -> None:
        self.client = client
        self.batch_size = batch_size
        self.max_body = (self.endpoint.max_body_bytes or 4 * 1024 * 1024) - _OVERHEAD
        # field path -> (its type in Iterable, the reason Iterable gave): values that cannot fit it
        self.misfits: dict[str, tuple[str, str]] = {}

    def batches(self, records: Sequence[UserRecord]) -> Iterator[list[UserRecord]]:
        """Group records into requests under both the count and the byte limit."""
        batch: list[UserRecord] = []
        size = 0
        for record in records:
            cost = len(record.body) + 1
            if batch and (len(batch) >= self.batch_size or size + cost > self.max_body):
                yield batch
                batch, size = [], 0
            batch.append(record)
            size += cost
        if batch:
            yield batch

    async def deliver(self, records: Sequence[UserRecord]) -> list[Outcome]:
        """Send records in as many requests as needed, concurrently; one verdict per record.

        Raises DestinationAuthError if Iterable refuses the API key.
        """
        outcomes: list[Outcome] = []
        oversized = [r for r in records if len(r.body) > self.max_body]
        for record in oversized:
            outcomes.append(
                (record, Rejected(f"the user object is {len(record.body)} bytes, over the 4 MB request limit"))
            )
        sendable = [r for r in records if len(r.body) <= self.max_body] if oversized else records
        results = await asyncio.gather(*(self.send_batch(batch) for batch in self.batches(sendable)))
        for result in results:
            outcomes.extend(result)
        return outcomes

    async def send_batch(self, batch: list[UserRecord]) -> list[Outcome]:
        """One bulkUpdate request for ``batch`` (split in halves on a whole-request refusal).

        Rows whose value for a field was already refused for its type in this run (a confirmed
        ``RequestFieldsTypesMismatched``) are rejected without a request, so a run of such rows costs one
        confirmation, not a split down to every single row.
        """
        outcomes: list[Outcome] = []
        if self.misfits:
            batch, outcomes = self._without_misfits(batch)
            if not batch:
                return outcomes
        body = _ENVELOPE[0] + b",".join(r.body for r in batch) + _ENVELOPE[1]
        answer = await self.client.send(self.endpoint, body, rows=len(batch))
        # rows_sent counts each row once, at the answer that decides its verdict (not again per split).
        match answer:
            case Accepted(response):
                self.client.stats["rows_sent"] += len(batch)
                return outcomes + _read_partial_failures(batch, response)
            case Refused(split=True):
                self.client.stats["splits"] += 1
                middle = len(batch) // 2
                first, second = await asyncio.gather(self.send_batch(batch[:middle]), self.send_batch(batch[middle:]))
                return outcomes + first + second
            case Refused() as refused:
                self.client.stats["rows_sent"] += len(batch)
                if len(batch) == 1 and refused.code == TYPE_MISMATCH:
                    self._confirm_misfits(refused)
                return outcomes + [(record, Rejected(refused.reason)) for record in batch]
            case Exhausted(reason):
                return outcomes + [(record, Retry(reason)) for record in batch]

    def _confirm_misfits(self, refused: Refused) -> None:
        for path, fixed, sent in _MISMATCH.findall(refused.message):
            if fits(fixed, sent) is False:  # text into a date field fits where the text is a date: no rule
                self.misfits.setdefault(path, (fixed, refused.reason))

    def _without_misfits(self, batch: list[UserRecord]) -> tuple[list[UserRecord], list[Outcome]]:
        """Split off the records that carry a value of a confirmed misfit kind, each rejected."""
        keep: list[UserRecord] = []
        refused: list[Outcome] = []
        for record in batch:
            data = orjson.loads(record.body).get("dataFields") or {}
            reason = next(
                (
                    why
                    for path, (fixed, why) in self.misfits.items()
                    if (kind := _kind_at(data, path)) is not None and fits(fixed, kind) is False
                ),
                None,
            )
            if reason is None:
                keep.append(record)
            else:
                refused.append((record, Rejected(f"{reason} (refused without a request once confirmed)")))
        return keep, refused


def _kind_at(data: dict, path: str) -> str | None:
    """The JSON kind of the value at a dot path of dataFields (None when absent or null)."""
    node: object = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return json_kind(node)


def _read_partial_failures(batch: list[UserRecord], response: dict) -> list[Outcome]:
    failed = response.get("failedUpdates")
    if not isinstance(failed, dict):
        # Older answers carry only the deprecated top-level lists.
        failed = {k: response.get(k) for k in ("invalidEmails", "invalidUserIds")}
    by_email: dict[str, str] = {}
    by_user_id: dict[str, str] = {}
    for list_name, (identity, reason) in FAILURE_LISTS.items():
        names = failed.get(list_name) or []
        target = by_email if identity == "email" else by_user_id
        for name in names:
            if isinstance(name, str):
                # Name the value Iterable refused, so the row can be found and fixed at its source.
                target.setdefault(name, f"{reason} ({identity} {name!r})")
                if identity == "email":
                    target.setdefault(name.lower(), f"{reason} ({identity} {name!r})")
    outcomes: list[Outcome] = []
    rejected = 0
    for record in batch:
        reason = None
        if record.email is not None:
            reason = by_email.get(record.email) or by_email.get(record.email.lower())
        if reason is None and record.user_id is not None:
            reason = by_user_id.get(record.user_id)
        if reason is None:
            outcomes.append((record, SYNCED))
        else:
            rejected += 1
            outcomes.append((record, Rejected(reason)))
    fail_count = response.get("failCount")
    if isinstance(fail_count, int) and fail_count > rejected:
        log.warning("bulkUpdate reported %d failures but named only %d users", fail_count, rejected)
    return outcomes
