"""Fault injection for /api requests: latency, error rates, status bursts and dropped connections.

The injector only decides (from its settings, its counters and a seedable RNG); the route layer acts.
A dropped connection is made by starting a response that promises a body (Content-Length) and then
raising `InjectedDrop`: uvicorn closes the transport mid-response, so the client sees a
transport-level error (httpx.RemoteProtocolError), not an HTTP status.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

from starlette.types import Send

from .settings import FaultSettings, StatusBurst

FaultAction = Literal["none", "drop", "status", "error"]


class InjectedDrop(Exception):
    """Raised to make the server drop a connection on purpose."""


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one /api request."""

    latency_s: float = 0.0
    action: FaultAction = "none"
    status: int = 0
    retry_after: int | None = None
    after_processing: bool = False


NO_FAULT = FaultDecision()


class FaultInjector:
    """Holds the active fault settings and decides, request by request, which fault fires.

    Only the event loop calls it, so it needs no lock. With a `seed`, the sequence of decisions for a
    sequence of requests is reproducible.
    """

    def __init__(self, settings: FaultSettings):
        self._rng = random.Random()
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        """Replace the whole fault configuration (omitted settings are off); reseed when seeded."""
        self._settings = settings
        self._drop_next = settings.drop_next
        self._burst: StatusBurst | None = settings.status_burst.model_copy() if settings.status_burst else None
        if settings.seed is not None:
            self._rng = random.Random(settings.seed)

    def snapshot(self) -> dict[str, Any]:
        """The active settings, with the remaining counts of `drop_next` and `status_burst`."""
        state = self._settings.model_dump()
        state["drop_next"] = self._drop_next
        state["status_burst"] = self._burst.model_dump() if self._burst and self._burst.count else None
        return state

    def decide(self, endpoint: str) -> FaultDecision:
        """Consume counters and draw from the RNG for one request to ``endpoint`` ("POST /api/...")."""
        s = self._settings
        if s.endpoint is not None and s.endpoint != endpoint:
            return NO_FAULT
        latency = s.latency_ms / 1000.0
        after = s.drop_after_processing
        if self._drop_next > 0:
            self._drop_next -= 1
            return FaultDecision(latency, "drop", after_processing=after)
        burst = self._burst
        if burst is not None and burst.count > 0:
            burst.count -= 1
            return FaultDecision(latency, "status", burst.status, burst.retry_after)
        if s.drop_rate > 0 and self._rng.random() < s.drop_rate:
            return FaultDecision(latency, "drop", after_processing=after)
        if s.error_rate > 0 and self._rng.random() < s.error_rate:
            return FaultDecision(latency, "error", 500)
        if latency:
            return FaultDecision(latency)
        return NO_FAULT


async def drop_connection(send: Send) -> None:
    """Start a response that promises a body, then raise so the server closes the connection."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"msg": "', "more_body": True})
    raise InjectedDrop("connection dropped by fault injection")


class _HideInjectedDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for every deliberate drop."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedDrop))


_drop_filter = _HideInjectedDrops()


def quiet_injected_drops() -> None:
    """Install (once) the log filter that hides tracebacks of injected drops."""
    logger = logging.getLogger("uvicorn.error")
    if _drop_filter not in logger.filters:
        logger.addFilter(_drop_filter)
