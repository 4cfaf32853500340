"""Deleting, forgetting and unforgetting users end to end: real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from smartingest import service
from smartingest.errors import ConfigError
from smartingest.sandbox import SandboxServer, SandboxSettings
from tests.conftest import API_KEY, SandboxAdmin

SYNC = "customers_to_users"
EMAIL = {"from": "email", "to": "email"}
USER_ID = {"from": "user_id", "to": "userId"}


def _api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Api-Key": API_KEY}, timeout=30)


def _seed(url: str, users: list[dict[str, Any]]) -> None:
    """Users already in the project, made through its own API."""
    with _api(url) as api:
        answer = api.post("/api/users/bulkUpdate", json={"users": users})
    answer.raise_for_status()
    assert answer.json()["failCount"] == 0


def _forgotten(url: str) -> set[str]:
    """SHA-256 of each forgotten email, as the project lists them."""
    with _api(url) as api:
        return set(api.get("/api/users/forgotten").json()["hashedEmails"])


def _sha(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def _people(pg, rows: list[tuple[int, str | None, str | None]]) -> str:
    pg.execute("CREATE TABLE people (id int PRIMARY KEY, email text, user_id text)")
    for row in rows:
        pg.execute("INSERT INTO people VALUES (%s, %s, %s)", row)
    return f"select id, email, user_id from {pg.schema}.people"


def _workspace(workspace_factory, url: str, sql: str, action: str, match_on: str = "email", **extra: Any):
    return workspace_factory(
        url,
        sql=sql,
        mappings=[EMAIL if match_on == "email" else USER_ID],
        sync={"type": "user_deletion", "action": action, "match_on": match_on, "batch_size": None},
        **extra,
    )


def _accounted(counts: dict[str, int]) -> None:
    assert counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"]
    changes = counts["added"] + counts["changed"] + counts["removed"]
    verdicts = ("synced", "rejected", "retried_next_run", "deferred", "skipped")
    assert changes == sum(counts[name] for name in verdicts)


def _outcomes(ws, run_id: int) -> dict[str, tuple[str, str | None, str | None]]:
    return {row.pk: (row.status, row.code, row.reason) for row in service.run_rows(ws, run_id, limit=1000)}


def test_delete_fires_once_per_new_key_and_leaves_the_others(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": f"user{i}@example.com", "dataFields": {"n": i}} for i in range(1, 8)])
    sql = _people(pg, [(1, "user1@example.com", None), (2, "user2@example.com", None), (3, "user3@example.com", None)])
    ws = _workspace(workspace_factory, sandbox.url, sql, "delete")

    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    assert (first.counts["added"], first.counts["synced"]) == (3, 3)
    assert admin.requests("DELETE /api/users/{email}", "200") == 3
    assert set(admin.users()) == {f"user{i}@example.com" for i in range(4, 8)}

    # A user made again after its row was deleted stays: the row's key is not new.
    _seed(sandbox.url, [{"email": "user1@example.com"}])
    pg.execute("INSERT INTO people VALUES (4, 'user4@example.com', NULL), (5, 'USER5@example.com', NULL)")
    pg.execute("UPDATE people SET email = 'user6@example.com' WHERE id = 2")  # changed: sends nothing
    pg.execute("DELETE FROM people WHERE id = 3")  # removed: sends nothing
    second = service.run(ws, SYNC)
    assert second.status == "succeeded", second.error
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (2, 1, 1)
    assert second.counts["synced"] == 4
    assert second.delivery["rows_sent"] == 2
    _accounted(second.counts)
    # The model says: keys 1-5 fired once each when first seen; users 6 and 7 were never named by a new key.
    assert set(admin.users()) == {"user1@example.com", "user6@example.com", "user7@example.com"}
    assert service.run(ws, SYNC).delivery["requests"] == 0


def test_delete_by_user_id_and_what_delete_refuses(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": "ann@example.com", "userId": "u/ann"}, {"email": "bob@example.com", "userId": "u-b"}])
    sql = _people(
        pg,
        [
            (1, None, "u/ann"),  # a slash is sent percent-encoded: it names the user, not a path
            (2, None, "u-nobody"),  # no such user: skipped, nothing to delete
            (3, None, ".."),  # a dot segment could name another path: refused before sending
            (4, None, None),  # no identifier
        ],
    )
    ws = _workspace(workspace_factory, sandbox.url, sql, "delete", match_on="user_id")
    result = service.run(ws, SYNC)
    assert result.status == "warning"
    _accounted(result.counts)
    outcomes = _outcomes(ws, result.run_id)
    assert {pk: (status, code) for pk, (status, code, _) in outcomes.items()} == {
        "1": ("synced", None),
        "2": ("skipped", "no_such_user"),
        "3": ("rejected", "invalid_user_id"),
        "4": ("rejected", "no_identifier"),
    }
    assert "UnknownUserIdError" in outcomes["2"][2]
    assert admin.requests("DELETE /api/users/byUserId/{userId}") == 2
    assert set(admin.users()) == {"bob@example.com"}
    # The skipped row is committed: it is not sent again.
    again = service.run(ws, SYNC)
    assert (again.counts["added"], again.counts["unchanged"]) == (2, 2)


def test_delete_by_email_refusals(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": "a/b@example.com"}])
    sql = _people(
        pg,
        [
            (1, "a/b@example.com", None),
            (2, "nobody@example.com", None),
            (3, "forget", None),  # no '@': DELETE /api/users/forget would be another route
            (4, "two@@example.com", None),  # malformed: Iterable refuses it
        ],
    )
    ws = _workspace(workspace_factory, sandbox.url, sql, "delete")
    result = service.run(ws, SYNC)
    outcomes = _outcomes(ws, result.run_id)
    assert {pk: (status, code) for pk, (status, code, _) in outcomes.items()} == {
        "1": ("synced", None),
        "2": ("skipped", "no_such_user"),
        "3": ("rejected", "invalid_email"),
        "4": ("rejected", "invalid_email"),
    }
    assert "no '@'" in outcomes["3"][2]
    assert "InvalidEmailAddressError" in outcomes["4"][2]
    assert admin.requests("DELETE /api/users/{email}") == 3
    assert admin.users() == {}


def test_forget_then_unforget(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": f"user{i}@example.com", "userId": f"u-{i}"} for i in range(1, 5)])
    sql = _people(pg, [(1, "user1@example.com", None), (2, "User2@Example.com", None), (3, "not-an-email", None)])
    ws = _workspace(workspace_factory, sandbox.url, sql, "forget")
    first = service.run(ws, SYNC)
    assert (first.counts["synced"], first.counts["rejected"]) == (2, 1)
    outcomes = _outcomes(ws, first.run_id)
    assert outcomes["3"][:2] == ("rejected", "invalid_email")
    assert "InvalidEmailAddressError" in outcomes["3"][2]
    assert _forgotten(sandbox.url) == {_sha("user1@example.com"), _sha("user2@example.com")}
    assert set(admin.users()) == {"user3@example.com", "user4@example.com"}
    with _api(sandbox.url) as api:
        refused = api.post("/api/users/bulkUpdate", json={"users": [{"email": "user1@example.com"}]}).json()
    assert refused["failedUpdates"]["forgottenEmails"] == ["user1@example.com"]

    pg.execute("INSERT INTO people VALUES (4, 'user4@example.com', NULL)")
    second = service.run(ws, SYNC)
    assert (second.counts["added"], second.counts["synced"]) == (2, 1)  # row 3 again, and row 4
    assert _forgotten(sandbox.url) == {_sha(f"user{i}@example.com") for i in (1, 2, 4)}

    # The same sync, now unforgetting: keys already committed are not new, so they fire nothing (only
    # row 3, never committed, is sent) until the snapshot is reset.
    unforget = _workspace(workspace_factory, sandbox.url, f"{sql} where id in (1, 2, 3)", "unforget")
    before_reset = service.run(unforget, SYNC)
    assert (before_reset.counts["changed"], before_reset.counts["added"]) == (2, 1)
    assert (before_reset.delivery["rows_sent"], before_reset.counts["rejected"]) == (1, 1)
    assert len(_forgotten(sandbox.url)) == 3
    service.reset(unforget, SYNC)
    result = service.run(unforget, SYNC)
    assert (result.counts["synced"], result.counts["rejected"], result.delivery["rows_sent"]) == (2, 1, 3)
    status, code, reason = _outcomes(unforget, result.run_id)["3"]
    assert (status, code) == ("rejected", "invalid_email")
    assert "InvalidEmailAddressError" in reason
    assert _forgotten(sandbox.url) == {_sha("user4@example.com")}
    _seed(sandbox.url, [{"email": "user1@example.com"}])  # updates of the user are accepted again


def test_forget_over_the_daily_cap_is_deferred_and_sent_by_a_later_run(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    _seed(sandbox.url, [{"email": f"user{i}@example.com"} for i in range(1, 11)])
    sql = _people(pg, [(i, f"user{i}@example.com", None) for i in range(1, 11)])
    # One request at a time, so the 429 that names the cap is the only request past it.
    ws = _workspace(workspace_factory, sandbox.url, sql, "forget", destination={"max_concurrent_requests": 1})
    admin.http.patch("/_sandbox/settings", json={"gdpr_daily_cap": 4}).raise_for_status()

    capped = service.run(ws, SYNC)
    assert capped.status == "warning"
    assert capped.error is None  # a cap is not a failure of the run
    assert (capped.counts["synced"], capped.counts["deferred"]) == (4, 6)
    _accounted(capped.counts)
    deferred = service.run_rows(ws, capped.run_id, status="deferred")
    assert {row.code for row in deferred} == {"daily_cap"}
    assert all("daily cap of 4 requests per 24 hours" in (row.reason or "") for row in deferred)
    # Learnt from the first 429: no retry of it, and no further request for the run's other rows.
    assert admin.requests("POST /api/users/forget", "429") == 1
    assert (capped.delivery["gave_up"], capped.delivery["retries"]) == (1, 0)
    assert len(_forgotten(sandbox.url)) == 4

    still_capped = service.run(ws, SYNC)
    assert (still_capped.counts["added"], still_capped.counts["deferred"]) == (6, 6)
    assert admin.requests("POST /api/users/forget", "429") == 2

    admin.http.patch("/_sandbox/settings", json={"gdpr_daily_cap": 1000}).raise_for_status()
    later = service.run(ws, SYNC)
    assert later.status == "succeeded", later.error
    assert (later.counts["added"], later.counts["synced"], later.counts["unchanged"]) == (6, 6, 4)
    assert _forgotten(sandbox.url) == {_sha(f"user{i}@example.com") for i in range(1, 11)}
    assert admin.users() == {}


def test_forget_is_paced_to_the_contract_rate_and_meets_no_429(pg, tmp_path, workspace_factory):
    # The sandbox enforces forget's 3 requests/second (scaled by 10 on both sides to keep the test short).
    settings = SandboxSettings(
        port=0, api_key=API_KEY, data_dir=tmp_path / "limited", rate_limits=True, rate_limit_scale=10
    )
    with SandboxServer(settings) as limited:
        sql = _people(pg, [(i, f"user{i}@example.com", None) for i in range(1, 46)])
        ws = _workspace(
            workspace_factory,
            limited.url,
            sql,
            "forget",
            destination={"rate_limit_scale": 10, "max_concurrent_requests": 8},
        )
        result = service.run(ws, SYNC)
        assert result.status == "succeeded", result.error
        assert result.counts["synced"] == 45
        assert result.delivery["throttled"] == 0
        assert result.delivery["requests"] == 45


def test_retried_requests_and_sync_plan(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": "ann@example.com"}, {"email": "bob@example.com"}])
    sql = _people(pg, [(1, "ann@example.com", None), (2, "bob@example.com", None)])
    ws = _workspace(workspace_factory, sandbox.url, sql, "delete")
    plan = service.plan(ws, SYNC)
    assert plan.request == "DELETE /api/users/{email}"
    # A DELETE has no body: the sample shows the value its path is filled with.
    assert plan.sample_requests == [{"email": "ann@example.com"}]
    assert admin.requests("DELETE /api/users/{email}") == 0

    admin.faults(endpoint="DELETE /api/users/{email}", status_burst={"count": 2, "status": 503})
    result = service.run(ws, SYNC)
    assert result.status == "succeeded", result.error
    assert (result.delivery["server_errors"], result.counts["synced"]) == (2, 2)
    assert admin.users() == {}

    forget = _workspace(workspace_factory, sandbox.url, sql, "forget")
    service.reset(forget, SYNC)
    plan = service.plan(forget, SYNC)
    assert (plan.request, plan.sample_requests) == ("POST /api/users/forget", [{"email": "ann@example.com"}])


def test_the_sync_is_checked_before_anything_is_sent(pg, sandbox, workspace_factory):
    sql = _people(pg, [])
    with pytest.raises(ConfigError, match=r"match_on: an email-based project can forget users by email only"):
        _workspace(workspace_factory, sandbox.url, sql, "forget", match_on="user_id")
    with pytest.raises(ConfigError, match=r"mappings\[1\]\.to: user_deletion sends only the user's email"):
        workspace_factory(
            sandbox.url,
            sql=sql,
            mappings=[EMAIL, {"static": "x", "to": "reason"}],
            sync={"type": "user_deletion", "action": "delete", "batch_size": None},
        )
    # Deleting by userId is the contract's way in an email-based project too.
    _workspace(workspace_factory, sandbox.url, sql, "delete", match_on="user_id")
