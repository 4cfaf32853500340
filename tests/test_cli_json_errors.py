"""With --json every failure is JSON on stdout, with the exit code the same command has without --json.

Each command runs as a real process (``python -m smartingest``), as a script consuming the JSON would run it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from smartingest.engine.lock import sync_lock
from tests.conftest import write_project

SYNC = "customers_to_users"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartingest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SMARTINGEST_HOME": str(home), "COLUMNS": "200"},
    )


def _sqlite_project(tmp_path: Path, base_url: str = "http://127.0.0.1:9") -> Path:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        con.execute("INSERT INTO users VALUES (1, 'a@example.com')")
    return write_project(
        tmp_path,
        base_url,
        table="users",
        source={"type": "sqlite", "path": str(db)},
        mappings=[{"from": "email", "to": "email"}],
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_json_error(tmp_path: Path, args: list[str], code: int, kind: str, words: str) -> None:
    """The command fails with ``code`` both ways: as JSON on stdout with --json, as text on stderr without."""
    home = tmp_path / "home"
    as_json = _cli(home, *args, "--json")
    assert as_json.returncode == code, (as_json.stdout, as_json.stderr)
    error = json.loads(as_json.stdout)["error"]  # stdout holds the JSON document and nothing else
    assert error["type"] == kind
    assert words in error["message"]
    assert as_json.stderr == ""
    as_text = _cli(home, *args)
    assert as_text.returncode == code, as_text.stderr
    assert words in as_text.stderr
    assert as_text.stdout == ""


def test_a_config_error(tmp_path):
    _assert_json_error(
        tmp_path, ["--project", str(tmp_path / "none.yaml"), "runs", "list"], 2, "ConfigError", "not found"
    )


@pytest.mark.parametrize(
    ("args", "kind", "words"),
    [
        (["sync", "plan", "nope"], "UnknownNameError", "no sync named 'nope'"),
        (["model", "schema", "nope"], "UnknownNameError", "no model named 'nope'"),
        (["runs", "list", "--sync", "nope"], "UnknownNameError", "no sync named 'nope'"),
        (["runs", "show", "one"], "UsageError", "Invalid value for 'run_id'"),
        (["runs", "show", "1", "--status", "bogus"], "UsageError", "synced, rejected, retry, retried_next_run"),
        (["runs", "list", "--status", "bogus"], "UsageError", "queued, querying, in_progress, succeeded"),
    ],
)
def test_an_unknown_name_or_a_bad_argument(tmp_path, args, kind, words):
    project = _sqlite_project(tmp_path)
    _assert_json_error(tmp_path, ["--project", str(project), *args], 2, kind, words)


def test_a_missing_run(tmp_path):
    project = _sqlite_project(tmp_path)
    _assert_json_error(
        tmp_path, ["--project", str(project), "runs", "show", "999"], 1, "SmartIngestError", "no run #999"
    )


def test_a_held_lock(tmp_path):
    project = _sqlite_project(tmp_path)
    with sync_lock(tmp_path / "home" / "state", SYNC):
        _assert_json_error(
            tmp_path, ["--project", str(project), "sync", "run", SYNC], 1, "SyncLockedError", "already running"
        )


def test_a_connection_failure(tmp_path):
    source = {"type": "postgres", "host": "127.0.0.1", "port": _free_port(), "database": "test", "user": "postgres"}
    project = write_project(tmp_path, "http://127.0.0.1:9", table="customers", source=source)
    args = ["--project", str(project), "model", "schema", "customers"]
    _assert_json_error(tmp_path, args, 1, "SourceConnectionError", "cannot reach PostgreSQL")


def test_an_internal_error(tmp_path):
    project = _sqlite_project(tmp_path)
    assert _cli(tmp_path / "home", "--project", str(project), "runs", "list").returncode == 0
    # A metadata database someone damaged by hand: nothing smartingest expects, so it reports a bug.
    with sqlite3.connect(tmp_path / "home" / "metadata.db") as con:
        con.execute("DROP TABLE run_rows")
        con.execute("DROP TABLE sync_runs")
    _assert_json_error(tmp_path, ["--project", str(project), "runs", "list"], 70, "InternalError", "no such table")
    assert "internal error:" in _cli(tmp_path / "home", "--project", str(project), "runs", "list").stderr
