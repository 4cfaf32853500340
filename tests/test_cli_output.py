"""What the command line prints for people: row statuses by every name, unambiguous keys, plans with long
values cut, column types whole. Real processes, real SQLite, DuckDB and PostgreSQL sources, the sandbox over HTTP.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb

from smartingest import service
from tests.conftest import write_project

SYNC = "customers_to_users"


def _cli(home: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartingest", "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SMARTINGEST_HOME": str(home), "COLUMNS": "200"},
    )


def _sqlite_users(tmp_path: Path, base_url: str, rows: list[tuple], columns: str, mappings: list[dict]) -> Path:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE users ({columns})")
        con.executemany(f"INSERT INTO users VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return write_project(
        tmp_path,
        base_url,
        table="users",
        source={"type": "sqlite", "path": str(db)},
        mappings=mappings,
        destination={"max_attempts": 2},
    )


def test_runs_show_quotes_text_keys_and_takes_the_status_names_of_the_json(tmp_path, sandbox, admin):
    home = tmp_path / "home"
    project = _sqlite_users(
        tmp_path,
        sandbox.url,
        [("abc", "not an email"), ("abc ", "not one either"), ("7", "seven@example.com")],
        "id TEXT PRIMARY KEY, email TEXT",
        [{"from": "email", "to": "email"}],
    )
    first = json.loads(_cli(home, project, "sync", "run", SYNC, "--json").stdout)
    assert first["counts"]["rejected"] == 2

    rejected = _cli(home, project, "runs", "show", str(first["run_id"]), "--status", "rejected")
    assert rejected.returncode == 0, rejected.stderr
    # Two keys that differ by a trailing space print differently; a whole number prints bare.
    assert "'abc '" in rejected.stdout
    assert "'abc'" in rejected.stdout
    synced = _cli(home, project, "runs", "show", str(first["run_id"]), "--status", "synced").stdout
    assert "│ 7 " in synced
    assert "'7'" not in synced

    admin.faults(status_burst={"count": 10_000, "status": 503})
    failed = _cli(home, project, "sync", "run", SYNC, "--full-resync", "--json")
    assert failed.returncode == 1
    outage = json.loads(failed.stdout)
    assert outage["counts"]["retried_next_run"] == 3
    run_id = str(outage["run_id"])
    for name in ("retried_next_run", "retry"):
        shown = json.loads(_cli(home, project, "runs", "show", run_id, "--status", name, "--json").stdout)
        assert sorted(row["pk"] for row in shown["rows"]) == ["7", "abc", "abc "]
        assert {row["status"] for row in shown["rows"]} == {"retry"}
    text = _cli(home, project, "runs", "show", run_id, "--status", "retried_next_run").stdout
    assert "rows (retry): 1-3 of 3" in text

    listed = json.loads(_cli(home, project, "runs", "list", "--status", "failed", "--json").stdout)
    assert [run["id"] for run in listed] == [outage["run_id"]]

    bogus = _cli(home, project, "runs", "show", run_id, "--status", "bogus")
    assert bogus.returncode == 2
    assert "synced, rejected, retry, retried_next_run, deferred, skipped, invalid" in bogus.stderr
    bogus = _cli(home, project, "runs", "list", "--status", "bogus")
    assert bogus.returncode == 2
    assert "queued, querying, in_progress, succeeded, warning, failed" in bogus.stderr


def test_sync_plan_cuts_long_values_and_its_json_keeps_them_whole(tmp_path, sandbox):
    home = tmp_path / "home"
    with duckdb.connect(str(tmp_path / "app.duckdb")) as con:
        con.execute(
            "CREATE TABLE users AS SELECT 1 AS id, 'a@example.com' AS email, repeat('x', 5000) AS bio, "
            "range(50) AS visits"
        )
    project = write_project(
        tmp_path,
        sandbox.url,
        table="users",
        source={"type": "duckdb", "path": str(tmp_path / "app.duckdb")},
        mappings=[{"from": "email", "to": "email"}, {"from": "bio", "to": "bio"}, {"from": "visits", "to": "visits"}],
    )
    plan = _cli(home, project, "sync", "plan", SYNC)
    assert plan.returncode == 0, plan.stderr
    assert "x" * 81 not in plan.stdout
    assert "x" * 80 + "… (5,000 chars)" in plan.stdout
    assert '"… (50 items)"' in plan.stdout
    assert "--json prints them whole" in plan.stdout

    whole = json.loads(_cli(home, project, "sync", "plan", SYNC, "--json").stdout)
    assert whole["sample_requests"][0]["users"][0]["dataFields"] == {"bio": "x" * 5000, "visits": list(range(50))}


def test_model_schema_shows_a_timestamptz_column_as_zoned(pg, tmp_path):
    pg.execute("CREATE TABLE events (id int PRIMARY KEY, email text, at_zoned timestamptz, at_local timestamp)")
    project = write_project(tmp_path, "http://127.0.0.1:9", table=f"{pg.schema}.events")
    home = tmp_path / "home"

    # The connector keeps the zone: timestamptz is an instant in UTC, timestamp has none.
    schema = service.model_schema(service.open_workspace(project, home=home), "customers")
    assert schema.field("at_zoned").type.tz == "UTC"
    assert schema.field("at_local").type.tz is None

    shown = _cli(home, project, "model", "schema", "customers")
    assert shown.returncode == 0, shown.stderr
    assert "timestamp[us, tz=UTC]" in shown.stdout
    assert "timestamp[us]" in shown.stdout
