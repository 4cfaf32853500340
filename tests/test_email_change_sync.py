"""Email address changes end to end: real PostgreSQL, the sandbox over real HTTP, CDC across runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from smartingest import service
from smartingest.errors import ConfigError, MappingError
from tests.conftest import API_KEY, SandboxAdmin

SYNC = "customers_to_users"
EMAIL = {"from": "email", "to": "email"}
USER_ID = {"from": "user_id", "to": "userId"}


def _seed(sandbox_url: str, users: list[dict[str, Any]]) -> None:
    """Users already in the project, made through its own API."""
    answer = httpx.post(f"{sandbox_url}/api/users/bulkUpdate", headers={"Api-Key": API_KEY}, json={"users": users})
    answer.raise_for_status()
    assert answer.json()["failCount"] == 0


def _changes_table(pg, rows: list[tuple[int, str | None, str | None, str | None]]) -> str:
    pg.execute("CREATE TABLE changes (id int PRIMARY KEY, email text, user_id text, new_email text)")
    for row in rows:
        pg.execute("INSERT INTO changes VALUES (%s, %s, %s, %s)", row)
    return f"select id, email, user_id, new_email from {pg.schema}.changes"


def _workspace(workspace_factory, url: str, sql: str, match_on: str = "email", **sync: Any):
    mapping = EMAIL if match_on == "email" else USER_ID
    return workspace_factory(
        url,
        sql=sql,
        mappings=[mapping],
        sync={"type": "email_change", "match_on": match_on, "new_email": "new_email", "batch_size": None, **sync},
    )


def _accounted(counts: dict[str, int]) -> None:
    assert counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"]
    changes = counts["added"] + counts["changed"] + counts["removed"]
    verdicts = ("synced", "rejected", "retried_next_run", "deferred", "skipped")
    assert changes == sum(counts[name] for name in verdicts)


def _outcomes(ws, run_id: int) -> dict[str, tuple[str, str | None, str | None]]:
    return {row.pk: (row.status, row.code, row.reason) for row in service.run_rows(ws, run_id, limit=1000)}


def test_match_on_email_changes_each_address_once_and_keeps_the_profile(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    _seed(
        sandbox.url,
        [{"email": f"user{i}@example.com", "userId": f"u-{i}", "dataFields": {"plan": f"p{i}"}} for i in range(1, 6)],
    )
    sql = _changes_table(
        pg,
        [
            (1, "user1@example.com", None, "one@example.com"),
            (2, "user2@example.com", None, "two@example.com"),
            (3, "user3@example.com", None, "three@example.com"),
        ],
    )
    ws = _workspace(workspace_factory, sandbox.url, sql)

    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    assert (first.counts["added"], first.counts["synced"]) == (3, 3)
    assert first.delivery["rows_sent"] == 3
    assert admin.requests("POST /api/users/updateEmail", "200") == 3
    users = admin.users()
    # The profile moved whole: its userId and dataFields follow the new address; the old one finds nobody.
    assert users["one@example.com"]["userId"] == "u-1"
    assert users["one@example.com"]["dataFields"] == {"plan": "p1"}
    assert "user1@example.com" not in users

    pg.execute("INSERT INTO changes VALUES (4, 'user4@example.com', NULL, 'four@example.com')")
    pg.execute("UPDATE changes SET new_email = 'uno@example.com' WHERE id = 1")  # changed: sends nothing
    pg.execute("DELETE FROM changes WHERE id = 2")  # removed: sends nothing

    second = service.run(ws, SYNC)
    assert second.status == "succeeded", second.error
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (1, 1, 1)
    assert second.counts["synced"] == 3
    _accounted(second.counts)
    assert second.delivery["rows_sent"] == 1
    assert admin.requests("POST /api/users/updateEmail", "200") == 4

    # What Iterable holds is what the model says: each first-seen row's change, nothing else.
    expected = {
        "one@example.com": "u-1",
        "two@example.com": "u-2",
        "three@example.com": "u-3",
        "four@example.com": "u-4",
        "user5@example.com": "u-5",
    }
    assert {email: user["userId"] for email, user in admin.users().items()} == expected

    third = service.run(ws, SYNC)
    assert (third.counts["unchanged"], third.counts["synced"], third.delivery["requests"]) == (3, 0, 0)


def test_match_on_user_id_follows_every_new_email_of_a_row(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": f"user{i}@example.com", "userId": f"u-{i}"} for i in range(1, 4)])
    sql = _changes_table(pg, [(1, None, "u-1", "first@example.com"), (2, None, "u-2", "second@example.com")])
    ws = _workspace(workspace_factory, sandbox.url, sql, match_on="user_id")

    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    assert first.counts["synced"] == 2
    assert {u["userId"]: e for e, u in admin.users().items()} == {
        "u-1": "first@example.com",
        "u-2": "second@example.com",
        "u-3": "user3@example.com",
    }

    pg.execute("UPDATE changes SET new_email = 'first.again@example.com' WHERE id = 1")
    pg.execute("INSERT INTO changes VALUES (3, NULL, 'u-3', 'third@example.com')")
    pg.execute("DELETE FROM changes WHERE id = 2")
    second = service.run(ws, SYNC)
    assert second.status == "succeeded", second.error
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (1, 1, 1)
    assert second.counts["synced"] == 3
    assert second.delivery["rows_sent"] == 2  # the added and the changed row; the removed one sends nothing
    assert {u["userId"]: e for e, u in admin.users().items()} == {
        "u-1": "first.again@example.com",
        "u-2": "second@example.com",
        "u-3": "third@example.com",
    }


def test_every_refusal_of_update_email_is_a_rejected_row_with_its_code(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    _seed(sandbox.url, [{"email": e} for e in ("ann@example.com", "bob@example.com", "cy@example.com")])
    _seed(sandbox.url, [{"email": "gone@example.com"}, {"email": "dan@example.com"}])
    api = httpx.Client(base_url=sandbox.url, headers={"Api-Key": API_KEY})
    api.post("/api/users/forget", json={"email": "gone@example.com"}).raise_for_status()
    api.post("/api/users/forget", json={"email": "forgotten.new@example.com"}).raise_for_status()
    sql = _changes_table(
        pg,
        [
            (1, "ann@example.com", None, "bob@example.com"),  # the new email belongs to another user
            (2, "gone@example.com", None, "back@example.com"),  # the current user was forgotten
            (3, "nobody@example.com", None, "someone@example.com"),  # no user has the current email
            (4, "cy@example.com", None, "not an email"),  # the new email is invalid
            (5, "dan@example.com", None, "forgotten.new@example.com"),  # the new email was forgotten
            (6, "dan@example.com ", None, None),  # no new email: refused before sending
            (7, None, None, "x@example.com"),  # no current email: refused before sending
        ],
    )
    ws = _workspace(workspace_factory, sandbox.url, sql, trim_identifier=True)

    result = service.run(ws, SYNC)
    # Two rows name dan@example.com once trimmed: CDC holds both back before anything is sent.
    assert result.counts["invalid"] == 2
    assert result.status == "warning"
    assert result.counts["rejected"] == 5
    _accounted(result.counts)
    outcomes = _outcomes(ws, result.run_id)
    assert {pk: code for pk, (_, code, _) in outcomes.items()} == {
        "1": "conflict",
        "2": "forgotten",
        "3": "not_found",
        "4": "invalid_email",
        "5": "shared_identifier",
        "6": "shared_identifier",
        "7": "no_identifier",
    }
    assert "EmailAlreadyExists" in outcomes["1"][2]
    assert "ForgottenUserError" in outcomes["2"][2]
    assert "does not exist" in outcomes["3"][2]
    assert "InvalidEmailAddressError" in outcomes["4"][2]
    # Nothing moved.
    assert set(admin.users()) == {"ann@example.com", "bob@example.com", "cy@example.com", "dan@example.com"}

    pg.execute("DELETE FROM changes WHERE id = 6")
    retry = service.run(ws, SYNC)
    # Rejected rows keep their old (absent) state, so they are sent again; row 5 is valid now.
    assert retry.counts["added"] == 6
    outcomes = _outcomes(ws, retry.run_id)
    assert outcomes["5"][1] == "conflict"
    assert "forgotten" in outcomes["5"][2]
    assert outcomes["1"][1] == "conflict"


def test_a_row_without_a_new_email_is_rejected_before_sending(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    _seed(sandbox.url, [{"email": "ann@example.com"}, {"email": "bob@example.com"}])
    sql = _changes_table(pg, [(1, "ann@example.com", None, None), (2, "bob@example.com", None, "  ")])
    ws = _workspace(workspace_factory, sandbox.url, sql)
    result = service.run(ws, SYNC)
    assert result.counts["rejected"] == 2
    assert result.delivery["requests"] == 0
    outcomes = _outcomes(ws, result.run_id)
    assert {code for _, code, _ in outcomes.values()} == {"no_new_email"}
    assert "new_email (column 'new_email') is empty" in outcomes["1"][2]


def test_a_change_made_before_and_sent_again_is_skipped_not_rejected(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    _seed(sandbox.url, [{"email": "ann@example.com", "userId": "u-ann"}, {"email": "bob@example.com"}])
    sql = _changes_table(pg, [(1, "ann@example.com", None, "ann.new@example.com")])
    ws = _workspace(workspace_factory, sandbox.url, sql)
    # The change is applied, then its acknowledgement is lost: the client sends it again.
    admin.faults(endpoint="POST /api/users/updateEmail", drop_next=1, drop_after_processing=True)
    lost = service.run(ws, SYNC)
    assert lost.status == "succeeded", lost.error
    assert lost.counts["skipped"] == 1
    assert lost.delivery["no_response"] == 1
    status, code, reason = _outcomes(ws, lost.run_id)["1"]
    assert (status, code) == ("skipped", "already_applied")
    assert "'ann.new@example.com' is in Iterable" in reason
    assert admin.users()["ann.new@example.com"]["userId"] == "u-ann"

    # A snapshot lost (a run that died before its commit, or a reset) sends it once more: still skipped.
    service.reset(ws, SYNC)
    again = service.run(ws, SYNC)
    assert (again.counts["added"], again.counts["skipped"], again.counts["rejected"]) == (1, 1, 0)
    assert service.run(ws, SYNC).counts["unchanged"] == 1


def test_sync_plan_shows_one_update_email_request_and_sends_nothing(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    sql = _changes_table(pg, [(1, "Ann@Example.com", None, " Ann.New@Example.com "), (2, "b@example.com", None, None)])
    ws = _workspace(workspace_factory, sandbox.url, sql, trim_identifier=True, lowercase_identifier=True)
    plan = service.plan(ws, SYNC)
    assert plan.request == "POST /api/users/updateEmail"
    assert plan.sample_requests == [{"currentEmail": "ann@example.com", "newEmail": "ann.new@example.com"}]
    assert [sample["primary_key"] for sample in plan.rejected_samples] == ["2"]
    assert admin.requests("POST /api/users/updateEmail") == 0

    ws = _workspace(workspace_factory, sandbox.url, sql, match_on="user_id")
    pg.execute("UPDATE changes SET user_id = 'u-' || id")
    assert service.plan(ws, SYNC).sample_requests[0] == {"currentUserId": "u-1", "newEmail": " Ann.New@Example.com "}


def test_the_sync_is_checked_before_anything_is_sent(pg, sandbox, workspace_factory):
    sql = _changes_table(pg, [])
    with pytest.raises(ConfigError, match=r"mappings\[1\]\.to: email_change sends only the user's email"):
        workspace_factory(
            sandbox.url,
            sql=sql,
            mappings=[EMAIL, {"from": "id", "to": "legacyId"}],
            sync={"type": "email_change", "new_email": "new_email", "batch_size": None},
        )
    ws = _workspace(workspace_factory, sandbox.url, sql, new_email="nope")
    with pytest.raises(MappingError, match=r"new_email: the model has no column 'nope'"):
        service.plan(ws, SYNC)
    ws = _workspace(workspace_factory, sandbox.url, f"select id, email, id as new_email from {pg.schema}.changes")
    with pytest.raises(MappingError, match=r"new_email: column 'new_email' is int32, but an email address is text"):
        service.plan(ws, SYNC)
