"""Row outcomes are stored in bulk (Parquet parts beside the CDC state) and still paged and searched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import insert, select

from smartingest import service
from smartingest.codes import ReasonCode
from smartingest.engine.ledger import Ledger, RowOutcome
from smartingest.engine.outcome_files import OutcomeFiles
from smartingest.engine.settler import verdict_table
from smartingest.errors import StateError
from smartingest.iterable.outcomes import SYNCED, Rejected, Retry, Skipped
from smartingest.store.db import open_database
from smartingest.store.tables import LegacyRunRow
from tests.conftest import write_project


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger(open_database(f"sqlite:///{tmp_path / 'meta.db'}"), OutcomeFiles(tmp_path / "outcomes"))


def test_a_damaged_part_is_an_error_naming_the_run(tmp_path):
    ledger = _ledger(tmp_path)
    run_id = ledger.create_run("s", full_resync=False)
    ledger.record(run_id, [RowOutcome("1", "added", "synced")])
    ledger.outcomes.parts("s", run_id)[0].write_bytes(b"not parquet")

    with pytest.raises(StateError, match=f"the row outcomes of run {run_id} in .* cannot be read"):
        ledger.rows(run_id)


def test_outcomes_are_paged_in_settling_order_and_filtered(tmp_path):
    ledger = _ledger(tmp_path)
    run_id = ledger.create_run("s", full_resync=False)
    ledger.record(run_id, [RowOutcome(str(i), "added", "synced") for i in range(1, 6)])
    ledger.record(
        run_id,
        [
            RowOutcome("6", "changed", "rejected", "email not valid", "invalid_email"),
            RowOutcome("7", "removed", "retry", "503", "unavailable"),
            RowOutcome(None, "invalid", "invalid", "primary key id is null", "null_key"),
        ],
    )
    assert [r.pk for r in ledger.rows(run_id)] == ["1", "2", "3", "4", "5", "6", "7", None]
    assert [r.pk for r in ledger.rows(run_id, limit=3, offset=4)] == ["5", "6", "7"]
    assert ledger.rows(run_id, status="rejected") == [
        RowOutcome("6", "changed", "rejected", "email not valid", "invalid_email")
    ]
    assert [r.pk for r in ledger.rows(run_id, operation="removed")] == ["7"]
    assert [r.pk for r in ledger.rows(run_id, reason_code="null_key")] == [None]
    assert [r.status for r in ledger.rows(run_id, primary_key="3")] == ["synced"]
    assert ledger.rows(run_id, primary_key="3' OR '1'='1") == []  # a value, never SQL
    assert ledger.count_rows(run_id) == 8
    assert ledger.count_rows(run_id, status="synced", operation="added") == 5
    assert ledger.tally(run_id) == {"synced": 5, "rejected": 1, "retry": 1, "invalid": 1}
    assert ledger.rows(run_id + 1) == [] and ledger.count_rows(run_id + 1) == 0  # no such run


def test_a_half_written_part_is_never_read(tmp_path):
    ledger = _ledger(tmp_path)
    run_id = ledger.create_run("s", full_resync=False)
    ledger.record(run_id, [RowOutcome("1", "added", "synced")])
    # What a process killed while writing a part leaves behind.
    (ledger.outcomes.run_dir("s", run_id) / "part-000002.parquet.tmp").write_bytes(b"PAR1 torn")
    assert ledger.tally(run_id) == {"synced": 1}
    ledger.record(run_id, [RowOutcome("2", "added", "synced")])
    assert [r.pk for r in ledger.rows(run_id)] == ["1", "2"]


def test_verdicts_become_columns_once_per_distinct_verdict():
    refused = Rejected("email not valid", ReasonCode.INVALID_EMAIL)
    table = verdict_table(
        ["1", "2", "3", "4"], ["added", "changed", "added", "removed"], [SYNCED, refused, SYNCED, Retry("503")]
    )
    assert table.column("status").to_pylist() == ["synced", "rejected", "synced", "retry"]
    assert table.column("reason").to_pylist() == [None, "email not valid", None, "503"]
    assert table.column("reason_code").to_pylist() == [None, "invalid_email", None, "unavailable"]
    assert table.column("commits").to_pylist() == [True, False, True, False]
    assert table.column("operation").to_pylist() == ["added", "changed", "added", "removed"]
    all_synced = verdict_table(["1", "2"], ["added", "added"], [SYNCED, SYNCED])
    assert all_synced.column("status").to_pylist() == ["synced", "synced"]
    assert all_synced.column("commits").to_pylist() == [True, True]
    skipped = verdict_table(["1"], ["changed"], [Skipped("no such user")])
    assert skipped.column("commits").to_pylist() == [True]
    assert skipped.column("reason_code").to_pylist() == ["no_such_user"]


def test_a_million_row_outcomes_take_under_ten_megabytes(tmp_path):
    ledger = _ledger(tmp_path)
    run_id = ledger.create_run("s", full_resync=False)
    n = 1_000_000
    pks = pa.array([str(i) for i in range(1, n + 1)])
    for start in range(0, n, 100_000):  # the parts a run of the default checkpoint_rows writes
        table = verdict_table(pks.slice(start, 100_000), ["added"] * 100_000, [SYNCED] * 100_000)
        ledger.record(run_id, table.drop_columns(["commits"]))
    assert ledger.tally(run_id) == {"synced": n}
    assert ledger.outcomes.size("s", run_id) < 10 * 1024 * 1024
    assert [r.pk for r in ledger.rows(run_id, primary_key="765432")] == ["765432"]


def test_outcomes_an_earlier_version_kept_in_the_database_are_moved_to_files(tmp_path):
    ledger = _ledger(tmp_path)
    run_id = ledger.create_run("s", full_resync=False)
    other = ledger.create_run("t", full_resync=False)
    no_reason = {"reason": None, "reason_code": None}
    with ledger.engine.begin() as con:
        con.execute(
            insert(LegacyRunRow),
            [
                {"run_id": run_id, "primary_key": "1", "operation": "added", "status": "synced", **no_reason},
                {
                    "run_id": run_id,
                    "primary_key": "2",
                    "operation": "added",
                    "status": "rejected",
                    "reason": "bad email",
                    "reason_code": "invalid_email",
                },
                {"run_id": other, "primary_key": "9", "operation": "removed", "status": "synced", **no_reason},
            ],
        )
    assert ledger.adopt_legacy_rows() == 2
    assert ledger.rows(run_id) == [
        RowOutcome("1", "added", "synced"),
        RowOutcome("2", "added", "rejected", "bad email", "invalid_email"),
    ]
    assert ledger.rows(other) == [RowOutcome("9", "removed", "synced")]
    with ledger.engine.connect() as con:
        assert con.execute(select(LegacyRunRow.id)).all() == []
    assert ledger.adopt_legacy_rows() == 0


def test_runs_show_filters_by_operation_code_and_key(tmp_path, sandbox):
    import sqlite3

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT)")
        con.executemany("INSERT INTO users VALUES (?, ?)", [("a", "a@example.com"), ("b", "no email"), ("c", None)])
    project = write_project(
        tmp_path,
        sandbox.url,
        table="users",
        source={"type": "sqlite", "path": str(db)},
        mappings=[{"from": "email", "to": "email"}],
    )
    env = {**os.environ, "SMARTINGEST_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "smartingest", "--project", str(project), *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout)

    run = cli("sync", "run", "customers_to_users")
    rows = cli("runs", "show", str(run["run_id"]), "--code", "no_identifier")["rows"]
    assert [row["pk"] for row in rows] == ["c"]
    assert [row["pk"] for row in cli("runs", "show", str(run["run_id"]), "--key", "b")["rows"]] == ["b"]
    assert cli("runs", "show", str(run["run_id"]), "--operation", "removed")["rows"] == []
    ws = service.open_workspace(project, home=tmp_path / "home")
    assert service.count_rows(ws, run["run_id"], operation="added") == 3


def test_a_failed_write_of_outcomes_surfaces_when_the_settler_closes(tmp_path):
    from smartingest.engine.progress import NoProgress
    from smartingest.engine.settler import Settler

    blocked = tmp_path / "outcomes"
    blocked.write_text("a file where the outcome directory should be")
    ledger = Ledger(open_database(f"sqlite:///{tmp_path / 'meta.db'}"), OutcomeFiles(blocked))
    run_id = ledger.create_run("s", full_resync=False)

    class Nowhere:  # the change set is not under test: only the outcome files fail here
        def settle(self, *columns) -> None:
            pass

    settler = Settler(Nowhere(), ledger, run_id, NoProgress(), flush_rows=2)  # type: ignore[arg-type]
    settler.settle([("1", "added", SYNCED), ("2", "added", SYNCED)])  # a flush: written on the settler's thread
    with pytest.raises(OSError):
        settler.close()
