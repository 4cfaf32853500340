"""The per-row sender: one request per record, for endpoints that take one user at a time.

``PerRowWriter`` is the Writer of ``users/updateEmail``, the user deletes, ``forget`` and ``unforget``:

- each record is one request. A record's ``body`` is the request's JSON body; an endpoint without a
  body (``DELETE``, ``GET``) fills its path template from it instead (``{"email": "ann@x.io"}`` makes
  ``/api/users/ann%40x.io``), so ``sync plan`` shows what each request carries either way;
- records are grouped about one second of the endpoint's paced rate per group (1 to 100), so verdicts
  reach the ledger every second or so without one ledger write per request; within a group the
  requests go concurrently, at most ``max_concurrent_requests`` in flight across all groups, each paced
  and retried by the client like any bulk request;
- every answer becomes the record's verdict: 2xx synced, a final 4xx rejected with Iterable's reason
  and a reason code (``read_refused`` may decide otherwise), a transient failure that outlived the
  retry budget ``Retry``, and an endpoint whose daily cap is reached ``Deferred`` (the client sends it
  nothing more this run, so the rest of the run's records are deferred without a request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from itertools import islice

import orjson

from smartingest.codes import ReasonCode
from smartingest.iterable.client import Accepted, Capped, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import MB, Endpoint
from smartingest.iterable.outcomes import SYNCED, Deferred, Rejected, Retry, Verdict, refusal
from smartingest.iterable.writer import Outcome, Record

MAX_GROUP = 100
_BODILESS = frozenset({"GET", "DELETE"})


class PerRowWriter:
    """Sends each record in a request of its own to ``endpoint`` (see the module docstring).

    Subclasses read an endpoint's answers: ``read_accepted`` (default: synced) and ``read_refused``
    (default: rejected with Iterable's reason, coded by ``outcomes.REFUSAL_CODES``).
    """

    def __init__(self, client: IterableClient, endpoint: Endpoint, group_size: int | None = None) -> None:
        self.client = client
        self.endpoint = endpoint
        paced = endpoint.rate_per_second * client.destination.rate_limit_scale
        self.group_size = group_size or max(1, min(MAX_GROUP, int(paced)))
        self.max_body = endpoint.max_body_bytes or 4 * MB
        # Bounds the requests in flight across every group the pipeline's senders hold at once, so
        # waiting for a connection never counts as a timeout.
        self._in_flight = asyncio.Semaphore(client.destination.max_concurrent_requests)

    def batches(self, records: Sequence[Record]) -> Iterator[Sequence[Record]]:
        """Groups of records whose requests go together (``group_size`` each)."""
        rows = iter(records)
        while group := list(islice(rows, self.group_size)):
            yield group

    async def deliver(self, records: Sequence[Record]) -> list[Outcome]:
        """One request per record, concurrently; one verdict per record."""
        return list(await asyncio.gather(*(self._deliver_one(record) for record in records)))

    async def _deliver_one(self, record: Record) -> Outcome:
        async with self._in_flight:
            return record, await self.send_one(record)

    async def send_one(self, record: Record) -> Verdict:
        """Send one record's request and read the answer into its verdict."""
        if self.endpoint.method in _BODILESS:
            body, path = None, _path_values(record.body)
        elif len(record.body) > self.max_body:
            return Rejected(
                f"the request is {len(record.body):,} bytes: {self.endpoint.name} takes {self.max_body:,}",
                ReasonCode.TOO_LARGE,
            )
        else:
            body, path = record.body, None
        answer = await self.client.send(self.endpoint, body, rows=1, path=path)
        match answer:
            case Accepted(response):
                self.client.stats["rows_sent"] += 1
                return self.read_accepted(record, response)
            case Refused() as refused:
                self.client.stats["rows_sent"] += 1
                return await self.read_refused(record, refused)
            case Exhausted(reason):
                return Retry(reason)
            case Capped(reason):
                cap = self.endpoint.daily_cap
                allowed = f" ({self.endpoint.name} allows {cap:,} requests a day per project)" if cap else ""
                return Deferred(f"{reason}{allowed}: a later run sends it", ReasonCode.DAILY_CAP)

    # -- hooks ----------------------------------------------------------------------------------------

    def read_accepted(self, record: Record, response: dict) -> Verdict:
        """The verdict of a 2xx answer (default: synced)."""
        return SYNCED

    async def read_refused(self, record: Record, refused: Refused) -> Verdict:
        """The verdict of a final 4xx answer (default: rejected with Iterable's reason and its code)."""
        return refusal(refused.reason, refused.code)


def _path_values(body: bytes) -> dict[str, str]:
    """The path template's values a bodiless request's record carries as its JSON object."""
    values = orjson.loads(body)
    return {str(name): str(value) for name, value in values.items()}
