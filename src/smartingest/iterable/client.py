"""The Iterable API client: authentication, regions, rate limits and retries, decided in one place.

Callers get one of a few answers per request (see ``Answer``) and never see httpx exceptions: every
transport and HTTP failure is classified here, once, by the retry policy.

``IterableClient.stats`` counts what delivery met (the run's ``delivery`` summary, docs/runs.md). Every
HTTP attempt is counted once in ``requests`` and once by how it ended, so that

    requests = accepted + refused + retries + gave_up
    retries  = throttled + server_errors + no_response

``accepted``: a 2xx answer. ``refused``: a final 4xx answer about the request's content (its rows are
rejected, or the batch is split), or a 401. ``retries``: a failed attempt that was sent again, counted
by cause in ``throttled`` (429), ``server_errors`` (5xx) and ``no_response`` (timeouts, a 408, refused
or dropped connections). ``gave_up``: a failed attempt that was not sent again, because the request
spent its attempts or Iterable asked for a longer wait than ``max_retry_after_seconds``, or the
endpoint's daily cap was reached.
The writer adds ``splits`` (batches split in halves) and ``rows_sent`` (rows that got their verdict
from an answer of Iterable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from smartingest import __version__, telemetry
from smartingest.config.models import DestinationConfig
from smartingest.errors import DestinationAuthError
from smartingest.iterable.endpoints import Endpoint
from smartingest.iterable.ratelimit import LocalPacing, Pacer, Pacing
from smartingest.iterable.retry import BadCredentials, DailyCapReached, GiveUp, RetryLater, RetryPolicy, SplitBatch

log = logging.getLogger(__name__)

# Every key of IterableClient.stats, present from the start (at zero), so a run's summary is complete.
STAT_NAMES = (
    "requests",
    "accepted",
    "refused",
    "retries",
    "throttled",
    "server_errors",
    "no_response",
    "gave_up",
    "splits",
    "rows_sent",
)


@dataclass(frozen=True)
class Accepted:
    """A 2xx answer and its JSON body."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    """A final 4xx answer about the request's content; ``split`` says a smaller batch may pass."""

    status: int
    code: str
    message: str
    split: bool

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


@dataclass(frozen=True)
class Exhausted:
    """Transient failures (429, 5xx, timeouts, dropped connections) outlived the retry budget."""

    reason: str


@dataclass(frozen=True)
class Capped:
    """The endpoint's daily cap is reached: it takes no more requests in this run (its rows are deferred)."""

    reason: str


Answer = Accepted | Refused | Exhausted | Capped


class IterableClient:
    """Sends requests to one Iterable project; use as an async context manager.

        Raises DestinationAuthError when Iterable refuses the API key. Once a request has given up (it
        spent its retry budget, or Iterable asked to wait longer than ``max_retry_after_seconds``) the
        client stops sending and answers Exhausted at once (``unavailable`` holds the reason), so an outage
        ends the run quickly with every row kept for the next run. Requests to one endpoint are paced to
        its documented rate times ``rate_limit_scale`` (``pacing``: in this process, ``RequestPacer``, or shared by
    every process sending to the project, ``RedisPacing``). Once Iterable answers that an
        endpoint's daily cap is reached, that endpoint answers Capped at once for the rest of the client's
        life (``capped`` holds the reason), without a request; other endpoints go on.
    """

    def __init__(
        self,
        destination: DestinationConfig,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        self.destination = destination
        self.pacing: Pacing = pacing or LocalPacing()  # shared by every process sending to the project, or not
        self.policy = policy or RetryPolicy(
            max_attempts=destination.max_attempts,
            base_seconds=destination.backoff_base_seconds,
            max_seconds=destination.backoff_max_seconds,
            max_retry_after_seconds=destination.max_retry_after_seconds,
        )
        self._http = httpx.AsyncClient(
            base_url=destination.url,
            headers={
                "Api-Key": destination.api_key.get_secret_value(),
                "Content-Type": "application/json",
                "User-Agent": f"smartingest/{__version__}",
            },
            timeout=httpx.Timeout(destination.timeout_seconds),
            limits=httpx.Limits(max_connections=destination.max_concurrent_requests),
            transport=transport,
        )
        self._pacers: dict[str, Pacer] = {}
        self.unavailable: str | None = None
        self.capped: dict[str, str] = {}  # endpoint name -> why it takes no more requests (its daily cap)
        # What delivery met, for the run's summary (see the module docstring).
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_NAMES, 0))

    async def __aenter__(self) -> IterableClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._http.aclose()
        finally:
            await self.pacing.aclose()

    def _pacer(self, endpoint: Endpoint) -> Pacer:
        if endpoint.name not in self._pacers:
            rate = endpoint.rate_per_second * self.destination.rate_limit_scale
            self._pacers[endpoint.name] = self.pacing.pacer(endpoint.name, rate)
        return self._pacers[endpoint.name]

    async def send(
        self,
        endpoint: Endpoint,
        body: bytes | None = None,
        rows: int = 1,
        params: Any = None,
        path: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request with retries; ``rows`` is how many records the body carries (for splitting),
        ``path`` fills the endpoint's path template (``{"catalogName": "shoes"}``)."""
        if self.unavailable is not None:
            return Exhausted(self.unavailable)
        if endpoint.name in self.capped:
            return Capped(self.capped[endpoint.name])
        attempt = 0
        while True:
            attempt += 1
            await self._pacer(endpoint).acquire()
            if endpoint.name in self.capped:  # learnt while this request waited for its turn
                return Capped(self.capped[endpoint.name])
            self.stats["requests"] += 1
            status, code, message = 0, "", ""  # no answer until one comes
            sent_at = time.monotonic()
            try:
                response = await self._http.request(
                    endpoint.method, endpoint.url_path(path), content=body, params=params
                )
            except httpx.TransportError as exc:
                telemetry.iterable_request(endpoint.name, None, time.monotonic() - sent_at)
                decision = self.policy.on_transport_error(_describe_transport_error(exc, self.destination.url), attempt)
            else:
                telemetry.iterable_request(endpoint.name, response.status_code, time.monotonic() - sent_at)
                if response.is_success:
                    self.stats["accepted"] += 1
                    return Accepted(_json(response))
                status = response.status_code
                code, message = _envelope(response)
                reason = f"HTTP {status} {code}" + (f": {message}" if message else "")
                decision = self.policy.on_status(status, reason, attempt, rows, response.headers.get("Retry-After"))
            match decision:
                case RetryLater(delay, reason):
                    self.stats["retries"] += 1
                    self.stats[_cause(status)] += 1
                    log.info("retrying %s in %.1fs: %s", endpoint.name, delay, reason)
                    await asyncio.sleep(delay)
                case BadCredentials(reason):
                    self.stats["refused"] += 1
                    raise DestinationAuthError(
                        f"Iterable refused the API key ({reason}): check the destination's api_key and region"
                    )
                case DailyCapReached(reason):
                    # The cap lifts hours from now: waiting for it would hold the run, retrying would
                    # only meet it again. Rows for this endpoint wait for a later run.
                    self.stats["gave_up"] += 1
                    self.capped[endpoint.name] = f"{reason}; no more {endpoint.name} requests in this run"
                    return Capped(self.capped[endpoint.name])
                case GiveUp(reason, transient=True):
                    # A request that spent its whole retry budget (minutes of backoff), or was told to
                    # wait longer than the run may, means Iterable cannot take more now: stop sending
                    # for the rest of the run rather than hammer it.
                    self.stats["gave_up"] += 1
                    self.unavailable = f"{reason}; sending stopped for this run"
                    return Exhausted(reason)
                case GiveUp(reason) | SplitBatch(reason):
                    # The policy gives up for good, or splits, only on an answer (status is set).
                    self.stats["refused"] += 1
                    return Refused(status, code, message, split=isinstance(decision, SplitBatch))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _envelope(response: httpx.Response) -> tuple[str, str]:
    """Iterable's error envelope: (code, msg); falls back to the HTTP reason."""
    body = _json(response)
    code, message = body.get("code"), body.get("msg")
    code = code if isinstance(code, str) and code else response.reason_phrase
    return code or str(response.status_code), message if isinstance(message, str) else ""


def _cause(status: int) -> str:
    """The stats counter a retried attempt counts in, by its HTTP status (0: no answer)."""
    if status == 429:
        return "throttled"
    if status in (0, 408):  # 408: the server timed out waiting for the request, a timeout like no answer
        return "no_response"
    return "server_errors"


def _describe_transport_error(exc: httpx.TransportError, url: str) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout talking to {url}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url} ({exc})"
    return f"connection to {url} dropped ({type(exc).__name__}: {exc})"
