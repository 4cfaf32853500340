"""Testing a sync on one row: the exact request a run would send, and with --send Iterable's answer,
without touching the sync's CDC state or runs. Real PostgreSQL, the sandbox over real HTTP, and the
command line as a user runs it."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from smartingest.errors import ModelError, SmartIngestError
from tests.conftest import API_KEY, SandboxAdmin, create_customers, write_project

SYNC = "customers_to_users"


def test_the_request_for_one_row_is_what_a_run_sends_and_nothing_is_sent(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 5)
    ws = workspace_factory(
        sandbox.url, sql=f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    )
    result = service.test_row(ws, SYNC, "3")
    assert (result.request, result.sent, result.refused) == ("POST /api/users/bulkUpdate", False, None)
    [user] = result.body["users"]
    assert user == {
        "email": "user3@example.com",
        "dataFields": {
            "firstName": "First3",
            "plan": "free",
            "lifetimeValue": 21.25,
            "address": {"city": "Paris"},
            "signedUpAt": "2024-01-01 03:00:00 +00:00",
            "tier": "gold",
        },
    }
    assert admin.users() == {} and admin.requests() == 0
    assert service.list_runs(ws, SYNC) == []


def test_sending_one_row_shows_iterable_s_answer_and_leaves_the_sync_s_state(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 5)
    ws = workspace_factory(
        sandbox.url, sql=f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    )
    result = service.test_row(ws, SYNC, "2", send=True)
    assert (result.sent, result.status, result.reason) == (True, "synced", None)
    [answer] = result.answers
    assert (answer.request, answer.status) == ("POST /api/users/bulkUpdate", 200)
    assert answer.body["successCount"] == 1
    assert list(admin.users()) == ["user2@example.com"]
    # No snapshot was written: the first run sends every row, the tested one too.
    run = service.run(ws, SYNC)
    assert (run.counts["added"], run.counts["synced"]) == (5, 5)


def test_a_row_a_run_would_refuse_says_why_and_an_unknown_key_is_an_error(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    pg.execute("UPDATE customers SET email = NULL WHERE id = 2")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, email, first_name from {pg.schema}.customers",
        mappings=[{"from": "email", "to": "email"}, {"from": "first_name", "to": "firstName"}],
    )
    refused = service.test_row(ws, SYNC, "2", send=True)
    assert (refused.body, refused.sent) == (None, False)
    assert refused.refused == "email is empty: the row has no identifier to match on"
    with pytest.raises(ModelError, match="model 'customers' has no row with primary key id = 42"):
        service.test_row(ws, SYNC, "42")


def test_the_command_line_prints_the_request_and_exits_1_when_iterable_refuses(
    pg, sandbox, admin: SandboxAdmin, tmp_path
):
    create_customers(pg, 2)
    pg.execute("UPDATE customers SET email = 'not-an-email' WHERE id = 2")
    project = write_project(
        tmp_path,
        sandbox.url,
        sql=f"select id, email, first_name from {pg.schema}.customers",
        mappings=[{"from": "email", "to": "email"}, {"from": "first_name", "to": "firstName"}],
    )
    env = {"SMARTINGEST_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    shown = runner.invoke(app, ["--project", str(project), "sync", "test", SYNC, "--row", "1"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Request for row 1 (POST /api/users/bulkUpdate)" in shown.output and "user1@example.com" in shown.output
    assert "add --send to send it" in shown.output
    sent = runner.invoke(
        app, ["--project", str(project), "sync", "test", SYNC, "--row", "2", "--send", "--json"], env=env
    )
    assert sent.exit_code == 1, sent.output
    report = json.loads(sent.output)
    assert (report["sent"], report["status"], report["code"]) == (True, "rejected", "invalid_email")
    assert report["answers"][0]["status"] == 200 and report["answers"][0]["body"]["failCount"] == 1


def test_a_row_whose_value_cannot_fit_the_project_s_field_is_refused_as_a_run_would(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 2)
    # The project's `plan` field is a long already: a text plan cannot go in.
    seed = [{"from": "email", "to": "email"}, {"static": 1, "to": "plan"}]
    seeding = workspace_factory(sandbox.url, sql="select 9 as id, 'seed@y.io' as email", mappings=seed)
    assert service.run(seeding, SYNC).status == "succeeded"
    mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]
    ws = workspace_factory(sandbox.url, sql=f"select id, email, plan from {pg.schema}.customers", mappings=mappings)
    result = service.test_row(ws, SYNC, "1")
    assert result.body is None and result.refused is not None and "plan" in result.refused
    assert any("field type conflict" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("key_sql", "key"),
    [("id", "5"), ("'k-' || id", "k-5")],
    ids=["integer key", "text key"],
)
def test_the_database_finds_the_row_without_reading_the_model_through(pg, sandbox, workspace_factory, key_sql, key):
    create_customers(pg, 6)
    # Row 3 cannot be computed: a model read through would fail on it; looking up row 5 never meets it.
    sql = f"select {key_sql} as id, email, 10 / (id - 3) as ratio from {pg.schema}.customers"
    mappings = [{"from": "email", "to": "email"}, {"from": "ratio", "to": "ratio"}]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)
    result = service.test_row(ws, SYNC, key)
    assert result.body == {"users": [{"email": "user5@example.com", "dataFields": {"ratio": 5}}]}
    with pytest.raises(ModelError, match="no row with primary key id = 42"):
        service.test_row(ws, SYNC, "42")


def test_a_key_the_database_cannot_compare_here_is_found_by_reading_the_model(pg, sandbox, workspace_factory):
    create_customers(pg, 4)
    sql = f"select signed_up_at as id, email from {pg.schema}.customers"
    ws = workspace_factory(sandbox.url, sql=sql, mappings=[{"from": "email", "to": "email"}])
    result = service.test_row(ws, SYNC, "2024-01-01 02:00:00+00")  # as runs show it
    assert result.body == {"users": [{"email": "user2@example.com"}]}


def test_a_draft_sync_previews_its_first_row_s_request_before_it_is_saved(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 3)
    ws = workspace_factory(sandbox.url, sql=f"select id, email, first_name, city from {pg.schema}.customers")
    draft = {
        "model": "customers",
        "destination": "iterable",
        "type": "users",
        "match_on": "email",
        "mappings": [
            {"from": "email", "to": "email"},
            {"template": "{{ first_name }} from {{ city }}", "to": "greeting"},
            {"object": [{"from": "city", "to": "city"}, {"variable": "sync_name", "to": "via"}], "to": "home"},
        ],
    }
    preview = service.preview_sync(ws, "editing", draft)
    assert (preview.sync_name, preview.primary_key, preview.sent) == ("editing", "1", False)
    assert preview.body == {
        "users": [
            {
                "email": "user1@example.com",
                "dataFields": {"greeting": "First1 from Austin", "home": {"city": "Austin", "via": "editing"}},
            }
        ]
    }
    catalog = {"model": "customers", "destination": "iterable", "type": "catalog", "catalog": "people"}
    items = service.preview_sync(ws, "people", {**catalog, "mappings": [{"from": "city", "to": "city"}]}, "3")
    assert items.body == {"documents": {"3": {"city": "Paris"}}, "replaceUploadedFieldsOnly": True}
    # Nothing was saved, sent or created.
    assert list(ws.config.syncs) == [SYNC] and admin.requests() == 0
    assert admin.http.get("/api/catalogs", headers={"Api-Key": API_KEY}).json()["catalogNames"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mappings": [{"from": "email", "to": "email"}, {"form": "city", "to": "city"}]}, "syncs.editing.mappings[1]"),
        ({"model": "nope"}, "syncs.editing.model: no model named 'nope'"),
        (
            {"mappings": [{"from": "email", "to": "email"}, {"template": "{{ frist_name }}", "to": "x"}]},
            "syncs.editing.mappings[1]: the template reads 'frist_name'",
        ),
        ({"mappings": [{"from": "email", "to": "email"}, {"from": "town", "to": "x"}]}, "no column 'town'"),
    ],
    ids=["unknown key", "unknown model", "template typo", "unknown column"],
)
def test_a_draft_s_mistakes_are_named_by_their_key(pg, sandbox, workspace_factory, change, message):
    create_customers(pg, 1)
    ws = workspace_factory(sandbox.url, sql=f"select id, email, first_name, city from {pg.schema}.customers")
    draft = {"model": "customers", "destination": "iterable", "type": "users", "match_on": "email"}
    draft |= {"mappings": [{"from": "email", "to": "email"}], **change}
    with pytest.raises(SmartIngestError, match=re.escape(message)):
        service.preview_sync(ws, "editing", draft)
