"""Users sync settings and limits, over real HTTP: rate limits, body size, project types, nested merges, locks."""

from __future__ import annotations

import httpx
import pytest

from smartingest import service
from smartingest.engine.lock import sync_lock
from smartingest.errors import StateError, SyncLockedError
from smartingest.sandbox import SandboxServer, SandboxSettings
from tests.conftest import API_KEY, SandboxAdmin, create_customers


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


def test_client_stays_under_the_documented_rate_limit(pg, tmp_path, workspace_factory):
    create_customers(pg, 120)
    settings = SandboxSettings(port=0, api_key=API_KEY, data_dir=tmp_path / "limited", rate_limits=True)
    with SandboxServer(settings) as limited:
        admin = SandboxAdmin(limited)
        # 12 requests against bulkUpdate's 5 requests/second; the client paces itself a little below it.
        ws = workspace_factory(
            limited.url, sql=_sql(pg), sync={"batch_size": 10}, destination={"rate_limit_scale": 0.9}
        )
        result = service.run(ws, "customers_to_users")
        assert result.status == "succeeded", result.error
        assert admin.requests(outcome="200") == 12
        assert admin.requests(outcome="429") == 0


def test_requests_stay_under_4mb_and_oversized_users_are_rejected(pg, sandbox, admin, workspace_factory):
    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, bio text)")
    # 30 users of ~300 KB each (9 MB in all) must travel in several requests under the 4 MB cap;
    # one user of 5 MB cannot travel at all.
    pg.execute(
        "INSERT INTO customers SELECT i, 'u' || i || '@example.com', repeat('x', 300000) FROM generate_series(1, 30) i"
    )
    pg.execute("INSERT INTO customers VALUES (31, 'big@example.com', repeat('y', 5 * 1024 * 1024))")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, email, bio from {pg.schema}.customers",
        mappings=[{"from": "email", "to": "email"}, {"from": "bio", "to": "bio"}],
    )
    result = service.run(ws, "customers_to_users")
    assert result.counts["synced"] == 30
    assert result.counts["rejected"] == 1
    [rejected] = service.run_rows(ws, result.run_id, status="rejected")
    assert rejected.pk == "31"
    assert "4 MB" in (rejected.reason or "")
    assert admin.requests(outcome="413") == 0
    assert admin.requests(outcome="200") >= 3


def test_userid_project_matches_on_user_id(pg, tmp_path, workspace_factory):
    create_customers(pg, 20)
    settings = SandboxSettings(
        port=0, api_key=API_KEY, data_dir=tmp_path / "uid", project_type="userid", rate_limits=False
    )
    with SandboxServer(settings) as server:
        ws = workspace_factory(
            server.url,
            sql=_sql(pg),
            destination={"project_type": "userid"},
            sync={"match_on": "user_id"},
            mappings=[{"from": "id", "to": "userId"}, {"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}],
        )
        result = service.run(ws, "customers_to_users")
        assert result.status == "succeeded", result.error
        user = httpx.get(f"{server.url}/api/users/byUserId/7", headers={"Api-Key": API_KEY}).json()["user"]
        assert user["userId"] == "7"
        assert user["email"] == "user7@example.com"
        assert user["dataFields"]["plan"] == "pro"


def test_merge_nested_objects_keeps_other_keys(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    httpx.post(
        f"{sandbox.url}/api/users/update",
        json={"email": "user1@example.com", "dataFields": {"address": {"zip": "75001"}}},
        headers={"Api-Key": API_KEY},
    ).raise_for_status()
    ws = workspace_factory(sandbox.url, sql=_sql(pg), sync={"merge_nested_objects": True})
    assert service.run(ws, "customers_to_users").status == "succeeded"
    user = httpx.get(
        f"{sandbox.url}/api/users/getByEmail", params={"email": "user1@example.com"}, headers={"Api-Key": API_KEY}
    ).json()["user"]
    assert user["dataFields"]["address"] == {"zip": "75001", "city": "Austin"}


def test_a_sync_runs_once_at_a_time(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    with sync_lock(ws.state_dir, "customers_to_users"), pytest.raises(SyncLockedError, match="already running"):
        service.run(ws, "customers_to_users")
    assert service.list_runs(ws) == []


def test_unreadable_snapshot_fails_clearly_and_reset_recovers(pg, sandbox, workspace_factory):
    create_customers(pg, 5)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    assert service.run(ws, "customers_to_users").counts["synced"] == 5
    snapshot = ws.state_dir / "cdc" / "customers_to_users" / "snapshot.parquet"
    snapshot.write_bytes(b"not parquet")
    with pytest.raises(StateError, match="sync reset"):
        service.plan(ws, "customers_to_users")
    failed = service.run(ws, "customers_to_users")
    assert failed.status == "failed"
    assert "sync reset" in (failed.error or "")
    assert service.reset(ws, "customers_to_users") is True
    assert service.run(ws, "customers_to_users").counts["added"] == 5


def test_forgotten_users_are_rejected_and_the_rest_land(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 10)
    httpx.post(
        f"{sandbox.url}/api/users/forget", json={"email": "user4@example.com"}, headers={"Api-Key": API_KEY}
    ).raise_for_status()
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    result = service.run(ws, "customers_to_users")
    assert (result.counts["synced"], result.counts["rejected"]) == (9, 1)
    [rejected] = service.run_rows(ws, result.run_id, status="rejected")
    assert rejected.pk == "4"
    assert "ForgottenUserError" in (rejected.reason or "")
    assert "user4@example.com" not in admin.users()


def test_hybrid_identity_conflicts_are_rejected_per_row(pg, tmp_path, workspace_factory):
    create_customers(pg, 5)
    settings = SandboxSettings(
        port=0, api_key=API_KEY, data_dir=tmp_path / "hybrid", project_type="hybrid", rate_limits=False
    )
    with SandboxServer(settings) as server:
        # user3@example.com and userId 3 already belong to two different users: the row joining them conflicts.
        for existing in ({"email": "someone.else@example.com", "userId": "3"}, {"email": "user3@example.com"}):
            httpx.post(f"{server.url}/api/users/update", json=existing, headers={"Api-Key": API_KEY}).raise_for_status()
        ws = workspace_factory(
            server.url,
            sql=_sql(pg),
            destination={"project_type": "hybrid"},
            mappings=[{"from": "email", "to": "email"}, {"from": "id", "to": "userId"}],
        )
        result = service.run(ws, "customers_to_users")
        assert (result.counts["synced"], result.counts["rejected"]) == (4, 1)
        [rejected] = service.run_rows(ws, result.run_id, status="rejected")
        assert rejected.pk == "3"
        assert "conflict" in (rejected.reason or "")
