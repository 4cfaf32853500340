"""The opt-in record of received requests (`record_requests`, `/_sandbox/requests`), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartingest.sandbox import SandboxServer

from .helpers import api_client, start_server

BULK = "POST /api/users/bulkUpdate"


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[httpx.Client]:
    """A client of a sandbox that keeps the last 2 requests per endpoint."""
    server: SandboxServer = start_server(tmp_path, record_requests=2)
    try:
        with api_client(server) as client:
            yield client
    finally:
        server.stop()


def _bodies(client: httpx.Client, endpoint: str) -> list[str]:
    return [r["body"] for r in client.get("/_sandbox/requests").json()["requests"].get(endpoint, [])]


def test_nothing_is_recorded_unless_asked_for(email_client: httpx.Client) -> None:
    email_client.post("/api/users/bulkUpdate", json={"users": [{"email": "a@example.com"}]}).raise_for_status()
    assert email_client.get("/_sandbox/requests").json() == {"record_requests": 0, "requests": {}}


def test_keeps_the_last_n_requests_per_endpoint_as_received(recording: httpx.Client) -> None:
    for i in range(3):
        body = f'{{"users": [{{"email": "u{i}@example.com"}}]}}'.encode()
        response = recording.post("/api/users/bulkUpdate", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200
    recording.get("/api/users/getByEmail", params={"email": "u1@example.com"}).raise_for_status()

    answer = recording.get("/_sandbox/requests").json()
    assert answer["record_requests"] == 2
    assert _bodies(recording, BULK) == [
        '{"users": [{"email": "u1@example.com"}]}',
        '{"users": [{"email": "u2@example.com"}]}',
    ]
    (lookup,) = answer["requests"]["GET /api/users/getByEmail"]
    assert lookup == {
        "path": "/api/users/getByEmail",
        "query": "email=u1%40example.com",
        "content_type": None,
        "body": "",
    }
    only = recording.get("/_sandbox/requests", params={"endpoint": BULK}).json()["requests"]
    assert list(only) == [BULK]


def test_refused_bodies_are_kept_unauthenticated_and_faulted_requests_are_not(recording: httpx.Client) -> None:
    assert recording.post("/api/users/bulkUpdate", content=b'{"users": [').status_code == 400
    with httpx.Client(base_url=str(recording.base_url)) as anonymous:
        assert anonymous.post("/api/users/bulkUpdate", content=b'{"users": []}').status_code == 401
    recording.put("/_sandbox/faults", json={"status_burst": {"count": 1, "status": 503}}).raise_for_status()
    assert recording.post("/api/users/bulkUpdate", content=b'{"users": [1]}').status_code == 503
    assert _bodies(recording, BULK) == ['{"users": [']


def test_delete_and_reset_clear_the_record(recording: httpx.Client) -> None:
    recording.post("/api/users/bulkUpdate", json={"users": []}).raise_for_status()
    assert recording.delete("/_sandbox/requests").json() == {"record_requests": 2, "requests": {}}
    recording.post("/api/users/bulkUpdate", json={"users": []}).raise_for_status()
    recording.post("/_sandbox/reset").raise_for_status()
    assert _bodies(recording, BULK) == []
