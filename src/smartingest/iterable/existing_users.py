"""Update-only delivery: a row may update its user but never create one.

Iterable's ``users/bulkUpdate`` creates the users it does not have and, in the API contract, has no
option to skip them; so before a row that this sync never sent before (``added``) goes out, one lookup
(``GET /api/users/getByEmail`` or ``/api/users/byUserId/{userId}``) asks whether its user exists. A row
whose user is not there is ``skipped`` (``no_such_user``): counted, committed, sent again only when it
changes. A row sent before (``changed``) had its user then and goes out without a lookup; if the user
was deleted in Iterable since, the update creates it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Literal

from smartingest.codes import ReasonCode
from smartingest.iterable.client import Accepted, Capped, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import USERS_GET_BY_EMAIL, USERS_GET_BY_USER_ID
from smartingest.iterable.outcomes import Rejected, Retry, Skipped, Verdict
from smartingest.iterable.writer import Outcome, Record, Writer

ADDED = "added"


class ExistingUsersOnly:
    """A Writer that lets a new row's record through only if Iterable has its user (module docstring)."""

    def __init__(self, inner: Writer, client: IterableClient, identifier: Literal["email", "userId"]) -> None:
        self.inner = inner
        self.client = client
        self.identifier = identifier

    def batches(self, records: Sequence[Record]) -> Iterator[Sequence[Record]]:
        return self.inner.batches(records)

    async def deliver(self, records: Sequence[Record]) -> list[Outcome]:
        new = [r for r in records if r.operation == ADDED]
        found = await asyncio.gather(*(self._look_up(r) for r in new))
        outcomes: list[Outcome] = [(r, verdict) for r, verdict in zip(new, found, strict=True) if verdict is not None]
        held = {id(r) for r, _ in outcomes}
        outcomes += await self.inner.deliver([r for r in records if id(r) not in held])
        return outcomes

    async def _look_up(self, record: Record) -> Verdict | None:
        """None when the user exists (send the record), else the record's verdict."""
        value = getattr(record, "email" if self.identifier == "email" else "user_id", None)
        if value is None:
            return Rejected(f"{self.identifier} is empty: the row has no user to update", ReasonCode.NO_IDENTIFIER)
        if self.identifier == "email":
            answer = await self.client.send(USERS_GET_BY_EMAIL, params={"email": value})
        else:
            answer = await self.client.send(USERS_GET_BY_USER_ID, path={"userId": value})
        match answer:
            case Accepted(body) if isinstance(body.get("user"), dict) and body["user"]:
                return None
            case Accepted() | Refused(status=404):
                return Skipped(
                    f"no user with {self.identifier} {value!r} in Iterable, and the sync only updates existing users "
                    "(mode: update)",
                    ReasonCode.NO_SUCH_USER,
                )
            case Refused() as refused:
                return Rejected(f"looking the user up failed: {refused.reason}", ReasonCode.REFUSED)
            case Exhausted(reason) | Capped(reason):
                return Retry(f"looking the user up failed: {reason}")
