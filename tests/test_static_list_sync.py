"""A static_list sync end to end: real PostgreSQL, the sandbox over real HTTP, CDC across runs, the list's
members read back through the sandbox's own endpoints and compared with the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartingest import service
from smartingest.errors import ConfigError, MappingError
from tests.conftest import SandboxAdmin
from tests.static_list_support import SYNC, SandboxLists, create_members, list_workspace, members_sql


def _model_emails(pg) -> set[str]:
    return {row[0] for row in pg.execute("SELECT email FROM members").fetchall()}


def _accounted(counts: dict[str, int]) -> bool:
    changes = counts["added"] + counts["changed"] + counts["removed"]
    verdicts = ("synced", "rejected", "retried_next_run", "deferred", "skipped")
    return counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"] and (
        changes == sum(counts[v] for v in verdicts)
    )


def test_first_run_creates_the_list_then_members_follow_inserts_updates_and_deletes(
    pg, sandbox, admin: SandboxAdmin, tmp_path: Path
):
    create_members(pg, 40)
    lists = SandboxLists(sandbox.url)
    ws = list_workspace(tmp_path, sandbox.url, members_sql(pg))

    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    assert (first.counts["added"], first.counts["synced"]) == (40, 40)
    assert _accounted(first.counts)
    list_id = lists.id_of("VIPs")
    assert first.warnings == [f"created static list 'VIPs' (id {list_id})"]
    assert lists.members(list_id) == _model_emails(pg)
    # The mappings went to the profiles with the subscription.
    profile = lists.user("member7@example.com")["dataFields"]
    assert (profile["firstName"], profile["plan"], profile["emailListIds"]) == ("First7", "pro", [list_id])

    second = service.run(ws, SYNC)
    assert second.status == "succeeded"
    assert (second.counts["unchanged"], second.counts["synced"], second.delivery["requests"]) == (40, 0, 0)
    assert len(lists.all()) == 1  # found by name, not created again

    pg.execute("UPDATE members SET plan = 'enterprise' WHERE email IN ('member1@example.com', 'member2@example.com')")
    pg.execute("DELETE FROM members WHERE email IN ('member10@example.com', 'member11@example.com')")
    # A changed identifier is a new key: its old address leaves the list, its new one joins it.
    pg.execute("UPDATE members SET email = 'member5.new@example.com' WHERE email = 'member5@example.com'")
    create_members(pg, 3, start=101)

    third = service.run(ws, SYNC)
    assert third.status == "succeeded", third.error
    assert (third.counts["added"], third.counts["changed"], third.counts["removed"]) == (4, 2, 3)
    assert (third.counts["synced"], third.counts["unchanged"]) == (9, 35)
    assert _accounted(third.counts)
    assert lists.members(list_id) == _model_emails(pg)
    assert lists.user("member1@example.com")["dataFields"]["plan"] == "enterprise"
    # Unsubscribing left the users and their channel subscription alone (channelUnsubscribe: false).
    users = admin.users()
    for gone in ("member10@example.com", "member5@example.com"):
        assert users[gone]["dataFields"]["emailListIds"] == []
        assert users[gone]["dataFields"].get("unsubscribedChannelIds", []) == []
    rows = service.run_rows(ws, third.run_id, limit=100)
    assert sorted(r.pk for r in rows if r.operation == "removed") == [
        "member10@example.com",
        "member11@example.com",
        "member5@example.com",
    ]
    assert admin.requests("POST /api/lists/unsubscribe") == 1

    assert service.plan(ws, SYNC).counts.removed == 0  # the unsubscribed rows left the snapshot


def test_on_removed_nothing_keeps_members_that_leave_the_model(pg, sandbox, tmp_path: Path):
    create_members(pg, 5)
    lists = SandboxLists(sandbox.url)
    ws = list_workspace(tmp_path, sandbox.url, members_sql(pg), sync={"on_removed": "nothing"})
    service.run(ws, SYNC)
    pg.execute("DELETE FROM members WHERE email = 'member1@example.com'")
    result = service.run(ws, SYNC)
    assert (result.counts["removed"], result.counts["synced"], result.delivery["requests"]) == (1, 1, 0)
    assert "member1@example.com" in lists.members(lists.id_of("VIPs"))


def test_a_list_given_by_id_or_by_an_existing_name_is_used_as_it_is(pg, sandbox, tmp_path: Path):
    create_members(pg, 3)
    lists = SandboxLists(sandbox.url)
    other = lists.create("Other")
    chosen = lists.create("Chosen")
    ws = list_workspace(tmp_path / "by_id", sandbox.url, members_sql(pg), sync={"list": {"id": chosen}})
    result = service.run(ws, SYNC)
    assert result.status == "succeeded", result.error
    assert result.warnings == []
    assert lists.members(chosen) == _model_emails(pg)
    assert lists.members(other) == set()

    named = lists.create("VIPs")
    ws = list_workspace(tmp_path / "by_name", sandbox.url, members_sql(pg))
    assert service.run(ws, SYNC).status == "succeeded"
    assert lists.members(named) == _model_emails(pg)
    assert len(lists.all()) == 3


def test_an_unknown_list_id_or_a_name_several_lists_share_fails_the_run_before_sending(
    pg, sandbox, admin: SandboxAdmin, tmp_path: Path
):
    create_members(pg, 3)
    lists = SandboxLists(sandbox.url)
    ws = list_workspace(tmp_path / "unknown", sandbox.url, members_sql(pg), sync={"list": {"id": 999}})
    failed = service.run(ws, SYNC)
    assert failed.status == "failed"
    assert failed.error is not None
    assert f"syncs.{SYNC}.list.id: the project has no list with id 999" in failed.error
    assert failed.counts["retried_next_run"] == 3
    with pytest.raises(ConfigError, match="no list with id 999"):
        service.plan(ws, SYNC)

    first, second = lists.create("Twins"), lists.create("Twins")
    ws = list_workspace(tmp_path / "twins", sandbox.url, members_sql(pg), sync={"list": {"name": "Twins"}})
    failed = service.run(ws, SYNC)
    assert failed.status == "failed"
    assert f"2 static lists are named 'Twins' (ids {first}, {second}): set list: {{id: N}}" in (failed.error or "")
    assert admin.requests("POST /api/lists/subscribe") == 0
    assert len(lists.all()) == 2


def test_plan_shows_a_subscribe_body_and_creates_nothing(pg, sandbox, tmp_path: Path):
    create_members(pg, 4)
    lists = SandboxLists(sandbox.url)
    ws = list_workspace(tmp_path, sandbox.url, members_sql(pg))
    before = service.plan(ws, SYNC, samples=2)
    assert before.request == "POST /api/lists/subscribe"
    assert before.warnings == ["static list 'VIPs' does not exist yet: the run creates it"]
    (body,) = before.sample_requests
    assert body["listId"] is None  # not known until the run creates the list
    assert len(body["subscribers"]) == 2
    for subscriber in body["subscribers"]:
        number = int(subscriber["email"].removeprefix("member").removesuffix("@example.com"))
        plan = ["free", "pro", "team"][number % 3]
        assert subscriber == {
            "email": f"member{number}@example.com",
            "dataFields": {"firstName": f"First{number}", "plan": plan},
        }
    assert lists.all() == []

    service.run(ws, SYNC)
    pg.execute("UPDATE members SET plan = 'enterprise' WHERE email = 'member2@example.com'")
    after = service.plan(ws, SYNC)
    assert after.warnings == []
    assert after.sample_requests == [
        {
            "subscribers": [
                {"email": "member2@example.com", "dataFields": {"firstName": "First2", "plan": "enterprise"}}
            ],
            "listId": lists.id_of("VIPs"),
        }
    ]


def test_the_key_must_be_the_identifier(pg, sandbox, tmp_path: Path):
    pg.execute("CREATE TABLE people (id int PRIMARY KEY, email text)")
    pg.execute("INSERT INTO people VALUES (1, 'ann@example.com'), (2, 'bob@example.com')")
    sql = f"select id, email from {pg.schema}.people"
    ws = list_workspace(tmp_path, sandbox.url, sql, mappings=[{"from": "email", "to": "email"}], primary_key="id")
    failed = service.run(ws, SYNC)
    assert failed.status == "failed"
    assert "needs the model's primary key to be the column mapped to email ('email')" in (failed.error or "")
    assert "Set the model's primary_key to 'email'" in (failed.error or "")
    assert failed.counts["synced"] == 0
    lists = SandboxLists(sandbox.url)
    assert lists.members(lists.id_of("VIPs")) == set()
    with pytest.raises(MappingError, match="Set the model's primary_key to 'email'"):
        service.plan(ws, SYNC)


@pytest.mark.parametrize("key", ["trim_identifier", "lowercase_identifier"])
def test_identifier_options_are_refused_since_the_key_is_sent_as_it_is(pg, sandbox, tmp_path: Path, key: str):
    with pytest.raises(ConfigError, match=rf"syncs\.{SYNC}\.{key}: a static_list sync sends the identifier exactly"):
        list_workspace(tmp_path, sandbox.url, members_sql(pg), sync={key: True})


def test_a_blank_list_name_is_refused(pg, sandbox, tmp_path: Path):
    with pytest.raises(ConfigError, match=rf"syncs\.{SYNC}\.list\.name: the list's name is empty"):
        list_workspace(tmp_path, sandbox.url, members_sql(pg), sync={"list": {"name": "  "}})
