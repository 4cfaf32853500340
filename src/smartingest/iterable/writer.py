"""The Writer seam and what every bulk endpoint needs: batching, size limits, splitting, read-back.

A writer turns records (each a row's key, operation and JSON item) into requests and gives one verdict
per record. ``BulkWriter`` sends items as one JSON list (``{"users": [...]}``, ``{"events": [...]}``):

- requests are bounded by count (the sync's batch size) and by the endpoint's body limit; an item that
  alone is over the limit is rejected without a request;
- a 400 or 413 on several items (a whole-request refusal such as ``RequestFieldsTypesMismatched``) is
  split in halves until the bad items stand alone, so one bad value never holds back the rest (unless
  ``request_refusal`` says the refusal is about the request itself, such as an unknown list);
- a 200 answer can still refuse single items: ``read_answer`` maps the endpoint's partial-failure lists
  back to the records that carried them;
- a transient failure that outlived the retry budget leaves the records for the next run (``Retry``);
  an endpoint whose daily cap is reached defers them to a later run (``Deferred``).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, repeat
from operator import add, attrgetter
from typing import Protocol, overload

from smartingest.codes import ReasonCode
from smartingest.iterable.client import Accepted, Capped, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import Endpoint
from smartingest.iterable.outcomes import SYNCED, Deferred, Rejected, Retry, Verdict, refusal
from smartingest.iterable.records import RecordColumns


class Record(Protocol):
    """What a writer needs of a record: its row's key and operation, and its JSON item."""

    @property
    def pk(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def body(self) -> bytes: ...


Outcome = tuple[Record, Verdict]
_body = attrgetter("body")


class SameVerdict(Sequence[Outcome]):
    """One verdict for every record of a sequence: what most answers are (every record synced). Reads as the
    (record, verdict) pairs; the settler takes ``records`` and ``verdict`` whole, without pairing them."""

    def __init__(self, records: Sequence[Record], verdict: Verdict) -> None:
        self.records = records
        self.verdict = verdict

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> Outcome: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Outcome]: ...
    def __getitem__(self, index: int | slice) -> Outcome | Sequence[Outcome]:
        if isinstance(index, slice):
            return SameVerdict(self.records[index], self.verdict)
        return (self.records[index], self.verdict)

    def __iter__(self) -> Iterator[Outcome]:
        return zip(self.records, repeat(self.verdict))


class Writer(Protocol):
    """Sends records and answers one verdict per record."""

    def batches(self, records: Sequence[Record]) -> Iterator[Sequence[Record]]:
        """Group records into the requests they will be sent in."""
        ...

    async def deliver(self, records: Sequence[Record]) -> Sequence[Outcome]:
        """Send records (one request's worth, from ``batches``); one verdict each. Raises DestinationAuthError."""
        ...


class BulkWriter:
    """Items to one bulk endpoint as ``{"<list_key>": [items], ...extra}`` (see the module docstring).

    ``envelope`` (head, tail) replaces that shape for an endpoint whose items are not a list: the body
    is head + the records' bodies joined by commas + tail, so a record's body is its item as framed in
    the request (a catalog document is ``"<item id>": {...}`` inside ``{"documents": {``...``}, ...}``).
    ``path`` fills the endpoint's path template (``{"catalogName": "shoes"}``).

    Subclasses read the endpoint's partial failures (``read_answer``) and may refuse items before
    sending them (``refuse_before_sending``) or learn from a refusal (``on_refused``).
    """

    def __init__(
        self,
        client: IterableClient,
        endpoint: Endpoint,
        list_key: str,
        batch_size: int,
        extra: bytes = b"",
        *,
        envelope: tuple[bytes, bytes] | None = None,
        path: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.path = path
        if envelope is None:
            envelope = (b'{"' + list_key.encode() + b'":[', b"]" + (b"," + extra if extra else b"") + b"}")
        self._head, self._tail = envelope
        self.max_body = (endpoint.max_body_bytes or 4 * 1024 * 1024) - len(self._head) - len(self._tail)

    @property
    def _limit(self) -> str:
        size = self.endpoint.max_body_bytes or 4 * 1024 * 1024
        return f"{size // (1024 * 1024)} MB" if size % (1024 * 1024) == 0 else f"{size:,} bytes"

    def body(self, records: Sequence[Record]) -> bytes:
        """The request body carrying these records."""
        if isinstance(records, RecordColumns):
            return self._head + records.joined + self._tail
        return self._head + b",".join(map(_body, records)) + self._tail

    def batches(self, records: Sequence[Record]) -> Iterator[Sequence[Record]]:
        """Group records into requests under both the count and the byte limit (a record over the byte limit
        alone makes a request of its own)."""
        # reach[i]: bytes of the first i records with a comma each; a request [start, end) fits when
        # reach[end] - reach[start] <= max_body. Built and searched without a Python step per record.
        reach = list(map(add, accumulate(_sizes(records), initial=0), range(len(records) + 1)))
        start = 0
        while start < len(records):
            fits = bisect_right(reach, reach[start] + self.max_body, lo=start) - 1
            end = min(max(fits, start + 1), start + self.batch_size)
            if isinstance(records, RecordColumns):
                request = records[start:end]
                request.joined  # noqa: B018  built here: batches are made off the thread that sends
                yield request
            else:
                yield list(records[start:end])
            start = end

    async def deliver(self, records: Sequence[Record]) -> Sequence[Outcome]:
        """Send records in as many requests as needed, concurrently; one verdict per record."""
        sendable = records
        outcomes: list[Outcome] = []
        if max(_sizes(records), default=0) > self.max_body:
            too_large = [r for r in records if len(r.body) > self.max_body]
            reason = f"the item is {{:,}} bytes: {self.endpoint.name} takes {self._limit} per request"
            outcomes = [(r, Rejected(reason.format(len(r.body)), ReasonCode.TOO_LARGE)) for r in too_large]
            sendable = [r for r in records if len(r.body) <= self.max_body]
        results = await asyncio.gather(*(self.send_batch(batch) for batch in self.batches(sendable)))
        if not outcomes and len(results) == 1:
            return results[0]  # one request's worth, as it answered (columns stay columns)
        return outcomes + [outcome for result in results for outcome in result]

    async def send_batch(self, batch: Sequence[Record]) -> Sequence[Outcome]:
        """One request for ``batch``, split in halves on a whole-request refusal."""
        batch, refused_unsent = self.refuse_before_sending(batch)
        if not batch:
            return refused_unsent
        answer = await self.client.send(self.endpoint, self.body(batch), rows=len(batch), path=self.path)
        # rows_sent counts each row once, at the answer that decides its verdict (not again per split).
        outcomes: list[Outcome] = list(refused_unsent)
        match answer:
            case Accepted(response):
                self.client.stats["rows_sent"] += len(batch)
                verdicts = self.read_answer(batch, response)
                return verdicts if not outcomes else outcomes + list(verdicts)
            case Refused(split=True) as refused if self.request_refusal(refused) is None:
                self.client.stats["splits"] += 1
                middle = len(batch) // 2
                first, second = await asyncio.gather(self.send_batch(batch[:middle]), self.send_batch(batch[middle:]))
                return outcomes + list(first) + list(second)
            case Refused() as refused:
                self.client.stats["rows_sent"] += len(batch)
                self.on_refused(batch, refused)
                return _all(outcomes, batch, self.request_refusal(refused) or refusal(refused.reason, refused.code))
            case Exhausted(reason):
                return _all(outcomes, batch, Retry(reason))
            case Capped(reason):
                return _all(outcomes, batch, Deferred(reason))

    # -- hooks ----------------------------------------------------------------------------------------

    def read_answer(self, batch: Sequence[Record], response: dict) -> Sequence[Outcome]:
        """Verdicts from a 2xx answer (default: every record synced)."""
        return SameVerdict(batch, SYNCED)

    def refuse_before_sending(self, batch: Sequence[Record]) -> tuple[Sequence[Record], list[Outcome]]:
        """Records to send, and records refused without a request (default: none)."""
        return batch, []

    def on_refused(self, batch: Sequence[Record], refused: Refused) -> None:
        """Learn from a final refusal of ``batch`` (default: nothing)."""

    def request_refusal(self, refused: Refused) -> Rejected | None:
        """The verdict of every record when a refusal is about the request itself, not its records (an
        unknown list): the batch is not split, since every half would meet it again (default: None)."""
        return None


class ByOperation:
    """A Writer that sends the records of removed rows through one writer and every other record through
    another (upserts to a bulk write, removals to a delete): a request never mixes the two."""

    REMOVED = "removed"

    def __init__(self, upserts: Writer, removals: Writer) -> None:
        self.upserts = upserts
        self.removals = removals

    def _split(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        upserts = [r for r in records if r.operation != self.REMOVED]
        return upserts, [r for r in records if r.operation == self.REMOVED]

    def batches(self, records: Sequence[Record]) -> Iterator[Sequence[Record]]:
        upserts, removals = self._split(records)
        yield from self.upserts.batches(upserts)
        yield from self.removals.batches(removals)

    async def deliver(self, records: Sequence[Record]) -> Sequence[Outcome]:
        """Send upserts and removals (one request's worth from ``batches``, or any mix); one verdict each."""
        groups = zip((self.upserts, self.removals), self._split(records), strict=True)
        results = await asyncio.gather(*(writer.deliver(group) for writer, group in groups if group))
        return results[0] if len(results) == 1 else [outcome for result in results for outcome in result]


def _all(before: list[Outcome], batch: Sequence[Record], verdict: Verdict) -> Sequence[Outcome]:
    """``before``, then one verdict for every record of ``batch``."""
    return SameVerdict(batch, verdict) if not before else before + [(record, verdict) for record in batch]


def _sizes(records: Sequence[Record]) -> Iterable[int]:
    """Each record's body length (from the columns when it has them)."""
    return records.sizes if isinstance(records, RecordColumns) else map(len, map(_body, records))
