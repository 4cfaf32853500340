"""Field types: the destination's types are read before sending, conflicts are reported at plan time and
rejected per row without a request; `destination test` says whether the project answers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from tests.conftest import write_project

MAPPINGS = [{"from": "email", "to": "email"}, {"from": "code", "to": "planCode"}, {"from": "name", "to": "name"}]


def _people(pg, code_type: str) -> str:
    pg.execute("DROP TABLE IF EXISTS people")
    pg.execute(
        f"CREATE TABLE people AS SELECT i AS id, 'u' || i || '@x.io' AS email, (i % 7)::{code_type} AS code,"
        " 'n' || i AS name FROM generate_series(1, 200) i"
    )
    return f"select id, email, code, name from {pg.schema}.people"


def test_a_column_that_changed_type_is_refused_per_row_without_requests(pg, sandbox, admin, workspace_factory):
    ws = workspace_factory(sandbox.url, sql=_people(pg, "int"), mappings=MAPPINGS)
    assert service.run(ws, "customers_to_users").counts["synced"] == 200
    assert admin.get_fields()["planCode"] == "long"

    # The model now sends the code as text: every row with a code would fail its whole request.
    ws = workspace_factory(sandbox.url, sql=_people(pg, "text"), mappings=MAPPINGS)
    plan = service.plan(ws, "customers_to_users")
    assert plan.destination_ok
    (conflict,) = [w for w in plan.warnings if w.startswith("field type conflict")]
    assert "field 'planCode' is of type long in Iterable, but column 'code' (string) sends string values" in conflict
    assert "planCode" in plan.rejected_samples[0]["reason"]

    before = admin.requests()
    result = service.run(ws, "customers_to_users")
    assert (result.counts["changed"], result.counts["rejected"], result.counts["synced"]) == (200, 200, 0)
    assert [w.split(":")[0] for w in result.warnings] == ["field type conflict"]
    assert service.get_run(ws, result.run_id).warnings == result.warnings
    assert admin.requests() == before  # not one bulkUpdate: every row was refused before sending
    (row,) = service.run_rows(ws, result.run_id, status="rejected", limit=1)
    assert "field 'planCode' is of type long in Iterable" in row.reason
    assert row.code == "type_mismatch"


def test_null_values_of_a_conflicting_column_do_not_hold_their_row_back(pg, sandbox, admin, workspace_factory):
    ws = workspace_factory(sandbox.url, sql=_people(pg, "int"), mappings=MAPPINGS)
    service.run(ws, "customers_to_users")
    pg.execute("ALTER TABLE people ALTER COLUMN code TYPE text")
    pg.execute("UPDATE people SET code = NULL WHERE id <= 10")
    pg.execute("UPDATE people SET name = name || '!' WHERE id <= 10")
    result = service.run(ws, "customers_to_users")
    assert result.counts["synced"] == 10 and result.counts["rejected"] == 190, result


def test_a_conflict_inside_an_object_holds_back_only_rows_with_a_value_there(pg, sandbox, admin, workspace_factory):
    inner = [{"from": "code", "to": "code", "skip_null": True}, {"from": "name", "to": "name"}]
    mappings = [{"from": "email", "to": "email"}, {"object": inner, "to": "profile"}]
    ws = workspace_factory(sandbox.url, sql=_people(pg, "int"), mappings=mappings)
    service.run(ws, "customers_to_users")
    assert admin.get_fields()["profile.code"] == "long"
    pg.execute("ALTER TABLE people ALTER COLUMN code TYPE text")
    pg.execute("UPDATE people SET code = NULL WHERE id <= 10")
    pg.execute("UPDATE people SET name = name || '!' WHERE id <= 20")

    plan = service.plan(ws, "customers_to_users")
    (conflict,) = [w for w in plan.warnings if w.startswith("field type conflict")]
    assert "field 'profile.code' is of type long in Iterable, but column 'code' (string) sends string" in conflict
    result = service.run(ws, "customers_to_users")
    assert (result.counts["synced"], result.counts["rejected"]) == (10, 190), result
    assert admin.users()["u3@x.io"]["dataFields"]["profile"] == {"name": "n3!"}
    (row,) = service.run_rows(ws, result.run_id, status="rejected", limit=1)
    assert row.code == "type_mismatch" and "'profile.code'" in row.reason


def test_text_into_a_date_field_is_reported_and_only_rows_whose_text_is_no_date_held_back(
    pg, sandbox, admin, workspace_factory
):
    pg.execute("CREATE TABLE signups (id int, email text, seen text)")
    values = ["2024-05-01", "2024-05-01 13:45:00 +00:00", "2024-02-30", "yesterday", None]
    for i, seen in enumerate(values, start=1):
        pg.execute("INSERT INTO signups VALUES (%s, %s, %s)", (i, f"u{i}@x.io", seen))
    # seenAt is a date in the project already (a timestamp column sent it first).
    seed = workspace_factory(
        sandbox.url,
        sql="select 0 as id, 'seed@x.io' as email, now() as seen",
        mappings=[{"from": "email", "to": "email"}, {"from": "seen", "to": "seenAt"}],
    )
    assert service.run(seed, "customers_to_users").status == "succeeded"
    assert admin.get_fields()["seenAt"] == "date"

    mappings = [{"from": "email", "to": "email"}, {"from": "seen", "to": "seenAt"}]
    ws = workspace_factory(sandbox.url, sql=f"select * from {pg.schema}.signups", mappings=mappings)
    (conflict,) = [w for w in service.plan(ws, "customers_to_users").warnings if w.startswith("field type conflict")]
    assert "field 'seenAt' is of type date in Iterable, but column 'seen' (string) sends string values" in conflict
    assert "only text that is a date fits" in conflict
    result = service.run(ws, "customers_to_users")
    # Synced: the three rows that fit (a null fits anything), and the seed's row, which left the model.
    assert (result.counts["synced"], result.counts["rejected"], result.counts["removed"]) == (4, 2, 1), result
    rejected = service.run_rows(ws, result.run_id, status="rejected")
    assert sorted(row.pk for row in rejected) == ["3", "4"]
    assert all(row.code == "type_mismatch" and "'seenAt'" in row.reason for row in rejected)
    assert admin.users()["u2@x.io"]["dataFields"]["seenAt"] == "2024-05-01 13:45:00 +00:00"


def _invoke(args: list[str], home) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"SMARTINGEST_HOME": str(home)})
    return result.exit_code, result.output


def test_destination_test_checks_the_key_and_reachability(sandbox, tmp_path):
    home = tmp_path / "home"
    project = write_project(tmp_path, sandbox.url)
    code, output = _invoke(["--project", str(project), "destination", "test", "iterable"], home)
    assert code == 0, output
    assert "answered" in output and "user fields" in output

    project = write_project(tmp_path, sandbox.url, destination={"api_key": "wrong-key"})
    code, output = _invoke(["--project", str(project), "destination", "test", "iterable", "--json"], home)
    assert code == 1
    answer = json.loads(output)
    assert answer["ok"] is False and "refused the API key" in answer["message"]

    project = write_project(tmp_path, "http://127.0.0.1:9", destination={"timeout_seconds": 1})
    code, output = _invoke(["--project", str(project), "destination", "test", "iterable"], home)
    assert code == 1 and "cannot connect" in output


def test_plan_says_when_the_destination_does_not_answer(pg, workspace_factory):
    ws = workspace_factory("http://127.0.0.1:9", sql=_people(pg, "int"), mappings=MAPPINGS)
    plan = service.plan(ws, "customers_to_users")
    assert not plan.destination_ok and "cannot connect" in plan.destination
    assert plan.counts.added == 200


def test_a_type_mismatch_confirmed_once_stops_the_splitting(pg, sandbox, admin, workspace_factory):
    # JSON values carry no column type to check in advance: Iterable's refusal is the first word.
    pg.execute(
        "CREATE TABLE prefs AS SELECT i AS id, 'u' || i || '@x.io' AS email, to_jsonb(i) AS score"
        " FROM generate_series(1, 400) i"
    )
    sql = f"select id, email, score from {pg.schema}.prefs"
    mappings = [{"from": "email", "to": "email"}, {"from": "score", "to": "score"}]
    sync = {"batch_size": 100}
    ws = workspace_factory(
        sandbox.url,
        sql=sql,
        mappings=mappings,
        sync=sync,
        destination={"max_concurrent_requests": 1, "rate_limit_scale": 100},
    )
    assert service.run(ws, "customers_to_users").counts["synced"] == 400
    pg.execute("UPDATE prefs SET score = to_jsonb('s' || id)")
    before = admin.requests()
    result = service.run(ws, "customers_to_users")
    assert result.counts["rejected"] == 400, result
    # Splitting every batch down to single rows would take about 800 requests.
    assert admin.requests() - before < 250
    rows = service.run_rows(ws, result.run_id, status="rejected", limit=400)
    assert all("field 'score' is of type long" in row.reason for row in rows)
    assert {row.code for row in rows} == {"type_mismatch"}
    assert any("refused without a request once confirmed" in row.reason for row in rows)
