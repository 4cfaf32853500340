"""Client-side rate limiting: stay under each endpoint's documented limit instead of meeting 429s."""

from __future__ import annotations

import asyncio
import math
import time


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
