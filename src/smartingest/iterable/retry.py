"""The one retry policy: what each failure means, and how long to wait before trying again.

no response (timeout, refused, dropped)  -> retry with backoff
408, 5xx                                 -> retry with backoff
429 RateLimitExceeded                    -> retry after at least Retry-After (when given)
429 naming a daily cap                   -> send nothing more to that endpoint in this run (rows deferred)
  ... any of these on the last attempt   -> give up for the run (transient: the rows are sent next run)
  ... Retry-After over the ceiling       -> give up for the run at once, naming the wait asked
413 / 400 on a batch of several rows     -> split the batch to isolate the bad rows
401                                      -> the API key is wrong: stop the run
other 4xx                                -> give up on the rows, with Iterable's reason (final)
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass, field

DEFAULT_MAX_RETRY_AFTER_SECONDS = 120.0


@dataclass(frozen=True)
class RetryLater:
    """Send the request again after ``delay`` seconds."""

    delay: float
    reason: str


@dataclass(frozen=True)
class SplitBatch:
    """Iterable refused the whole batch for its content: send each half on its own."""

    reason: str


@dataclass(frozen=True)
class GiveUp:
    """Do not send this request again in this run.

    ``transient`` False: Iterable refused the rows themselves (a final 4xx); resending them unchanged
    fails again. ``transient`` True: a transient failure outlived the retry budget, or Iterable asked
    for a longer wait than the run may spend; nothing is wrong with the rows, the next run sends them.
    """

    reason: str
    transient: bool = False


@dataclass(frozen=True)
class DailyCapReached:
    """Iterable's daily cap for the endpoint is spent: it lifts hours from now, so retrying within the run
    would only wait; the endpoint takes no more requests this run and its rows go to a later run."""

    reason: str


@dataclass(frozen=True)
class BadCredentials:
    """Iterable refused the API key."""

    reason: str


Decision = RetryLater | SplitBatch | GiveUp | DailyCapReached | BadCredentials


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff within a number of attempts per request (see the module docstring).

    A Retry-After answer is honoured: the next attempt waits at least that long, up to
    ``max_retry_after_seconds``. A longer wait is not shortened (that would send before Iterable
    allows) and not waited out (it would hold the run for as long as Iterable asks): the policy gives
    up at once, transiently, and the reason names the wait asked and the setting.
    """

    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    max_retry_after_seconds: float = DEFAULT_MAX_RETRY_AFTER_SECONDS
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay before attempt ``attempt + 1`` (attempt counts from 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def on_status(self, status: int, reason: str, attempt: int, rows: int, retry_after: str | None) -> Decision:
        """Decide after an HTTP answer other than 2xx."""
        if status == 401:
            return BadCredentials(reason)
        if status == 429 and names_daily_cap(reason):
            return DailyCapReached(reason)
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
            return GiveUp(f"Iterable kept failing: {reason} (gave up after {attempt} attempts)", transient=True)
        delay = self.backoff(attempt)
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            if hinted > self.max_retry_after_seconds:
                return GiveUp(
                    f"Iterable asked to wait {hinted:g} s before the next request (Retry-After), longer than "
                    f"the destination's max_retry_after_seconds ({self.max_retry_after_seconds:g} s): {reason}",
                    transient=True,
                )
            delay = max(delay, hinted)
        return RetryLater(delay, reason)


# How Iterable's answer names a daily cap (forget and unforget: "1000 requests per 24 hour period") rather
# than the per-second rate.
_DAILY_CAP = re.compile(r"daily (cap|limit|quota)|per 24 hours?|per day", re.IGNORECASE)


def names_daily_cap(reason: str) -> bool:
    """Whether a 429's reason names a daily cap, not the per-second rate limit."""
    return _DAILY_CAP.search(reason) is not None


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
