"""The Basic CDC engine on a real DuckDB source file: counts, commits, crash safety, hash schemes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from smartingest.cdc.base import OP, PK, HashSpec
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.sources.registry import open_source

SPEC = HashSpec("id", ("email", "plan"), "fingerprint-1")
MODEL = ModelConfig(source="db", table="users", primary_key="id")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE users AS SELECT i AS id, 'u' || i || '@x.io' AS email, 'free' AS plan FROM range(1, 101) t(i)"
        )
    return path


def _source(path: Path):
    return open_source("db", SourceConfig.model_validate({"type": "duckdb", "path": str(path)}))


def _sql(path: Path, statement: str) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(statement)


def _plan_and_commit(detector, path, acknowledge=lambda pk, op: True, full_resync=False, spec=SPEC):
    change_set = detector.plan("sync", _source(path), MODEL, spec, full_resync)
    try:
        rows = [
            row
            for batch in change_set.changes(7)
            for row in zip(batch.column(PK).to_pylist(), batch.column(OP).to_pylist(), strict=True)
        ]
        change_set.settle([pk for pk, _ in rows], [op for _, op in rows], [acknowledge(pk, op) for pk, op in rows])
        change_set.commit()
        return change_set.counts, rows
    finally:
        change_set.close()


def test_counts_across_runs(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    counts, rows = _plan_and_commit(detector, db)
    assert (counts.queried, counts.added, counts.changed, counts.removed) == (100, 100, 0, 0)
    assert detector.snapshot_size("sync") == 100

    counts, rows = _plan_and_commit(detector, db)
    assert (counts.unchanged, counts.added, counts.changed, counts.removed) == (100, 0, 0, 0)
    assert rows == []

    _sql(db, "UPDATE users SET plan = 'pro' WHERE id <= 5")
    _sql(db, "DELETE FROM users WHERE id > 97")
    _sql(db, "INSERT INTO users VALUES (500, 'new@x.io', 'free')")
    counts, rows = _plan_and_commit(detector, db)
    assert (counts.queried, counts.unchanged, counts.added, counts.changed, counts.removed) == (98, 92, 1, 5, 3)
    assert sorted(pk for pk, op in rows if op == "removed") == ["100", "98", "99"]
    assert detector.snapshot_size("sync") == 98
    assert detector.snapshot_size("sync") == 98  # counted once per state of the files, asked again
    assert detector.reset("sync") and detector.snapshot_size("sync") == 0


def test_unacknowledged_rows_keep_their_old_state(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    _sql(db, "UPDATE users SET plan = 'pro' WHERE id <= 10")
    _sql(db, "DELETE FROM users WHERE id = 50")
    # Rows 1-3 and the removal fail: they must come back next run, the others must not.
    counts, _ = _plan_and_commit(detector, db, acknowledge=lambda pk, op: pk not in ("1", "2", "3", "50"))
    assert (counts.changed, counts.removed) == (10, 1)
    counts, rows = _plan_and_commit(detector, db)
    assert sorted(rows) == [("1", "changed"), ("2", "changed"), ("3", "changed"), ("50", "removed")]


def test_a_crash_before_commit_leaves_the_snapshot_whole(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    before = pq.read_table(detector.snapshot_path("sync"))
    _sql(db, "UPDATE users SET plan = 'pro'")
    change_set = detector.plan("sync", _source(db), MODEL, SPEC)
    change_set.settle(["1"], ["changed"], [True])
    change_set.close()  # the process "dies" here: no commit
    assert pq.read_table(detector.snapshot_path("sync")).equals(before)
    counts, _ = _plan_and_commit(detector, db)
    assert counts.changed == 100


def test_duplicate_and_null_keys_are_invalid_and_not_removed(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    _sql(db, "INSERT INTO users VALUES (7, 'dup@x.io', 'free'), (NULL, 'nokey@x.io', 'free')")
    counts, rows = _plan_and_commit(detector, db)
    assert (counts.queried, counts.invalid, counts.unchanged, counts.removed) == (102, 3, 99, 0)
    assert rows == []
    assert detector.snapshot_size("sync") == 100  # key 7 keeps its state until it is unique again


def test_full_resync_and_mapping_change_send_every_row(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    counts, _ = _plan_and_commit(detector, db, full_resync=True)
    assert counts.changed == 100
    counts, _ = _plan_and_commit(detector, db, spec=HashSpec("id", ("email", "plan"), "fingerprint-2"))
    assert counts.changed == 100


def test_snapshot_of_another_hash_scheme_resends_by_key(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    path = detector.snapshot_path("sync")
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({"hash_scheme": "some-older-scheme"}), path)
    _sql(db, "DELETE FROM users WHERE id = 1")
    counts, _ = _plan_and_commit(detector, db)
    assert (counts.changed, counts.removed, counts.added) == (99, 1, 0)
    counts, _ = _plan_and_commit(detector, db)
    assert counts.unchanged == 99


def test_a_primary_key_that_changes_type_is_diffed_by_value(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    # Same values as text: nothing changed. Then keys that are not numbers: old keys removed, new added.
    _sql(db, "ALTER TABLE users ALTER id TYPE VARCHAR")
    counts, _ = _plan_and_commit(detector, db)
    assert (counts.unchanged, counts.added, counts.removed) == (100, 0, 0)
    _sql(db, "UPDATE users SET id = 'k' || id")
    counts, _ = _plan_and_commit(detector, db)
    assert (counts.added, counts.removed) == (100, 100)
    _sql(db, "CREATE OR REPLACE TABLE users AS SELECT 1::BIGINT AS id, 'u1@x.io' AS email, 'free' AS plan")
    counts, rows = _plan_and_commit(detector, db)
    assert (counts.added, counts.removed) == (1, 100)
    assert ("1", "added") in rows
