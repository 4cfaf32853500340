"""The writer of a static list's members: subscribes and unsubscribes, one verdict per record.

Records whose operation is ``removed`` leave the list (``POST /api/lists/unsubscribe`` with
``channelUnsubscribe: false``: never the list's whole channel); every other record joins it
(``POST /api/lists/subscribe``, its item an ``OptionalApiUser`` whose ``dataFields`` update the
profile). Both answer ``UserBulkUpdateListResponse``, whose failure lists are read back to the records
by email or userId (``identified.py``) and rejected with their code, except where a failure means that
nothing is left to do:

- subscribe, ``notFoundEmails`` / ``notFoundUserIds`` in update-existing-users-only mode: skipped
  (no_such_user), since the sync subscribes existing users only;
- unsubscribe, ``notFound...``: skipped (no_such_user): no user, no membership to end;
- unsubscribe, ``forgotten...``: skipped (forgotten): forgetting a user ended its memberships.

A 400 naming the list unknown (``invalidListId``) is about the request, not its users: every record of
the batch is rejected (unknown_list) without splitting, and later batches without a request.
"""

from __future__ import annotations

from collections.abc import Sequence

from smartingest.codes import ReasonCode
from smartingest.iterable.client import IterableClient, Refused
from smartingest.iterable.endpoints import LISTS_SUBSCRIBE, LISTS_UNSUBSCRIBE, Endpoint
from smartingest.iterable.identified import IdentifiedBulkWriter
from smartingest.iterable.outcomes import Rejected, Skipped, Verdict
from smartingest.iterable.writer import ByOperation, Outcome, Record

REMOVED = ByOperation.REMOVED  # the operation of a record that leaves the list
UNKNOWN_LIST = "invalidListId"  # Iterable's word for a listId that names no list


def subscribe_options(list_id: int | None, update_existing_users_only: bool) -> bytes:
    """The keys of a subscribe body besides its subscribers (a null listId: the list is not created yet)."""
    options = b'"listId":' + (str(list_id).encode() if list_id is not None else b"null")
    return options + (b',"updateExistingUsersOnly":true' if update_existing_users_only else b"")


class _ListWriter(IdentifiedBulkWriter):
    """Items to one list's endpoint; learns from the first answer that the list is gone."""

    def __init__(self, client: IterableClient, endpoint: Endpoint, list_id: int, batch_size: int, extra: bytes):
        super().__init__(client, endpoint, "subscribers", batch_size, extra)
        self.list_id = list_id
        self.list_gone: Rejected | None = None

    def request_refusal(self, refused: Refused) -> Rejected | None:
        if UNKNOWN_LIST not in refused.message and UNKNOWN_LIST not in refused.code:
            return None
        return Rejected(
            f"static list {self.list_id} no longer exists in Iterable ({refused.reason}); the next run looks "
            "for the sync's list again",
            ReasonCode.UNKNOWN_LIST,
        )

    def on_refused(self, batch: Sequence[Record], refused: Refused) -> None:
        super().on_refused(batch, refused)
        self.list_gone = self.list_gone or self.request_refusal(refused)

    def refuse_before_sending(self, batch: Sequence[Record]) -> tuple[Sequence[Record], list[Outcome]]:
        if self.list_gone is not None:
            return [], [(record, self.list_gone) for record in batch]
        return super().refuse_before_sending(batch)

    def read_answer(self, batch: Sequence[Record], response: dict) -> Sequence[Outcome]:
        return [(record, self.settle(verdict)) for record, verdict in super().read_answer(batch, response)]

    def settle(self, verdict: Verdict) -> Verdict:
        """The verdict a failure list means for this endpoint (see the module docstring)."""
        return verdict


class SubscribeWriter(_ListWriter):
    """``POST /api/lists/subscribe``: records join the list, their dataFields update the profile."""

    def __init__(self, client: IterableClient, list_id: int, batch_size: int, update_existing_users_only: bool):
        extra = subscribe_options(list_id, update_existing_users_only)
        super().__init__(client, LISTS_SUBSCRIBE, list_id, batch_size, extra)
        self.update_existing_users_only = update_existing_users_only

    def settle(self, verdict: Verdict) -> Verdict:
        if self.update_existing_users_only and isinstance(verdict, Rejected) and verdict.code == ReasonCode.NOT_FOUND:
            return Skipped(
                f"{verdict.reason}: update_existing_users_only subscribes existing users only",
                ReasonCode.NO_SUCH_USER,
            )
        return verdict


class UnsubscribeWriter(_ListWriter):
    """``POST /api/lists/unsubscribe`` with ``channelUnsubscribe: false``: records leave the list only."""

    def __init__(self, client: IterableClient, list_id: int, batch_size: int):
        extra = f'"listId":{list_id},"channelUnsubscribe":false'.encode()
        super().__init__(client, LISTS_UNSUBSCRIBE, list_id, batch_size, extra)

    def settle(self, verdict: Verdict) -> Verdict:
        if isinstance(verdict, Rejected) and verdict.code == ReasonCode.NOT_FOUND:
            return Skipped(f"{verdict.reason}: no user, no membership to end", ReasonCode.NO_SUCH_USER)
        if isinstance(verdict, Rejected) and verdict.code == ReasonCode.FORGOTTEN:
            return Skipped(f"{verdict.reason}: forgetting ended its list memberships", ReasonCode.FORGOTTEN)
        return verdict


class ListMembersWriter(ByOperation):
    """A ``Writer`` of one list's members: removed records are unsubscribed, the others subscribed.

    ``batches`` never mixes the two, so each request goes to one endpoint.
    """

    def __init__(
        self, client: IterableClient, list_id: int, batch_size: int, update_existing_users_only: bool = False
    ) -> None:
        self.subscribe = SubscribeWriter(client, list_id, batch_size, update_existing_users_only)
        self.unsubscribe = UnsubscribeWriter(client, list_id, batch_size)
        super().__init__(self.subscribe, self.unsubscribe)
