"""Writers of the single-user endpoints (email changes, deletes, forget, unforget) and how their answers read.

Each is a ``PerRowWriter``; what differs is what a refusal means for the row:

- ``users/updateEmail``: a new email taken or forgotten (``EmailAlreadyExists``), a forgotten user, an
  invalid address, an unknown current identifier are rejected rows with Iterable's reason. One
  refusal is read further: "user does not exist" for a ``currentEmail`` whose ``newEmail`` belongs to
  a user is what a resend of a change already made gets (a lost acknowledgement, a run that died
  before its commit), so the row is skipped (``already_applied``) instead of being rejected on every
  run from then on; one ``getByEmail`` tells them apart.
- ``DELETE /api/users/{email}`` and ``/api/users/byUserId/{userId}``: the contract lists no answer for a
  user Iterable does not have; Iterable answers ``UnknownEmailError`` / ``UnknownUserIdError``, whatever
  the status. The user the row asks to delete is not there, which is what the row asks for: the row is
  skipped (``no_such_user``), committed and visible, neither resent forever nor counted as a delete.
- ``forget`` and ``unforget``: refusals are rejected rows; the daily cap defers the rest of the run's
  rows (``PerRowWriter``).
"""

from __future__ import annotations

from typing import Literal

import orjson

from smartingest.codes import ReasonCode
from smartingest.iterable.client import Accepted, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import (
    USERS_DELETE_BY_EMAIL,
    USERS_DELETE_BY_USER_ID,
    USERS_FORGET,
    USERS_GET_BY_EMAIL,
    USERS_UNFORGET,
    USERS_UPDATE_EMAIL,
)
from smartingest.iterable.outcomes import Rejected, Retry, Skipped, Verdict
from smartingest.iterable.per_row import PerRowWriter
from smartingest.iterable.writer import Record

_UNKNOWN_USER = frozenset({"UnknownEmailError", "UnknownUserIdError"})


class EmailChangeWriter(PerRowWriter):
    """``POST /api/users/updateEmail``, one ``{"currentEmail" | "currentUserId", "newEmail"}`` per record."""

    def __init__(self, client: IterableClient) -> None:
        super().__init__(client, USERS_UPDATE_EMAIL)

    async def read_refused(self, record: Record, refused: Refused) -> Verdict:
        if refused.code != "BadParams" or "does not exist" not in refused.message.lower():
            return await super().read_refused(record, refused)
        request = orjson.loads(record.body)
        new_email = request.get("newEmail")
        if "currentEmail" not in request or not isinstance(new_email, str):
            return Rejected(refused.reason, ReasonCode.NOT_FOUND)
        return await self._already_applied(refused, new_email)

    async def _already_applied(self, refused: Refused, new_email: str) -> Verdict:
        """Skipped when a user has the new email (the change was made before), else rejected as not found."""
        answer = await self.client.send(USERS_GET_BY_EMAIL, params={"email": new_email})
        match answer:
            case Accepted(response) if isinstance(response.get("user"), dict):
                return Skipped(
                    f"{refused.reason}; {new_email!r} is in Iterable: the change was already made",
                    ReasonCode.ALREADY_APPLIED,
                )
            case Exhausted(reason):
                return Retry(f"{refused.reason}; could not check whether the change was already made: {reason}")
            case _:
                return Rejected(refused.reason, ReasonCode.NOT_FOUND)


class DeleteWriter(PerRowWriter):
    """``DELETE /api/users/{email}`` or ``/api/users/byUserId/{userId}``; records carry the path's value."""

    async def read_refused(self, record: Record, refused: Refused) -> Verdict:
        if refused.code in _UNKNOWN_USER:
            return Skipped(f"{refused.reason}: no such user in Iterable, nothing to delete", ReasonCode.NO_SUCH_USER)
        return await super().read_refused(record, refused)


def delete_writer(client: IterableClient, identifier: Literal["email", "userId"]) -> DeleteWriter:
    """The writer deleting users by ``email`` or by ``userId`` (records: ``{"email": ...}`` / ``{"userId": ...}``)."""
    return DeleteWriter(client, USERS_DELETE_BY_EMAIL if identifier == "email" else USERS_DELETE_BY_USER_ID)


def gdpr_writer(client: IterableClient, action: Literal["forget", "unforget"]) -> PerRowWriter:
    """The writer of ``POST /api/users/forget`` or ``unforget`` (records: ``{"email": ...}`` / ``{"userId": ...}``)."""
    return PerRowWriter(client, USERS_FORGET if action == "forget" else USERS_UNFORGET)
