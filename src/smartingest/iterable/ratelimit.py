"""Client-side rate limiting: stay under each endpoint's documented limit instead of meeting 429s."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Protocol

from smartingest.errors import MissingDriverError

log = logging.getLogger(__name__)


class RequestPacer:
    """Spaces requests at least ``1 / rate`` seconds apart, measured when each request may go.

    Guarantee: any window of one second holds at most ``ceil(rate)`` requests (``rate`` for every
    integer rate, which all of Iterable's are). There is no initial burst: a bucket that starts full
    lets the first second carry twice the rate. Evenly spaced requests also pass a server that counts
    with a token bucket (burst = rate, refilled at rate, as the sandbox does) with ``rate - 1`` tokens
    to spare, so requests that the network delivers closer together than they were sent are still
    within the limit. The cost is nil at the long run's rate; only the first second is slower.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number")
        self.rate = rate
        self.interval = 1.0 / rate
        self._next = -math.inf  # the earliest moment (time.monotonic) the next request may go
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one request may be sent."""
        async with self._lock:
            # A loop, not one sleep: the event loop may wake a timer a hair early, and the guarantee
            # is about the moment the request goes.
            while (now := time.monotonic()) < self._next:
                await asyncio.sleep(self._next - now)
            self._next = now + self.interval


class Pacer(Protocol):
    """Waits until one more request to an endpoint may be sent."""

    async def acquire(self) -> None: ...


class Pacing(Protocol):
    """Makes the pacer of each endpoint of one Iterable project (one client's), and closes what they share."""

    def pacer(self, endpoint: str, rate: float) -> Pacer: ...

    async def aclose(self) -> None: ...


class LocalPacing:
    """Pacers in this process only: right when one process sends to the project at a time."""

    def pacer(self, endpoint: str, rate: float) -> Pacer:
        return RequestPacer(rate)

    async def aclose(self) -> None:
        return None


# Reserves the next slot of an endpoint, ``interval`` microseconds after the last one reserved, in Redis's
# clock: the same spacing as RequestPacer, for every process reserving on one key.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil(interval / 1000) + 60000)
return slot - now
"""


class RedisPacing:
    """Pacers shared by every process (every worker, every machine) sending to one Iterable project: each
    request reserves its endpoint's next slot in Redis, at the endpoint's rate, and waits for it.

    ``project`` names the project (a digest of its address and API key, never the key). If Redis does not
    answer, a request is paced in this process alone (and it is logged): sending goes on, within the
    limit for this process at least.
    """

    def __init__(self, url: str, project: str) -> None:
        try:
            import redis.asyncio as redis
        except ImportError as exc:
            raise MissingDriverError("rate_limiter type redis needs redis: pip install 'smartingest[workers]'") from exc
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._reserve = self._redis.register_script(_RESERVE)
        self.project = project

    def pacer(self, endpoint: str, rate: float) -> Pacer:
        return _RedisPacer(self, f"smartingest:pace:{self.project}:{endpoint}", rate)

    async def aclose(self) -> None:
        await self._redis.aclose()


class _RedisPacer:
    def __init__(self, pacing: RedisPacing, key: str, rate: float) -> None:
        if rate <= 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number")
        self.pacing = pacing
        self.key = key
        self.interval_us = max(1, round(1_000_000 / rate))
        self._fallback = RequestPacer(rate)

    async def acquire(self) -> None:
        try:
            wait_us = await self.pacing._reserve(keys=[self.key], args=[self.interval_us])
        except Exception as exc:  # any failure of Redis or the connection: pace here instead
            log.warning("shared pacing unavailable (%s): pacing %s in this process only", exc, self.key)
            await self._fallback.acquire()
            return
        if wait_us > 0:
            await asyncio.sleep(int(wait_us) / 1_000_000)
