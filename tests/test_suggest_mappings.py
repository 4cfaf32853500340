"""Suggested mappings: from the model's column names and the destination's own fields, for the command
line and the service. Real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from smartingest.config.syncs import SYNC_MODELS, placeholder_mappings
from smartingest.engine.suggest import camel_case
from tests.conftest import write_project

SYNC = "customers_to_users"


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("first_name", "firstName"),
        ("First Name", "firstName"),
        ("last-name", "lastName"),
        ("city", "city"),
        ("ID", "id"),
        ("lifetimeValue", "lifetimeValue"),
        ("ZIP_CODE", "zipCode"),
    ],
)
def test_camel_case_is_iterable_s_convention(column, field):
    assert camel_case(column) == field


def _table(pg) -> str:
    pg.execute(
        """CREATE TABLE people (id bigint PRIMARY KEY, "E-Mail" text, "FIRST_NAME" text, signup_date date,
                                plan_tier text, avatar bytea, phone_number text)"""
    )
    return f"select * from {pg.schema}.people"


def test_suggestions_meet_the_destination_s_fields_and_its_conventions(pg, sandbox, workspace_factory):
    sql = _table(pg)
    # The project gets a firstName field from a first sync; signupDate is a field every project has.
    seed = [{"from": "email", "to": "email"}, {"from": "first", "to": "firstName"}]
    seeding = workspace_factory(sandbox.url, sql="select 1 as id, 'x@y.io' as email, 'Ann' as first", mappings=seed)
    assert service.run(seeding, SYNC).status == "succeeded"
    ws = workspace_factory(sandbox.url, sql=sql)
    result = service.suggest_mappings(ws, SYNC)
    assert [(s.column, s.field) for s in result.mappings] == [
        ("id", "id"),
        ("E-Mail", "email"),
        ("FIRST_NAME", "firstName"),
        ("signup_date", "signupDate"),
        ("plan_tier", "planTier"),
        ("phone_number", "phoneNumber"),
    ]
    why = {s.column: s.why for s in result.mappings}
    assert why["E-Mail"] == "Iterable's email field (the sync matches users on it)"
    assert why["FIRST_NAME"] == "the destination's field 'firstName' (string)"
    assert why["plan_tier"] == "Iterable's naming convention (lower camel case)"
    assert result.notes == ["column 'avatar' holds binary data, which Iterable cannot store: left out"]
    assert result.destination_fields and result.destination_fields > 0


def test_the_command_line_prints_mappings_to_paste_and_says_when_the_destination_did_not_answer(pg, tmp_path):
    sql = _table(pg)
    project = write_project(tmp_path, "http://127.0.0.1:9", sql=sql, destination={"max_attempts": 1})
    env = {"SMARTINGEST_HOME": str(tmp_path / "home")}
    shown = CliRunner().invoke(app, ["--project", str(project), "sync", "suggest-mappings", SYNC], env=env)
    assert shown.exit_code == 0, shown.output
    assert "- {from: FIRST_NAME, to: firstName}" in shown.output
    assert "the destination's fields could not be read" in shown.output
    as_json = CliRunner().invoke(app, ["--project", str(project), "sync", "suggest-mappings", SYNC, "--json"], env=env)
    report = json.loads(as_json.output)
    assert report["destination_fields"] is None
    assert {"from": "E-Mail", "to": "email", "why": "Iterable's email field (the sync matches users on it)"} in report[
        "mappings"
    ]


# What each type needs besides its mappings, at the least.
REQUIRED = {
    "events": {"event_name": "signup"},
    "catalog": {"catalog": "products"},
    "static_list": {"list": {"name": "VIPs"}},
    "email_change": {"new_email": "new_email"},
    "user_deletion": {"action": "delete"},
}


@pytest.mark.parametrize(
    ("sync_type", "match_on"),
    [
        (sync_type, match_on)
        for sync_type, settings in sorted(SYNC_MODELS.items())
        for match_on in (("email", "user_id") if "match_on" in settings.model_fields else ("email",))
    ],
)
def test_a_draft_without_mappings_passes_its_checks_with_the_placeholders(sync_type, match_on):
    settings = SYNC_MODELS[sync_type]
    draft = {"type": sync_type, "model": "m", "destination": "d", **REQUIRED.get(sync_type, {})}
    if "match_on" in settings.model_fields:
        draft["match_on"] = match_on
    sync = settings.model_validate({**draft, "mappings": placeholder_mappings(draft, "id")})
    assert [m.from_ for m in sync.mappings] == ["id"]
