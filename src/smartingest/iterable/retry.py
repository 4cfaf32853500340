"""The one retry policy: what each failure means, and how long to wait before trying again.

no response (timeout, refused, dropped)  -> retry with backoff
429 RateLimitExceeded                    -> retry, honouring Retry-After
5xx                                      -> retry with backoff
413 / 400 on a batch of several rows     -> split the batch to isolate the bad rows
401                                      -> the API key is wrong: stop the run
other 4xx                                -> give up on the rows, with Iterable's reason
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

MAX_RETRY_AFTER_SECONDS = 120.0


@dataclass(frozen=True)
class RetryLater:
    delay: float
    reason: str


@dataclass(frozen=True)
class SplitBatch:
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(frozen=True)
class BadCredentials:
    reason: str


Decision = RetryLater | SplitBatch | GiveUp | BadCredentials


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff within a number of attempts per request."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay before attempt ``attempt + 1`` (attempt counts from 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def on_status(self, status: int, reason: str, attempt: int, rows: int, retry_after: str | None) -> Decision:
        """Decide after an HTTP answer other than 2xx."""
        if status == 401:
            return BadCredentials(reason)
        if status == 429 or status >= 500 or status == 408:
            return self._later(attempt, reason, retry_after)
        if status in (400, 413) and rows > 1:
            return SplitBatch(reason)
        return GiveUp(reason)

    def on_transport_error(self, reason: str, attempt: int) -> Decision:
        """Decide after a request that got no complete answer."""
        return self._later(attempt, reason, None)

    def _later(self, attempt: int, reason: str, retry_after: str | None) -> Decision:
        if attempt >= self.max_attempts:
            return GiveUp(f"{reason} (gave up after {attempt} attempts)")
        delay = self.backoff(attempt)
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            delay = max(delay, min(hinted, MAX_RETRY_AFTER_SECONDS))
        return RetryLater(delay, reason)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
