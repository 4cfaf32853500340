"""The Lightning engine reads only the rows written since the last run where PostgreSQL's row versions
say which (cdc/row_versions.py), and every row where they cannot.

A row whose snapshot hash is made wrong behind the engine's back shows which rows a run read: read, it
differs and is sent as changed; left unread, it is not. (The property test of test_engines_agree.py runs
the same on tables with a primary key, against the Basic engine, with rows refused and mappings changed.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smartingest.cdc.base import HashSpec
from smartingest.cdc.lightning import LightningChangeSet, snapshot_table
from smartingest.cdc.row_versions import Horizon, TableVersion
from smartingest.config.models import ModelConfig
from smartingest.errors import SourceConnectionError
from tests.cdc.conftest import SPEC, SYNC, Harness, PostgresDatabase


@pytest.fixture
def db() -> Iterator[PostgresDatabase]:
    database = PostgresDatabase()
    try:
        database.execute(
            f"CREATE TABLE {database.table()} (id BIGINT PRIMARY KEY, email VARCHAR(100), plan VARCHAR(20))"
        )
        database.insert("users", [(i, f"u{i}@x.io", "free") for i in range(1, 11)])
        yield database
    finally:
        database.close()


def _spoil_snapshot_hash(db: PostgresDatabase, key: int) -> None:
    """Make the snapshot's hash of ``key`` wrong, without writing the model's row."""
    snapshot = f"{db.planner_schema}.{snapshot_table(SYNC)}"
    db.execute(f"UPDATE {snapshot} SET __hash = __hash + 1 WHERE id = {key}")


def test_a_run_reads_only_the_rows_written_since_the_last_one(db: PostgresDatabase, tmp_path: Path):
    harness = Harness(db, "lightning", tmp_path / "state")
    assert harness.run().counts.added == 10
    _spoil_snapshot_hash(db, 5)
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id = 1")
    db.execute(f"INSERT INTO {db.table()} VALUES (11, 'u11@x.io', 'free')")
    db.execute(f"DELETE FROM {db.table()} WHERE id = 2")
    run = harness.run()
    assert run.ops == {"changed": ["1"], "added": ["11"], "removed": ["2"]}  # row 5 was not read
    assert (run.counts.unchanged, run.counts.queried) == (8, 10)
    assert harness.run().ops == {}


def test_the_snapshots_keys_are_kept_with_the_horizon_as_runs_add_and_remove_them(db: PostgresDatabase, tmp_path: Path):
    """The count of the snapshot's keys says whether a key left (as many rows met one as it holds): kept
    with the horizon, it must follow every merge, a removal Iterable refused included."""
    harness = Harness(db, "lightning", tmp_path / "state")

    def recorded_and_held() -> tuple[Any, ...]:
        planner = db.planner_schema
        row = db.con.execute(
            f"SELECT (SELECT snapshot_rows::bigint FROM {planner}.smartingest_horizons), "
            f"(SELECT count(*) FROM {planner}.{snapshot_table(SYNC)})"
        ).fetchone()
        assert row is not None
        return tuple(row)

    harness.run()
    assert recorded_and_held() == (10, 10)
    db.execute(f"DELETE FROM {db.table()} WHERE id = 2")
    db.execute(f"INSERT INTO {db.table()} VALUES (11, 'u11@x.io', 'free')")
    assert harness.run(acknowledge=lambda pk, op: op != "removed").ops == {"added": ["11"], "removed": ["2"]}
    assert recorded_and_held() == (11, 11)
    assert harness.run().ops == {"removed": ["2"]}
    assert recorded_and_held() == (10, 10)
    db.execute(f"DELETE FROM {db.table()} WHERE id = 3")
    db.execute(f"INSERT INTO {db.table()} VALUES (12, 'u12@x.io', 'free')")
    assert harness.run().ops == {"added": ["12"], "removed": ["3"]}
    assert recorded_and_held() == (10, 10)
    assert harness.run().ops == {}


def test_a_row_left_unacknowledged_is_read_again_though_nothing_wrote_it(db: PostgresDatabase, tmp_path: Path):
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id IN (3, 4)")
    db.execute(f"INSERT INTO {db.table()} VALUES (12, 'u12@x.io', 'free')")
    refused = harness.run(acknowledge=lambda pk, op: pk not in ("3", "12"))
    assert refused.ops == {"changed": ["3", "4"], "added": ["12"]}
    assert harness.run().ops == {"changed": ["3"], "added": ["12"]}
    assert harness.run().ops == {}


def test_a_row_two_rows_share_the_identifier_of_comes_back_once_it_is_its_own(db: PostgresDatabase, tmp_path: Path):
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    db.execute(f"UPDATE {db.table()} SET email = 'U1@x.io' WHERE id = 2")
    shared = harness.run()
    assert sorted(pk for pk, _ in shared.invalid) == ["1", "2"]
    db.execute(f"UPDATE {db.table()} SET email = 'u1@x.io' WHERE id = 1")  # row 2 is not written again
    db.execute(f"UPDATE {db.table()} SET email = 'u1+1@x.io' WHERE id = 1")
    assert harness.run().ops == {"changed": ["1", "2"]}


@pytest.mark.parametrize(
    "alteration",
    [
        "ALTER TABLE {table} ADD COLUMN score INT DEFAULT 1",  # fills every row without writing it
        "VACUUM FULL {table}",  # the table's file is made again
        "CREATE TABLE {table}_child () INHERITS ({table})",  # rows a child table holds carry its versions
    ],
    ids=["column-added", "rewritten", "inherited"],
)
def test_a_table_its_row_versions_cannot_speak_for_is_read_whole(db: PostgresDatabase, tmp_path: Path, alteration: str):
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    db.execute(alteration.format(table=db.table()))
    _spoil_snapshot_hash(db, 5)
    assert harness.run().ops == {"changed": ["5"]}


def test_other_mappings_read_every_row(db: PostgresDatabase, tmp_path: Path):
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    _spoil_snapshot_hash(db, 5)
    remapped = HashSpec(SPEC.key_columns, SPEC.columns, "fingerprint-2", SPEC.identity)
    assert len(harness.run(remapped).ops["changed"]) == 10
    assert harness.run(remapped).ops == {}


def test_a_run_that_stops_after_a_merge_leaves_the_next_one_to_read_every_row(
    db: PostgresDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    _spoil_snapshot_hash(db, 5)
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id = 1")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise SourceConnectionError("the connection broke")

    with monkeypatch.context() as patched:  # row 1's change is merged, then the run stops
        patched.setattr(LightningChangeSet, "_record_horizon", broken)
        with pytest.raises(SourceConnectionError):
            harness.run()
    assert harness.run().ops == {"changed": ["5"]}
    assert harness.run().ops == {}


def test_a_reset_forgets_the_horizon(db: PostgresDatabase, tmp_path: Path):
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    assert harness.detector().reset(SYNC)
    assert harness.run().counts.added == 10


@pytest.mark.parametrize(
    ("horizon", "next_xid", "covers"),
    [(1_000, 1_000, True), (1_000, 1_000 + 2**30 - 1, True), (1_000, 1_000 + 2**30, False), (5_000, 4_000, False)],
)
def test_a_horizon_too_far_behind_for_32_bit_row_versions_covers_nothing(horizon: int, next_xid: int, covers: bool):
    recorded = Horizon("table-1", horizon, "scheme", SPEC.baseline, SPEC.fingerprint, 10)
    assert recorded.covers(TableVersion("table-1", next_xid, next_xid), "scheme", SPEC) is covers
    assert not recorded.covers(TableVersion("table-2", next_xid, next_xid), "scheme", SPEC)


def test_a_composite_text_key_is_pending_and_read_by_its_columns(db: PostgresDatabase, tmp_path: Path):
    db.execute(f"CREATE TABLE {db.table('pairs')} (a TEXT, b INT, v VARCHAR(10), PRIMARY KEY (a, b))")
    db.insert("pairs", [(f"k{i}", i % 3, "x") for i in range(1, 9)])
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.model = ModelConfig(source="db", table=db.table("pairs"), primary_key=["a", "b"])
    spec = HashSpec(("a", "b"), ("v",), "fingerprint-1")
    harness.run(spec)
    snapshot = f"{db.planner_schema}.{snapshot_table(SYNC)}"
    db.execute(f"UPDATE {snapshot} SET __hash = __hash + 1 WHERE a = 'k5'")  # not read: not sent
    db.execute(f"UPDATE {db.table('pairs')} SET v = 'y' WHERE a IN ('k1', 'k2')")
    refused = harness.run(spec, acknowledge=lambda pk, op: "k1" not in pk)
    assert len(refused.ops["changed"]) == 2
    again = harness.run(spec)
    assert len(again.ops["changed"]) == 1 and "k1" in again.ops["changed"][0]
    assert harness.run(spec).ops == {}
