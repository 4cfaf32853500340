"""Per-endpoint rate limits, per API key, as token buckets.

Each endpoint has Iterable's documented rate (requests/second); its bucket holds at most that many
tokens (a burst of one second's worth) and refills continuously. `scale` multiplies both rate and
burst. The forget/unforget endpoints also have a daily cap of 1000 requests in any 24 hours (scaled
too). Only the event loop touches a limiter, so it needs no lock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Requests per second, from each endpoint's description in the contract. Keys are route names.
# An endpoint whose description states no rate (POST /api/users/updateEmail) is not limited.
RATES: dict[str, float] = {
    "POST /api/users/update": 500,
    "POST /api/users/bulkUpdate": 5,
    "GET /api/users/getByEmail": 100,
    "GET /api/users/{email}": 100,
    "GET /api/users/byUserId": 100,
    "GET /api/users/byUserId/{userId}": 100,
    "DELETE /api/users/{email}": 100,
    "DELETE /api/users/byUserId/{userId}": 100,
    "GET /api/users/getFields": 3,
    "POST /api/users/forget": 3,
    "POST /api/users/unforget": 3,
    "GET /api/users/forgotten": 3,
    "GET /api/users/forgottenUserIds": 3,
    # Catalogs: only these four state a rate; the other catalog endpoints are not limited.
    "GET /api/catalogs": 100,
    "GET /api/catalogs/{catalogName}/items": 100,
    "POST /api/catalogs/{catalogName}/items": 100,
    "PUT /api/catalogs/{catalogName}/items/{itemId}": 1000,
}
DAILY_CAPS: dict[str, int] = {"POST /api/users/forget": 1000, "POST /api/users/unforget": 1000}
DAY_SECONDS = 86_400.0


@dataclass
class TokenBucket:
    """A bucket of `capacity` tokens refilled at `rate` tokens per second."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Take one token if there is one; False when the bucket is empty."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Decides whether one request of an endpoint, made with an API key, is within the limits."""

    def __init__(self, enabled: bool = True, scale: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.scale = scale
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._daily: dict[tuple[str, str], deque[float]] = {}

    def check(self, api_key: str, endpoint: str) -> str | None:
        """Count one request; returns None when allowed, else the reason it is refused."""
        if not self.enabled or endpoint not in RATES:
            return None
        now = self._clock()
        key = (api_key, endpoint)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = RATES[endpoint] * self.scale
            capacity = max(1.0, rate)
            bucket = self._buckets[key] = TokenBucket(rate, capacity, capacity, now)
        cap = DAILY_CAPS.get(endpoint)
        if cap is not None:
            window = self._daily.setdefault(key, deque())
            while window and now - window[0] >= DAY_SECONDS:
                window.popleft()
            if len(window) >= max(1, round(cap * self.scale)):
                return f"daily cap of {cap} requests per 24 hours reached for {endpoint}"
        if not bucket.take(now):
            return f"rate limit of {RATES[endpoint]:g} requests/second exceeded for {endpoint}"
        if cap is not None:
            window.append(now)
        return None

    def reset(self) -> None:
        """Forget all buckets and daily counts (every bucket starts full again)."""
        self._buckets.clear()
        self._daily.clear()
