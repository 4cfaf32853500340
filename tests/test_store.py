"""The metadata database: migrations on SQLite and PostgreSQL, and the ledger on both."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from smartingest.engine.ledger import Ledger, RowOutcome
from smartingest.engine.outcome_files import OutcomeFiles
from smartingest.store.db import HEAD_REVISION, MIGRATIONS, current_revision, open_database
from tests.conftest import fresh_pg_database


def test_head_revision_constant_matches_the_migrations():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    with fresh_pg_database() as url:
        yield url


def test_ledger_round_trip(database_url, tmp_path):
    engine = open_database(database_url)
    assert current_revision(engine) == HEAD_REVISION
    assert {"sync_runs", "run_rows"} <= set(inspect(engine).get_table_names())
    outcomes = OutcomeFiles(tmp_path / "outcomes")
    ledger = Ledger(engine, outcomes)
    run_id = ledger.create_run("s", full_resync=False)
    ledger.set_status(run_id, "querying")
    ledger.record(
        run_id,
        [
            RowOutcome("1", "added", "synced"),
            RowOutcome("2", "added", "rejected", "bad email"),
            RowOutcome(None, "invalid", "invalid", "primary key id is null"),
        ],
    )
    assert ledger.tally(run_id) == {"synced": 1, "rejected": 1, "invalid": 1}
    ledger.finish(run_id, "warning", {"queried": 3, "synced": 1, "rejected": 1, "invalid": 1}, {"total": 0.5}, None)
    run = ledger.get_run(run_id)
    assert run.status == "warning"
    assert run.counts["queried"] == 3
    assert run.timings == {"total": 0.5}
    assert [r.pk for r in ledger.rows(run_id, status="rejected")] == ["2"]
    open_database(database_url)  # reopening an up-to-date database migrates nothing and keeps the data
    assert Ledger(engine, outcomes).get_run(run_id).status == "warning"
    assert [r.pk for r in Ledger(engine, outcomes).rows(run_id)] == ["1", "2", None]


def test_recent_runs_of_many_syncs_come_newest_first_in_one_query(database_url, tmp_path):
    ledger = Ledger(open_database(database_url), OutcomeFiles(tmp_path / "outcomes"))
    made: dict[str, list[int]] = {"a": [], "b": []}
    for sync_id in ("a", "b", "a", "a", "b", "a"):  # interleaved, as runs of different syncs are
        made[sync_id].append(ledger.create_run(sync_id, full_resync=False))
    ledger.create_run("other", full_resync=False)

    recent = ledger.recent_runs(["a", "b", "never-ran"], per_sync=3)

    assert {sync_id: [run.id for run in runs] for sync_id, runs in recent.items()} == {
        "a": made["a"][::-1][:3],
        "b": made["b"][::-1],
        "never-ran": [],
    }
    assert ledger.recent_runs([], per_sync=3) == {}


def test_abandoned_runs_are_failed(tmp_path):
    ledger = Ledger(open_database(f"sqlite:///{tmp_path / 'meta.db'}"), OutcomeFiles(tmp_path / "outcomes"))
    stuck = ledger.create_run("s", full_resync=False)
    ledger.set_status(stuck, "in_progress")
    other = ledger.create_run("other", full_resync=False)
    assert ledger.fail_abandoned("s", "interrupted") == [stuck]
    assert ledger.get_run(stuck).status == "failed"
    assert ledger.get_run(other).status == "queued"


def test_bad_database_url_is_a_config_error(tmp_path):
    from smartingest.errors import ConfigError

    with pytest.raises(ConfigError, match="database_url"):
        open_database("nosuchdialect://x")
    with pytest.raises(ConfigError, match="cannot open the metadata database"):
        open_database("postgresql+psycopg://postgres@127.0.0.1:1/none")


def test_a_database_of_an_older_revision_is_upgraded(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    assert current_revision(old) == "0001"
    engine = open_database(url)
    assert current_revision(engine) == HEAD_REVISION
    assert "delivery" in {c["name"] for c in inspect(engine).get_columns("sync_runs")}


def test_runs_recorded_before_syncs_had_ids_belong_to_the_id_their_name_is(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(
            text(
                "INSERT INTO sync_runs (sync_name, status, trigger, full_resync, created_at) "
                "VALUES (:n, 'succeeded', 'manual', 0, '2026-01-01')"
            ),
            {"n": "people"},
        )
    ledger = Ledger(open_database(url), OutcomeFiles(tmp_path / "outcomes"))
    [run] = ledger.list_runs("people")
    assert (run.sync_id, run.sync_name) == ("people", "people")


def test_processes_opening_a_new_database_at_once_all_find_it_migrated(tmp_path):
    # Each process finds the database behind and migrates it; all must end up using it, none failing.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    probe = f"from smartingest.store.db import open_database; open_database({url!r}); print('ok')"
    runs = [
        subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert (run.returncode, out.strip()) == (0, b"ok"), err.decode()[-2000:]
