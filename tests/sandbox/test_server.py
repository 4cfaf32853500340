"""Starting, stopping and restarting the sandbox; the admin API; `python -m smartingest.sandbox`."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from smartingest.sandbox import ProjectTypeMismatchError, SandboxServer, SandboxSettings

from .helpers import API_KEY, all_users, api_client, bulk, data_fields, get_user, start_server, system_fields


def test_port_zero_picks_a_free_port_and_url_shows_it(tmp_path):
    with SandboxServer(SandboxSettings(port=0, data_dir=tmp_path)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert port > 0 and server.url == f"http://127.0.0.1:{port}"
        assert re.fullmatch(r"[0-9a-f]{32}", server.api_key)  # generated with secrets.token_hex(16)
        assert httpx.get(f"{server.url}/_sandbox/health").json() == {"status": "ok", "project_type": "email"}


def test_two_servers_run_side_by_side(tmp_path):
    with (
        SandboxServer(SandboxSettings(port=0, data_dir=tmp_path / "a")) as a,
        SandboxServer(SandboxSettings(port=0, data_dir=tmp_path / "b")) as b,
    ):
        assert a.url != b.url and a.api_key != b.api_key


def test_restart_on_the_same_data_dir_keeps_users_fields_and_forgotten(tmp_path):
    first = start_server(tmp_path)
    with api_client(first) as client:
        users = [{"email": f"u{i}@example.com", "userId": f"id{i}", "dataFields": {"n": i}} for i in range(300)]
        assert bulk(client, users).json()["successCount"] == 300
        client.post("/api/users/forget", json={"email": "u0@example.com"})
    first.stop()

    second = start_server(tmp_path)
    try:
        with api_client(second) as client:
            assert get_user(client, user_id="id7")["user"] == {
                "email": "u7@example.com",
                "userId": "id7",
                "dataFields": {"n": 7},
            }
            assert data_fields(client) == {"n": "long"}
            assert len(all_users(client)) == 299
            body = bulk(client, [{"email": "u0@example.com"}, {"email": "u1@example.com", "dataFields": {"n": "x"}}])
            assert body.status_code == 400  # the type fixed before the restart still holds
            assert bulk(client, [{"email": "u0@example.com"}]).json()["failedUpdates"]["forgottenEmails"] == [
                "u0@example.com"
            ]
    finally:
        second.stop()


def test_restart_with_another_project_type_is_refused(tmp_path):
    start_server(tmp_path, project_type="email").stop()
    with pytest.raises(ProjectTypeMismatchError, match="email"):
        start_server(tmp_path, project_type="hybrid")


def test_admin_users_listing_is_paginated(email_client):
    bulk(email_client, [{"email": f"u{i:03}@example.com", "dataFields": {"i": i}} for i in range(25)])
    page = email_client.get("/_sandbox/users", params={"limit": 10}).json()
    assert page["total"] == 25 and len(page["users"]) == 10 and page["next_after"] is not None
    first = page["users"][0]
    assert set(first) == {"id", "email", "userId", "dataFields", "createdAt", "updatedAt"}
    assert first["email"] == "u000@example.com" and first["dataFields"] == {"i": 0}
    assert [u["email"] for u in all_users(email_client)] == [f"u{i:03}@example.com" for i in range(25)]
    assert email_client.get("/_sandbox/users", params={"limit": 0}).status_code == 400


def test_reset_clears_users_fields_and_stats(email_client):
    bulk(email_client, [{"email": "a@example.com", "dataFields": {"n": 1}}])
    assert email_client.post("/_sandbox/reset").json() == {"reset": True}
    assert all_users(email_client) == []
    assert email_client.get("/api/users/getFields").json() == {"fields": system_fields("email")}  # data fields gone
    stats = email_client.get("/_sandbox/stats").json()
    assert stats["requests"] == {"GET /api/users/getFields": {"200": 1}}
    assert stats["users"] == 0


def test_module_entry_point(tmp_path):
    command = [
        sys.executable,
        "-m",
        "smartingest.sandbox",
        "--port",
        "0",
        "--api-key",
        API_KEY,
        "--project-type",
        "hybrid",
        "--data-dir",
        str(tmp_path),
        "--no-rate-limits",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.fullmatch(
            r"Sandbox listening on (http://127\.0\.0\.1:\d+) \(project type: hybrid\) API key: (\S+)\n", banner
        )
        assert match, banner
        url, key = match.groups()
        assert key == API_KEY
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.post(f"{url}/api/users/update", headers={"Api-Key": key}, json={"userId": "u1"})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.json()["code"] == "Success"
        assert [httpx.get(f"{url}/api/users/getFields", headers={"Api-Key": key}).status_code for _ in range(5)] == [
            200
        ] * 5  # --no-rate-limits
    finally:
        process.terminate()
        process.wait(10)
