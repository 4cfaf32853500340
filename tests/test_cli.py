"""The command line over a real project: JSON output, run history, row outcomes, reset."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from smartingest.cli import app
from tests.conftest import create_customers, write_project


def _invoke(args: list[str], home) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"SMARTINGEST_HOME": str(home)})
    return result.exit_code, result.output


def test_run_json_runs_list_show_and_reset(pg, sandbox, admin, tmp_path):
    create_customers(pg, 25)
    pg.execute("UPDATE customers SET email = 'broken' WHERE id = 2")
    project = write_project(
        tmp_path,
        sandbox.url,
        sql=f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers",
    )
    home = tmp_path / "home"
    base = ["--project", str(project)]

    code, output = _invoke([*base, "sync", "plan", "customers_to_users", "--json"], home)
    assert code == 0, output
    plan = json.loads(output)
    assert plan["counts"]["added"] == 25

    code, output = _invoke([*base, "sync", "run", "customers_to_users", "--json"], home)
    assert code == 0, output
    run = json.loads(output)
    assert run["status"] == "warning"
    for key in ("queried", "invalid", "added", "changed", "removed", "synced", "rejected", "retried_next_run"):
        assert key in run["counts"]
    assert run["counts"]["synced"] == 24
    assert run["counts"]["rejected"] == 1
    assert {"prepare", "query_and_plan", "deliver", "commit", "total"} <= set(run["timings"])
    assert run["delivery"]["requests"] == 1

    code, output = _invoke([*base, "sync", "list", "--json"], home)
    [listed] = json.loads(output)
    assert listed["last_run"]["id"] == run["run_id"]
    assert listed["snapshot_rows"] == 24  # the rejected row is not in the snapshot
    assert listed["schedule"] == "manual"

    code, output = _invoke([*base, "runs", "list", "--json"], home)
    assert code == 0
    assert [r["id"] for r in json.loads(output)] == [run["run_id"]]

    code, output = _invoke([*base, "runs", "show", str(run["run_id"]), "--status", "rejected", "--json"], home)
    assert code == 0
    shown = json.loads(output)
    assert [(r["pk"], r["operation"], r["status"]) for r in shown["rows"]] == [("2", "added", "rejected")]
    assert "InvalidEmailAddressError" in shown["rows"][0]["reason"]

    code, output = _invoke([*base, "runs", "show", str(run["run_id"])], home)
    assert code == 0
    assert "rejected" in output

    code, output = _invoke([*base, "sync", "reset", "customers_to_users"], home)
    assert code == 0
    assert "snapshot forgotten" in output
    code, output = _invoke([*base, "sync", "plan", "customers_to_users", "--json"], home)
    assert json.loads(output)["counts"]["added"] == 25

    code, output = _invoke([*base, "sync", "run", "customers_to_users", "--full-resync", "--json"], home)
    assert json.loads(output)["counts"]["synced"] == 24

    code, output = _invoke([*base, "runs", "show", "999"], home)
    assert code == 1
    assert "no run #999" in output


def test_model_preview_schema_and_source_test(pg, sandbox, tmp_path):
    create_customers(pg, 150)
    project = write_project(tmp_path, sandbox.url, sql=f"select id, email, ltv from {pg.schema}.customers")
    base = ["--project", str(project)]
    code, output = _invoke([*base, "model", "preview", "customers", "--json"], tmp_path)
    assert code == 0, output
    rows = json.loads(output)
    assert len(rows) == 100
    assert rows[0]["email"].endswith("@example.com")
    code, output = _invoke([*base, "model", "schema", "customers", "--json"], tmp_path)
    assert [c["name"] for c in json.loads(output)] == ["id", "email", "ltv"]
    code, output = _invoke([*base, "source", "test", "warehouse"], tmp_path)
    assert code == 0
    assert "reachable" in output
    code, output = _invoke([*base, "validate"], tmp_path)
    assert code == 0
