"""The Iterable API client: authentication, regions, rate limits and retries, decided in one place.

Callers get one of a few answers per request (see ``Answer``) and never see httpx exceptions: every
transport and HTTP failure is classified here, once, by the retry policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from smartingest import __version__
from smartingest.config.models import DestinationConfig
from smartingest.errors import DestinationAuthError
from smartingest.iterable.endpoints import Endpoint
from smartingest.iterable.ratelimit import TokenBucket
from smartingest.iterable.retry import BadCredentials, GiveUp, RetryLater, RetryPolicy, SplitBatch

log = logging.getLogger(__name__)


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


Answer = Accepted | Refused | Exhausted


class IterableClient:
    """Sends requests to one Iterable project; use as an async context manager.

    Raises DestinationAuthError when Iterable refuses the API key. Once a request has spent its retry
    budget it stops sending and answers Exhausted at once (``unavailable`` holds the reason), so an
    outage ends the run quickly with every row kept for the next run.
    """

    def __init__(
        self,
        destination: DestinationConfig,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.destination = destination
        self.policy = policy or RetryPolicy(
            max_attempts=destination.max_attempts,
            base_seconds=destination.backoff_base_seconds,
            max_seconds=destination.backoff_max_seconds,
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
        self._buckets: dict[str, TokenBucket] = {}
        self.unavailable: str | None = None
        # What delivery met, for the run's summary: attempts, retries, and why they were retried.
        self.stats: Counter[str] = Counter()

    async def __aenter__(self) -> IterableClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def _bucket(self, endpoint: Endpoint) -> TokenBucket:
        if endpoint.name not in self._buckets:
            self._buckets[endpoint.name] = TokenBucket(endpoint.rate_per_second * self.destination.rate_limit_scale)
        return self._buckets[endpoint.name]

    async def send(self, endpoint: Endpoint, body: bytes | None = None, rows: int = 1, params: Any = None) -> Answer:
        """Send one request with retries; ``rows`` is how many records the body carries (for splitting)."""
        if self.unavailable is not None:
            return Exhausted(self.unavailable)
        attempt = 0
        while True:
            attempt += 1
            await self._bucket(endpoint).acquire()
            self.stats["requests"] += 1
            try:
                response = await self._http.request(endpoint.method, endpoint.path, content=body, params=params)
            except httpx.TransportError as exc:
                self.stats["no_response"] += 1
                decision = self.policy.on_transport_error(_describe_transport_error(exc, self.destination.url), attempt)
            else:
                if response.status_code == 429:
                    self.stats["throttled"] += 1
                elif response.status_code >= 500:
                    self.stats["server_errors"] += 1
                if response.is_success:
                    return Accepted(_json(response))
                code, message = _envelope(response)
                reason = f"HTTP {response.status_code} {code}" + (f": {message}" if message else "")
                decision = self.policy.on_status(
                    response.status_code, reason, attempt, rows, response.headers.get("Retry-After")
                )
                if (
                    isinstance(decision, SplitBatch | GiveUp)
                    and response.status_code < 500
                    and response.status_code != 429
                ):
                    return Refused(response.status_code, code, message, split=isinstance(decision, SplitBatch))
            match decision:
                case RetryLater(delay, reason):
                    self.stats["retries"] += 1
                    log.info("retrying %s in %.1fs: %s", endpoint.name, delay, reason)
                    await asyncio.sleep(delay)
                case BadCredentials(reason):
                    raise DestinationAuthError(
                        f"Iterable refused the API key ({reason}): check the destination's api_key and region"
                    )
                case GiveUp(reason) | SplitBatch(reason):
                    # A request that spent its whole retry budget (minutes of backoff) means Iterable is
                    # in trouble: stop sending for the rest of the run rather than hammer it.
                    self.unavailable = f"Iterable kept failing, sending stopped for this run: {reason}"
                    return Exhausted(reason)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _envelope(response: httpx.Response) -> tuple[str, str]:
    """Iterable's error envelope: (code, msg); falls back to the HTTP reason."""
    body = _json(response)
    code = body.get("code") if isinstance(body.get("code"), str) else response.reason_phrase
    message = body.get("msg") if isinstance(body.get("msg"), str) else ""
    return code or str(response.status_code), message


def _describe_transport_error(exc: httpx.TransportError, url: str) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout talking to {url}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url} ({exc})"
    return f"connection to {url} dropped ({type(exc).__name__}: {exc})"
