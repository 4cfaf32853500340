"""The retry policy's table, decided once for every failure the client meets."""

from __future__ import annotations

import random

from smartingest.iterable.retry import (
    BadCredentials,
    DailyCapReached,
    GiveUp,
    RetryLater,
    RetryPolicy,
    SplitBatch,
    parse_retry_after,
)


def test_policy_table():
    policy = RetryPolicy(max_attempts=3, base_seconds=1, max_seconds=8, rng=random.Random(1))
    assert isinstance(policy.on_status(429, "r", 1, 10, None), RetryLater)
    assert isinstance(policy.on_status(503, "r", 1, 10, None), RetryLater)
    assert isinstance(policy.on_transport_error("timeout", 1), RetryLater)
    assert isinstance(policy.on_status(400, "r", 1, 10, None), SplitBatch)
    assert isinstance(policy.on_status(413, "r", 1, 2, None), SplitBatch)
    assert isinstance(policy.on_status(400, "r", 1, 1, None), GiveUp)
    assert isinstance(policy.on_status(401, "r", 1, 10, None), BadCredentials)
    gave_up = policy.on_status(500, "HTTP 500", 3, 10, None)
    assert isinstance(gave_up, GiveUp)
    assert "after 3 attempts" in gave_up.reason


def test_backoff_grows_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=10, base_seconds=1, max_seconds=8, rng=random.Random(2))
    delays = [policy.backoff(attempt) for attempt in range(1, 7)]
    assert 0.5 <= delays[0] <= 1
    assert all(4 <= d <= 8 for d in delays[3:])
    decision = policy.on_status(429, "r", 1, 1, "30")
    assert isinstance(decision, RetryLater)
    assert decision.delay == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_a_429_naming_a_daily_cap_is_not_retried():
    policy = RetryPolicy(max_attempts=6, rng=random.Random(3))
    capped = "HTTP 429 RateLimitExceeded: Rate limit exceeded: daily cap of 1000 requests per 24 hours reached"
    assert policy.on_status(429, capped, 1, 1, "3600") == DailyCapReached(capped)
    per_second = "HTTP 429 RateLimitExceeded: Rate limit exceeded: rate limit of 3/s exceeded for users/forget"
    assert isinstance(policy.on_status(429, per_second, 1, 1, None), RetryLater)
    # Only a 429 is a cap: another status that mentions one keeps its own meaning.
    assert isinstance(policy.on_status(503, capped.replace("429", "503"), 1, 1, None), RetryLater)
