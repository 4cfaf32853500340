"""The writer of ``POST /api/events/trackBulk``: custom events, each naming its user.

A 200 answer can refuse single events (``BulkTrackResponse``): ``failedUpdates`` names users by email
or userId (invalid, forgotten, not found), read back as for every identified endpoint; and
``disallowedEventNames`` names the event names the project does not track ("Manage Custom Events"),
read back to every record of such a name (code ``disallowed_event_name``). Records are any ``Record``:
the event name is read from the item itself, only for these rare answers.

Field types are fixed per event name ("for events of the same name, identically named data fields must
be of the same type"), and a mismatch refuses the whole request (``RequestFieldsTypesMismatched``): the
batch is split until one event confirms it; from then on, events of that name whose value for that field
cannot fit are rejected without a request. The same field of another event name is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from smartingest.codes import ReasonCode
from smartingest.iterable.client import IterableClient
from smartingest.iterable.endpoints import EVENTS_TRACK_BULK
from smartingest.iterable.identified import IdentifiedBulkWriter, read_identity_failures
from smartingest.iterable.outcomes import Rejected, Synced
from smartingest.iterable.writer import Outcome, Record


def disallowed_reason(name: str) -> str:
    """The reason given to an event whose name the project does not track."""
    return (
        f"disallowed event name: the project does not track events named {name!r} "
        "(Iterable's Manage Custom Events); allow the name in Iterable or stop sending it"
    )


class EventsWriter(IdentifiedBulkWriter):
    """Events to ``events/trackBulk`` as ``{"events": [...]}`` (see the module docstring)."""

    # "field 'amount' of event 'purchase' is of type double but the request has a value of type string"
    mismatch = re.compile(r"field '([^']+)' of event '.*?' is of type (\w+) but the request has a value of type (\w+)")

    def __init__(self, client: IterableClient, batch_size: int) -> None:
        super().__init__(client, EVENTS_TRACK_BULK, "events", batch_size)

    def read_answer(self, batch: Sequence[Record], response: dict) -> Sequence[Outcome]:
        disallowed = {name for name in response.get("disallowedEventNames") or [] if isinstance(name, str)}
        if not disallowed:
            return read_identity_failures(batch, response, self.endpoint.name)
        names = [event_name(record) for record in batch]
        fail_count = response.get("failCount")
        if isinstance(fail_count, int):
            # failCount counts these too; the identity read-back checks it against the users it names.
            response = {**response, "failCount": fail_count - sum(name in disallowed for name in names)}
        outcomes = read_identity_failures(batch, response, self.endpoint.name)  # in the batch's order
        # A record refused for its user keeps that reason; the others of a disallowed name get this one.
        return [
            (record, Rejected(disallowed_reason(name), ReasonCode.DISALLOWED_EVENT_NAME))
            if isinstance(verdict, Synced) and name in disallowed
            else (record, verdict)
            for (record, verdict), name in zip(outcomes, names, strict=True)
        ]

    def misfit_scope(self, item: dict) -> str | None:
        name = item.get("eventName")
        return name if isinstance(name, str) else ""


def event_name(record: Record) -> str:
    """The event name a record's item carries (read from its body: needed only for rare answers)."""
    name = orjson.loads(record.body).get("eventName")
    return name if isinstance(name, str) else ""
