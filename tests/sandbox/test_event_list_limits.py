"""The rate limits of the event and list endpoints, from the contract's descriptions, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from .helpers import api_client, assert_envelope, start_server


@pytest.fixture
def limited(tmp_path):
    """A server with rate limits on, and a client for it."""
    server = start_server(tmp_path, rate_limits=True)
    with api_client(server) as client:
        yield client
    server.stop()


def statuses(client: httpx.Client, method: str, path: str, count: int, **kwargs) -> list[int]:
    return [client.request(method, path, **kwargs).status_code for _ in range(count)]


def test_track_bulk_allows_10_per_second(limited):
    codes = statuses(limited, "POST", "/api/events/trackBulk", 40, json={"events": []})
    assert codes[:10] == [200] * 10
    assert 429 in codes[10:]


@pytest.mark.parametrize("path", ["/api/lists/getUsers?listId={id}", "/api/lists/{id}/size"])
def test_list_members_and_size_allow_5_per_minute(limited, path):
    list_id = limited.post("/api/lists", json={"name": "L"}).json()["listId"]
    codes = statuses(limited, "GET", path.format(id=list_id), 7)
    # A token comes back every 12 seconds: the sixth request, right after the burst, is refused.
    assert codes[:5] == [200] * 5
    assert codes[5] == 429
    assert_envelope(limited.get(path.format(id=list_id)), 429, "RateLimitExceeded")


def test_endpoints_whose_description_states_no_rate_are_not_limited(limited):
    list_id = limited.post("/api/lists", json={"name": "L"}).json()["listId"]
    body = {"listId": list_id, "subscribers": []}
    assert set(statuses(limited, "POST", "/api/lists/subscribe", 30, json=body)) == {200}
    assert set(statuses(limited, "POST", "/api/lists", 30, json={"name": "more"})) == {200}
