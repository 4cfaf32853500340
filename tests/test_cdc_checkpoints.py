"""Checkpoints of the Basic CDC engine: each writes only what was acknowledged since the previous one, and
a run that dies after it resends none of that; the run's commit folds them into the snapshot."""

from __future__ import annotations

import shutil

import duckdb

from smartingest.cdc.base import OP, PK, HashSpec
from smartingest.cdc.basic import BasicChangeDetector, checkpoint_numbers
from tests import test_cdc_basic
from tests.test_cdc_basic import MODEL, SPEC, _plan_and_commit, _source, _sql

db = test_cdc_basic.db  # the same 100-user DuckDB source, as a fixture of this module too


def _changes(change_set) -> list[tuple[str, str]]:
    return [
        row
        for batch in change_set.changes(1000)
        for row in zip(batch.column(PK).to_pylist(), batch.column(OP).to_pylist(), strict=True)
    ]


def _settle(change_set, rows: list[tuple[str, str]], commit: bool = True) -> None:
    change_set.settle([pk for pk, _ in rows], [op for _, op in rows], [commit] * len(rows))


def _crashed_run(detector, db, acknowledge: int, spec: HashSpec = SPEC) -> list[tuple[str, str]]:
    """A run that settles its first ``acknowledged`` changes, checkpoints, settles more, then dies."""
    change_set = detector.plan("sync", _source(db), MODEL, spec)
    rows = sorted(_changes(change_set), key=lambda r: int(r[0]))
    _settle(change_set, rows[:acknowledge])
    assert change_set.checkpoint() == acknowledge
    _settle(change_set, rows[acknowledge : acknowledge + 5])  # settled after the checkpoint: not durable
    change_set.close()  # the process dies: no commit
    return rows


def test_a_run_killed_after_a_checkpoint_resends_only_what_followed_it(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _crashed_run(detector, db, acknowledge=40)
    assert not detector.snapshot_path("sync").exists()  # no commit ever happened
    assert detector.snapshot_size("sync") == 40

    counts, rows = _plan_and_commit(detector, db)
    assert (counts.unchanged, counts.added) == (40, 60)
    assert sorted(int(pk) for pk, _ in rows) == list(range(41, 101))
    # The commit folded the checkpoint into the snapshot and tidied it away.
    assert checkpoint_numbers(detector.snapshot_path("sync").parent) == []
    assert detector.snapshot_size("sync") == 100
    counts, _ = _plan_and_commit(detector, db)
    assert counts.unchanged == 100


def test_checkpoints_carry_changes_and_removals_and_the_latest_one_decides(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    _sql(db, "UPDATE users SET plan = 'pro' WHERE id <= 10")
    _sql(db, "DELETE FROM users WHERE id > 95")
    change_set = detector.plan("sync", _source(db), MODEL, SPEC)
    rows = _changes(change_set)
    removed = [r for r in rows if r[1] == "removed"]
    changed = sorted((r for r in rows if r[1] == "changed"), key=lambda r: int(r[0]))
    _settle(change_set, removed[:3] + changed[:4])
    change_set.checkpoint()
    change_set.close()

    # A second run dies too, after acknowledging two more changes and changing row 1 again.
    _sql(db, "UPDATE users SET plan = 'team' WHERE id = 1")
    change_set = detector.plan("sync", _source(db), MODEL, SPEC)
    rows = dict(_changes(change_set))
    assert rows.get("1") == "changed"  # its checkpointed hash is of 'pro', the model now says 'team'
    assert sum(op == "removed" for op in rows.values()) == 2
    _settle(change_set, [("1", "changed"), ("5", "changed"), ("6", "changed")])
    change_set.checkpoint()
    change_set.close()
    assert len(checkpoint_numbers(detector.snapshot_path("sync").parent)) == 2

    counts, rows = _plan_and_commit(detector, db)
    assert (counts.changed, counts.removed) == (4, 2)
    assert sorted(int(pk) for pk, op in rows if op == "changed") == [7, 8, 9, 10]
    counts, _ = _plan_and_commit(detector, db)
    assert (counts.unchanged, counts.changed, counts.removed) == (95, 0, 0)


def test_rows_settled_without_commit_are_not_checkpointed(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    change_set = detector.plan("sync", _source(db), MODEL, SPEC)
    rows = _changes(change_set)
    _settle(change_set, rows[:10], commit=False)  # rejected, retried: they come back
    _settle(change_set, rows[10:30])
    assert change_set.checkpoint() == 20
    assert change_set.checkpoint() == 0  # nothing new since
    change_set.close()
    counts, _ = _plan_and_commit(detector, db)
    assert counts.added == 80


def test_a_checkpoint_the_snapshot_already_holds_is_ignored(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _crashed_run(detector, db, acknowledge=30)
    directory = detector.snapshot_path("sync").parent
    [number] = checkpoint_numbers(directory)
    kept = tmp_path / "kept.parquet"
    shutil.copy(directory / f"checkpoint-{number:06d}.parquet", kept)
    _plan_and_commit(detector, db)  # folds it in
    _sql(db, "UPDATE users SET plan = 'pro' WHERE id <= 30")
    _plan_and_commit(detector, db)
    # As if the process died between renaming the snapshot and deleting what it folded in.
    shutil.copy(kept, directory / f"checkpoint-{number:06d}.parquet")
    counts, rows = _plan_and_commit(detector, db)
    assert counts.unchanged == 100 and rows == []


def test_a_checkpoint_of_another_baseline_is_ignored(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _crashed_run(
        detector, db, acknowledge=30, spec=HashSpec("id", ("email", "plan"), "fingerprint-1", None, '{"a": 1}')
    )
    other = HashSpec("id", ("email", "plan"), "fingerprint-1", None, '{"a": 2}')
    counts, _ = _plan_and_commit(detector, db, spec=other)
    assert counts.added == 100


def test_rows_settled_by_key_without_being_read_are_checkpointed_too(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    change_set = detector.plan("sync", _source(db), MODEL, SPEC)
    _settle(change_set, [("1", "added"), ("2", "added")])  # the caller knew the keys; changes() never ran
    assert change_set.checkpoint() == 2
    change_set.close()
    counts, _ = _plan_and_commit(detector, db)
    assert (counts.unchanged, counts.added) == (2, 98)


def test_a_composite_key_survives_a_checkpoint(tmp_path):
    path = tmp_path / "regions.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE users AS SELECT CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END AS region, i AS id, "
            "'u' || i || '@x.io' AS email, 'free' AS plan FROM range(1, 41) t(i)"
        )
    model = MODEL.model_copy(update={"primary_key": ["region", "id"]})
    spec = HashSpec(("region", "id"), ("email", "plan"), "fingerprint-1")
    detector = BasicChangeDetector(tmp_path / "state")
    change_set = detector.plan("sync", _source(path), model, spec)
    rows = _changes(change_set)
    _settle(change_set, rows[:15])
    assert change_set.checkpoint() == 15
    change_set.close()

    change_set = detector.plan("sync", _source(path), model, spec)
    try:
        assert (change_set.counts.unchanged, change_set.counts.added) == (15, 25)
        assert {pk for pk, _ in _changes(change_set)}.isdisjoint(pk for pk, _ in rows[:15])
    finally:
        change_set.close()


def _files(detector) -> tuple[bytes, list[int]]:
    """The base file's bytes and the checkpoint numbers beside it."""
    path = detector.snapshot_path("sync")
    return path.read_bytes(), checkpoint_numbers(path.parent)


def test_a_small_change_is_committed_as_a_checkpoint_until_they_weigh_a_tenth_of_the_snapshot(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    base, checkpoints = _files(detector)
    assert checkpoints == []

    _sql(db, "UPDATE users SET plan = 'pro' WHERE id <= 4")
    counts, _ = _plan_and_commit(detector, db)
    assert counts.changed == 4
    assert _files(detector) == (base, [1])  # the base file is not rewritten for 4 rows of 100
    _sql(db, "DELETE FROM users WHERE id > 98")
    counts, _ = _plan_and_commit(detector, db)
    assert counts.removed == 2
    assert _files(detector) == (base, [1, 2])
    assert detector.snapshot_size("sync") == 98
    counts, _ = _plan_and_commit(detector, db)  # the checkpoints decide: nothing is sent again
    assert (counts.unchanged, counts.changed, counts.removed) == (98, 0, 0)

    # 4 + 2 + 5 rows would pass a tenth of the 100-row base: the commit folds them all into a new one.
    _sql(db, "UPDATE users SET plan = 'team' WHERE id BETWEEN 10 AND 14")
    counts, _ = _plan_and_commit(detector, db)
    assert counts.changed == 5
    folded, checkpoints = _files(detector)
    assert folded != base and checkpoints == []
    assert detector.snapshot_size("sync") == 98
    counts, _ = _plan_and_commit(detector, db)
    assert (counts.unchanged, counts.changed, counts.removed) == (98, 0, 0)


def test_a_run_that_had_nothing_acknowledged_leaves_the_snapshot_files_as_they_were(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _plan_and_commit(detector, db)
    before = _files(detector)
    _sql(db, "UPDATE users SET plan = 'pro' WHERE id <= 3")
    counts, _ = _plan_and_commit(detector, db, acknowledge=lambda pk, op: False)
    assert counts.changed == 3
    assert _files(detector) == before
    counts, _ = _plan_and_commit(detector, db)
    assert counts.changed == 3  # still to send
