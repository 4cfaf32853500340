"""The retry policy's table, decided once for every failure the client meets."""

from __future__ import annotations

import random

from smartingest.iterable.retry import BadCredentials, GiveUp, RetryLater, RetryPolicy, SplitBatch, parse_retry_after


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
