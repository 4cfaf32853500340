"""A run that fails before delivery, as a user meets it: a real `smartingest sync run` process.

Each failure ends as a failed run with complete counts, one error line that says what is wrong, and
exit status 1; never an internal error (exit 70).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smartingest import service
from smartingest.store.tables import COUNT_NAMES
from tests.conftest import create_customers, write_project

SYNC = "customers_to_users"


def _sync_run(project: Path, home: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`smartingest sync run` in a process of its own (``prefix``: a command that runs it, e.g. setpriv)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", SYNC],
        env={**os.environ, "SMARTINGEST_HOME": str(home), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_clear_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "internal error" not in output
    assert "Traceback" not in output
    assert output.count("error:") == 1, output
    assert expected in output, output


def _pg_source(**changes: Any) -> dict[str, Any]:
    return {"type": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres", **changes}


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


# -- failures found before any row is read: (project file arguments, words the error must contain) -------------

BEFORE_READING: dict[str, Callable[[Any], tuple[dict[str, Any], str]]] = {
    "missing SQLite file": lambda pg: (
        {"source": {"type": "sqlite", "path": "missing.sqlite"}, "table": "customers"},
        "does not exist",
    ),
    "wrong role": lambda pg: ({"source": _pg_source(user="no_such_role"), "sql": _sql(pg)}, "no_such_role"),
    "wrong database": lambda pg: ({"source": _pg_source(database="no_such_db"), "sql": _sql(pg)}, "no_such_db"),
    "wrong port": lambda pg: ({"source": _pg_source(port=1), "sql": _sql(pg)}, "127.0.0.1"),
    "bytea column mapped": lambda pg: (
        {
            "sql": f"select id, email, photo from {pg.schema}.customers",
            "mappings": [{"from": "email", "to": "email"}, {"from": "photo", "to": "photo"}],
        },
        "photo",
    ),
}


@pytest.mark.parametrize("case", list(BEFORE_READING))
def test_a_failure_before_planning_is_a_failed_run_with_one_clear_error(pg, tmp_path, case):
    create_customers(pg, 3)
    pg.execute("ALTER TABLE customers ADD COLUMN photo bytea DEFAULT '\\x0102'::bytea")
    project_args, expected = BEFORE_READING[case](pg)
    project = write_project(tmp_path, "http://127.0.0.1:9", **project_args)
    home = tmp_path / "home"

    result = _sync_run(project, home)

    _assert_one_clear_error(result, expected)
    [run] = service.list_runs(service.open_workspace(project, home=home), SYNC)
    assert run.status == "failed"
    assert expected in run.error
    assert set(run.counts) == set(COUNT_NAMES)
    assert not any(run.counts.values())


# -- failures of a later run, after a first run that succeeded --------------------------------------------------


def _drop_table(pg, state_dir: Path) -> str:
    pg.execute("DROP TABLE customers")
    return "customers"


def _truncate_snapshot(pg, state_dir: Path) -> str:
    [snapshot] = state_dir.rglob("snapshot.parquet")
    data = snapshot.read_bytes()
    snapshot.write_bytes(data[: len(data) // 2])
    return "snapshot"


def _garble_snapshot(pg, state_dir: Path) -> str:
    [snapshot] = state_dir.rglob("snapshot.parquet")
    snapshot.write_bytes(b"not a parquet file at all")
    return "snapshot"


@pytest.mark.parametrize("damage", [_drop_table, _truncate_snapshot, _garble_snapshot])
def test_a_later_run_that_cannot_plan_fails_with_one_clear_error(pg, sandbox, tmp_path, damage):
    create_customers(pg, 20)
    project = write_project(tmp_path, sandbox.url, sql=_sql(pg))
    home = tmp_path / "home"
    ws = service.open_workspace(project, home=home)
    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error

    expected = damage(pg, ws.state_dir)
    result = _sync_run(project, home)

    _assert_one_clear_error(result, expected)
    failed = service.list_runs(ws, SYNC)[0]
    assert failed.status == "failed"
    assert set(failed.counts) == set(COUNT_NAMES)
    assert failed.counts["synced"] == 0


# -- a state directory smartingest cannot write -----------------------------------------------------------------


def test_state_dir_under_a_regular_file_is_a_clear_state_error(pg, tmp_path):
    create_customers(pg, 3)
    (tmp_path / "blocker").write_text("a file, not a directory", encoding="utf-8")
    project = write_project(tmp_path, "http://127.0.0.1:9", sql=_sql(pg))
    text = project.read_text(encoding="utf-8")
    project.write_text("state_dir: blocker/state\n" + text, encoding="utf-8")

    result = _sync_run(project, tmp_path / "home")

    _assert_one_clear_error(result, f"the state directory {tmp_path / 'blocker' / 'state'} is not usable")
    assert "Not a directory" in result.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop the file-permission override")
def test_state_dir_without_write_permission_is_a_clear_state_error(pg, tmp_path):
    """A directory without write permission. Tests run as root, which ignores file modes; the process
    runs without the capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), like any user."""
    create_customers(pg, 3)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    project = write_project(tmp_path, "http://127.0.0.1:9", sql=_sql(pg))
    text = project.read_text(encoding="utf-8")
    project.write_text("state_dir: locked/state\n" + text, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()

    result = _sync_run(project, home, prefix=("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"))

    _assert_one_clear_error(result, f"the state directory {locked / 'state'} is not usable")
    assert "Permission denied" in result.stderr
