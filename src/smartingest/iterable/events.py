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

import orjson

from smartingest.codes import ReasonCode
from smartingest.iterable.client import IterableClient, Refused
from smartingest.iterable.endpoints import EVENTS_TRACK_BULK
from smartingest.iterable.fields import fits, json_kind
from smartingest.iterable.identified import TYPE_MISMATCH, IdentifiedBulkWriter, read_identity_failures
from smartingest.iterable.outcomes import Rejected, Synced
from smartingest.iterable.writer import Outcome, Record

# "field 'amount' of event 'purchase' is of type double but the request has a value of type string"
_MISMATCH = re.compile(r"field '([^']+)' of event '.*?' is of type (\w+) but the request has a value of type (\w+)")


def disallowed_reason(name: str) -> str:
    """The reason given to an event whose name the project does not track."""
    return (
        f"disallowed event name: the project does not track events named {name!r} "
        "(Iterable's Manage Custom Events); allow the name in Iterable or stop sending it"
    )


class EventsWriter(IdentifiedBulkWriter):
    """Events to ``events/trackBulk`` as ``{"events": [...]}`` (see the module docstring)."""

    def __init__(self, client: IterableClient, batch_size: int) -> None:
        super().__init__(client, EVENTS_TRACK_BULK, "events", batch_size)
        # (event name, field path) -> (its type in Iterable, the reason Iterable gave)
        self.event_misfits: dict[tuple[str, str], tuple[str, str]] = {}

    def read_answer(self, batch: list[Record], response: dict) -> list[Outcome]:
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

    def on_refused(self, batch: list[Record], refused: Refused) -> None:
        if len(batch) != 1 or refused.code != TYPE_MISMATCH:
            return
        name = event_name(batch[0])
        for path, fixed, sent in _MISMATCH.findall(refused.message):
            if fits(fixed, sent) is False:  # text into a date field fits where the text is a date: no rule
                self.event_misfits.setdefault((name, path), (fixed, refused.reason))

    def refuse_before_sending(self, batch: list[Record]) -> tuple[list[Record], list[Outcome]]:
        if not self.event_misfits:
            return batch, []
        keep: list[Record] = []
        refused: list[Outcome] = []
        for record in batch:
            reason = self._misfit(orjson.loads(record.body))
            if reason is None:
                keep.append(record)
            else:
                verdict = Rejected(f"{reason} (refused without a request once confirmed)", ReasonCode.TYPE_MISMATCH)
                refused.append((record, verdict))
        return keep, refused

    def _misfit(self, item: dict) -> str | None:
        """The reason an event carries a value its event name's field cannot take, if it does."""
        name, data = item.get("eventName"), item.get("dataFields") or {}
        for (misfit_name, path), (fixed, why) in self.event_misfits.items():
            if misfit_name == name and (kind := _kind_at(data, path)) is not None and fits(fixed, kind) is False:
                return why
        return None


def event_name(record: Record) -> str:
    """The event name a record's item carries (read from its body: needed only for rare answers)."""
    name = orjson.loads(record.body).get("eventName")
    return name if isinstance(name, str) else ""


def _kind_at(data: dict, path: str) -> str | None:
    """The JSON kind of the value at a dot path of dataFields (None when absent or null)."""
    node: object = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return json_kind(node)
