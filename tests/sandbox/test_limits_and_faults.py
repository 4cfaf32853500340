"""Rate limits and fault injection, over real HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from smartingest.sandbox import FaultSettings, StatusBurst
from smartingest.sandbox.ratelimit import RateLimiter

from .helpers import api_client, assert_envelope, bulk, get_user, start_server


@pytest.fixture
def limited(tmp_path):
    """A server with rate limits on, and a client for it."""
    server = start_server(tmp_path, rate_limits=True)
    with api_client(server) as client:
        yield client
    server.stop()


def statuses(client: httpx.Client, method: str, path: str, count: int, **kwargs) -> list[int]:
    return [client.request(method, path, **kwargs).status_code for _ in range(count)]


# ---- rate limits


# Over HTTP, a slow (loaded) machine refills buckets between requests, so these tests assert what
# holds at any speed: the full burst passes, and sending many more requests meets a 429. Exact counts
# are tested on the limiter with a fake clock below.


def test_get_fields_allows_a_burst_of_3_then_429(limited):
    codes = statuses(limited, "GET", "/api/users/getFields", 20)
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    assert set(codes) == {200, 429}
    refused = next(r for r in (limited.get("/api/users/getFields") for _ in range(20)) if r.status_code == 429)
    assert_envelope(refused, 429, "RateLimitExceeded")


def test_bulk_update_allows_5_per_second(limited):
    codes = statuses(limited, "POST", "/api/users/bulkUpdate", 30, json={"users": []})
    assert codes[:5] == [200] * 5
    assert 429 in codes[5:]
    time.sleep(0.45)  # refills 2 tokens at 5/s
    assert limited.post("/api/users/bulkUpdate", json={"users": []}).status_code == 200


def test_rate_limits_are_per_endpoint(limited):
    assert 429 in statuses(limited, "GET", "/api/users/getFields", 20)
    assert limited.get("/api/users/getByEmail", params={"email": "a@example.com"}).status_code == 200


def test_rate_limit_scale_multiplies_the_burst(tmp_path):
    server = start_server(tmp_path, rate_limits=True, rate_limit_scale=2.0)
    try:
        with api_client(server) as client:
            codes = statuses(client, "GET", "/api/users/getFields", 30)
        assert codes[:6] == [200] * 6
        assert 429 in codes[6:]
    finally:
        server.stop()


def test_rate_limits_off_never_429(email_client):
    assert set(statuses(email_client, "GET", "/api/users/getFields", 20)) == {200}


def test_token_bucket_refills_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    endpoint = "POST /api/users/bulkUpdate"
    assert [limiter.check("k", endpoint) is None for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.2  # one token at 5/s
    assert limiter.check("k", endpoint) is None
    assert limiter.check("k", endpoint) is not None
    assert limiter.check("other-key", endpoint) is None  # buckets are per API key


def test_scale_multiplies_rate_and_burst():
    now = [0.0]
    limiter = RateLimiter(scale=2.0, clock=lambda: now[0])
    endpoint = "GET /api/users/getFields"
    assert [limiter.check("k", endpoint) is None for _ in range(7)] == [True] * 6 + [False]
    now[0] += 0.5  # 3 tokens at 6/s
    assert [limiter.check("k", endpoint) is None for _ in range(4)] == [True] * 3 + [False]


def test_disabled_limiter_allows_everything():
    limiter = RateLimiter(enabled=False, clock=lambda: 0.0)
    assert all(limiter.check("k", "POST /api/users/bulkUpdate") is None for _ in range(100))


def test_forget_daily_cap():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], daily_cap=10)
    allowed = 0
    for _ in range(30):
        now[0] += 100.0  # far apart: the per-second bucket never limits
        allowed += limiter.check("k", "POST /api/users/forget") is None
    assert allowed == 10
    assert "daily cap of 10" in (limiter.check("k", "POST /api/users/forget") or "")
    assert limiter.check("k", "POST /api/users/unforget") is None  # each endpoint has its own cap
    now[0] += 86_400
    assert limiter.check("k", "POST /api/users/forget") is None


def test_daily_cap_is_1000_by_default_and_holds_without_rate_limits():
    now = [0.0]
    limiter = RateLimiter(enabled=False, clock=lambda: now[0])
    assert sum(limiter.check("k", "POST /api/users/forget") is None for _ in range(1001)) == 1000
    assert RateLimiter(enabled=False, daily_cap=None).check("k", "POST /api/users/forget") is None


def test_per_minute_limits_allow_a_burst_of_a_minute():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    endpoint = "GET /api/lists/getUsers"
    assert [limiter.check("k", endpoint) is None for _ in range(6)] == [True] * 5 + [False]
    now[0] += 11.0  # less than one token at 5/minute
    assert limiter.check("k", endpoint) is not None
    now[0] += 1.5
    assert limiter.check("k", endpoint) is None


# ---- faults


def put_faults(client: httpx.Client, **faults) -> dict:
    response = client.put("/_sandbox/faults", json=faults)
    assert response.status_code == 200, response.text
    return response.json()


def test_error_rate_answers_500_generic_error_and_applies_nothing(email_client):
    put_faults(email_client, error_rate=1.0)
    response = email_client.post("/api/users/update", json={"email": "a@example.com"})
    assert_envelope(response, 500, "GenericError")
    assert email_client.get("/_sandbox/stats").status_code == 200  # admin routes never fault
    put_faults(email_client)
    assert get_user(email_client, "a@example.com") == {}


def test_status_burst_answers_the_next_n_requests(email_client):
    put_faults(email_client, status_burst={"count": 2, "status": 429, "retry_after": 3})
    first, second, third = (email_client.get("/api/users/getFields") for _ in range(3))
    assert_envelope(first, 429, "RateLimitExceeded")
    assert first.headers["Retry-After"] == "3"
    assert_envelope(second, 429, "RateLimitExceeded")
    assert third.status_code == 200
    assert email_client.get("/_sandbox/faults").json()["status_burst"] is None


def test_status_burst_503_without_retry_after(email_client):
    put_faults(email_client, status_burst={"count": 1, "status": 503})
    response = email_client.post("/api/users/bulkUpdate", json={"users": [{"email": "a@example.com"}]})
    assert_envelope(response, 503, "GenericError")
    assert "Retry-After" not in response.headers
    assert get_user(email_client, "a@example.com") == {}


def test_latency(email_client):
    put_faults(email_client, latency_ms=300)
    started = time.perf_counter()
    assert email_client.get("/api/users/getFields").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_drop_next_drops_the_connection(email_client):
    put_faults(email_client, drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        email_client.post("/api/users/update", json={"email": "a@example.com"})
    assert get_user(email_client, "a@example.com") == {}  # dropped before processing
    assert email_client.post("/api/users/update", json={"email": "a@example.com"}).status_code == 200
    stats = email_client.get("/_sandbox/stats").json()
    assert stats["requests"]["POST /api/users/update"] == {"dropped": 1, "200": 1}


def test_drop_after_processing_applies_the_update(email_client):
    put_faults(email_client, drop_next=1, drop_after_processing=True)
    with pytest.raises(httpx.RemoteProtocolError):
        email_client.post("/api/users/update", json={"email": "a@example.com", "dataFields": {"n": 1}})
    assert get_user(email_client, "a@example.com")["user"]["dataFields"] == {"n": 1}


def test_seeded_drop_rate_is_deterministic(email_client):
    def outcomes() -> list[str]:
        put_faults(email_client, drop_rate=0.5, seed=1234)
        seen = []
        for _ in range(12):
            try:
                seen.append(str(email_client.get("/api/users/getFields").status_code))
            except httpx.TransportError:
                seen.append("dropped")
        return seen

    first = outcomes()
    assert "dropped" in first and "200" in first
    assert outcomes() == first


def test_faults_given_at_start(tmp_path):
    faults = FaultSettings(status_burst=StatusBurst(count=1, status=502))
    server = start_server(tmp_path, faults=faults)
    try:
        with api_client(server) as client:
            assert client.get("/api/users/getFields").status_code == 502
            assert client.get("/api/users/getFields").status_code == 200
            client.post("/_sandbox/reset")  # reset restores the faults given at start
            assert client.get("/api/users/getFields").status_code == 502
    finally:
        server.stop()


def test_invalid_fault_settings_are_400(email_client):
    assert email_client.put("/_sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert email_client.put("/_sandbox/faults", json={"nonsense": 1}).status_code == 400


def test_faults_endpoints_and_stats(email_client):
    state = put_faults(email_client, error_rate=0.25, drop_next=2, seed=7)
    assert state["error_rate"] == 0.25 and state["drop_next"] == 2 and state["seed"] == 7
    cleared = email_client.delete("/_sandbox/faults").json()
    assert cleared["error_rate"] == 0 and cleared["drop_next"] == 0
    bulk(email_client, [{"email": "a@example.com"}])
    email_client.get("/api/users/getFields")
    stats = email_client.get("/_sandbox/stats").json()
    assert stats["requests"] == {
        "GET /api/users/getFields": {"200": 1},
        "POST /api/users/bulkUpdate": {"200": 1},
    }
    assert stats["total_requests"] == 2
    assert stats["users"] == 1 and stats["fields"] == 0
