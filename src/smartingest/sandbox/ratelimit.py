"""Per-endpoint rate limits, per API key, as token buckets.

Each endpoint has Iterable's documented rate (requests/second); its bucket holds at most that many
tokens (a burst of one second's worth, or of one minute's worth for the endpoints limited per minute)
and refills continuously. `scale` multiplies both rate and burst. The forget/unforget endpoints also
have a daily cap (Iterable's is 1000 requests in any 24 hours, per project): it is a setting of its
own, not scaled, and holds even when the per-second limits are off, so tests can lower it. Only the
event loop touches a limiter, so it needs no lock.
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
    "POST /api/events/track": 2000,
    "POST /api/events/trackBulk": 10,
    "GET /api/events/{email}": 100,
    "GET /api/events/byUserId/{userId}": 100,
    "GET /api/lists": 100,
    "GET /api/lists/getUsers": 5 / 60,
    "GET /api/lists/{listId}/size": 5 / 60,
}
# Endpoints limited per minute: their burst is one minute's worth, not one second's.
BURSTS: dict[str, float] = {"GET /api/lists/getUsers": 5, "GET /api/lists/{listId}/size": 5}
# Endpoints with a daily cap (the contract's "Daily Cap: 1000 requests per 24 hour period").
DAILY_CAPPED: frozenset[str] = frozenset({"POST /api/users/forget", "POST /api/users/unforget"})
DEFAULT_DAILY_CAP = 1000
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

    def __init__(
        self,
        enabled: bool = True,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        daily_cap: int | None = DEFAULT_DAILY_CAP,
    ):
        self.enabled = enabled
        self.scale = scale
        self.daily_cap = daily_cap  # requests per 24 hours of each DAILY_CAPPED endpoint; None: no cap
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._daily: dict[tuple[str, str], deque[float]] = {}

    def check(self, api_key: str, endpoint: str) -> str | None:
        """Count one request; returns None when allowed, else the reason it is refused.

        A request refused by the daily cap takes no token; one refused by the rate does not count
        toward the daily cap.
        """
        now = self._clock()
        key = (api_key, endpoint)
        window: deque[float] | None = None
        if self.daily_cap is not None and endpoint in DAILY_CAPPED:
            window = self._daily.setdefault(key, deque())
            while window and now - window[0] >= DAY_SECONDS:
                window.popleft()
            if len(window) >= self.daily_cap:
                return f"daily cap of {self.daily_cap} requests per 24 hours reached for {endpoint}"
        if self.enabled and endpoint in RATES and not self._bucket(key, endpoint, now).take(now):
            return f"rate limit of {_describe_rate(endpoint)} exceeded for {endpoint}"
        if window is not None:
            window.append(now)
        return None

    def _bucket(self, key: tuple[str, str], endpoint: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = RATES[endpoint] * self.scale
            capacity = max(1.0, BURSTS.get(endpoint, RATES[endpoint]) * self.scale)
            bucket = self._buckets[key] = TokenBucket(rate, capacity, capacity, now)
        return bucket

    def reset(self) -> None:
        """Forget all buckets and daily counts (every bucket starts full again); the cap stays."""
        self._buckets.clear()
        self._daily.clear()


def _describe_rate(endpoint: str) -> str:
    if endpoint in BURSTS:
        return f"{BURSTS[endpoint]:g} requests/minute"
    return f"{RATES[endpoint]:g} requests/second"
