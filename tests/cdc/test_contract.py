"""The CDC contract: what every engine promises through the ChangeDetector seam, on every database it runs
on (each test runs for Basic and Lightning on DuckDB, PostgreSQL and MariaDB)."""

from __future__ import annotations

import pyarrow as pa

from smartingest.cdc.base import IDENT, OP, PK, SAME_BEFORE, ChangeSet, HashSpec
from smartingest.config.models import ModelConfig
from smartingest.sources.registry import open_source
from tests.cdc.conftest import SPEC, SYNC, Harness


def test_counts_across_runs(harness: Harness):
    harness.db.create_users(100)
    first = harness.run()
    assert (first.counts.queried, first.counts.added, first.counts.changed, first.counts.removed) == (100, 100, 0, 0)
    assert harness.detector().snapshot_size(SYNC) == 100

    second = harness.run()
    assert (second.counts.unchanged, second.counts.added, second.counts.changed, second.counts.removed) == (
        100,
        0,
        0,
        0,
    )
    assert second.rows == []

    harness.db.execute(f"UPDATE {harness.db.table()} SET plan = 'pro' WHERE id <= 5")
    harness.db.execute(f"DELETE FROM {harness.db.table()} WHERE id > 97")
    harness.db.insert("users", [(500, "new@x.io", "free")])
    third = harness.run()
    counts = third.counts
    assert (counts.queried, counts.unchanged, counts.added, counts.changed, counts.removed) == (98, 92, 1, 5, 3)
    assert third.ops == {"added": ["500"], "changed": ["1", "2", "3", "4", "5"], "removed": ["100", "98", "99"]}
    assert harness.detector().snapshot_size(SYNC) == 98
    assert harness.detector().reset(SYNC)
    assert harness.detector().snapshot_size(SYNC) == 0
    assert harness.run().counts.added == 98


def test_changes_carry_the_model_columns_the_key_text_and_the_identifier(harness: Harness):
    harness.db.create_users(3)
    harness.db.execute(f"UPDATE {harness.db.table()} SET email = ' U2@X.io ' WHERE id = 2")
    run = harness.run()
    table = pa.Table.from_batches(run.batches).sort_by(PK)
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("email").to_pylist() == ["u1@x.io", " U2@X.io ", "u3@x.io"]
    assert table.column(PK).to_pylist() == ["1", "2", "3"]
    assert table.column(IDENT).to_pylist() == ["u1@x.io", "u2@x.io", "u3@x.io"]
    assert table.column(OP).to_pylist() == ["added"] * 3


def test_unacknowledged_rows_keep_their_old_state(harness: Harness):
    harness.db.create_users(100)
    harness.run()
    harness.db.execute(f"UPDATE {harness.db.table()} SET plan = 'pro' WHERE id <= 10")
    harness.db.execute(f"DELETE FROM {harness.db.table()} WHERE id = 50")
    run = harness.run(acknowledge=lambda pk, op: pk not in ("1", "2", "3", "50"))
    assert (run.counts.changed, run.counts.removed) == (10, 1)
    assert sorted(harness.run().rows) == [("1", "changed"), ("2", "changed"), ("3", "changed"), ("50", "removed")]


def test_a_run_that_dies_before_its_commit_leaves_the_snapshot_whole(harness: Harness):
    harness.db.create_users(20)
    harness.run()
    harness.db.execute(f"UPDATE {harness.db.table()} SET plan = 'pro'")
    harness.run(commit=False)
    assert harness.run().counts.changed == 20


def _every_row_changed(harness: Harness) -> tuple[ChangeSet, list[tuple[str, str]]]:
    """20 users synced, then all changed: the next run's change set, planned, and its rows (key, op), read."""
    harness.db.create_users(20)
    harness.run()
    harness.db.execute(f"UPDATE {harness.db.table()} SET plan = 'pro'")
    change_set = harness.detector().plan(SYNC, open_source("db", harness.config()), harness.model, SPEC)
    table = pa.Table.from_batches(list(change_set.changes(6)))
    return change_set, sorted(zip(table[PK].to_pylist(), table[OP].to_pylist(), strict=True))


def _acknowledge(change_set: ChangeSet, rows: list[tuple[str, str]]) -> None:
    change_set.settle([pk for pk, _ in rows], [op for _, op in rows], [True] * len(rows))


def test_a_checkpoint_makes_what_was_acknowledged_before_it_durable(harness: Harness):
    change_set, rows = _every_row_changed(harness)
    try:
        _acknowledge(change_set, rows[:5])
        assert change_set.checkpoint() == 5
    finally:
        change_set.close()  # the run dies after its checkpoint
    assert harness.run().counts.changed == 15


def test_rows_acknowledged_between_checkpoints_make_the_next_one_and_the_unsettled_stay_pending(harness: Harness):
    change_set, rows = _every_row_changed(harness)
    try:
        for part, durable in ((rows[:5], 5), (rows[5:12], 7), ([], 0)):
            _acknowledge(change_set, part)
            assert change_set.checkpoint() == durable
        _acknowledge(change_set, rows[12:18])  # two rows are never settled
        change_set.commit()
    finally:
        change_set.close()
    assert sorted(harness.run().rows) == rows[18:]
    assert harness.run().rows == []


def test_null_duplicate_and_shared_keys_are_invalid_with_their_reason(harness: Harness):
    harness.db.create_users(10)
    harness.run()
    harness.db.insert(
        "users", [(7, "dup@x.io", "free"), (None, "nokey@x.io", "free"), (11, "U1@X.IO", "free"), (12, "", "free")]
    )
    run = harness.run()
    counts = run.counts
    assert (counts.queried, counts.invalid, counts.unchanged, counts.added, counts.removed) == (14, 5, 8, 1, 0)
    assert run.ops == {"added": ["12"]}
    reasons = [(pk, reason.split(" (")[0].split(":")[0]) for pk, reason in run.invalid]
    assert reasons == [
        (None, "primary key id is null"),
        ("1", "email 'u1@x.io'"),
        ("11", "email 'u1@x.io'"),
        ("7", "primary key id = 7 appears 2 times in the model"),
        ("7", "primary key id = 7 appears 2 times in the model"),
    ]
    assert "is also the identifier of the row(s) with primary key 11" in dict(run.invalid)["1"]
    assert harness.detector().snapshot_size(SYNC) == 11  # key 7 and row 1 keep their state until valid again


def test_full_resync_and_mapping_changes_send_every_row_again(harness: Harness):
    harness.db.create_users(10)
    harness.run()
    assert harness.run(full_resync=True).counts.changed == 10
    remapped = HashSpec("id", ("email", "plan"), "fingerprint-2", SPEC.identity)
    run = harness.run(spec=remapped)
    assert run.counts.changed == 10 and run.remapped is not None
    assert harness.run(spec=remapped).counts.changed == 0


def test_another_baseline_sends_every_row_as_added_and_removes_nothing(harness: Harness):
    harness.db.create_users(10)
    harness.run(spec=HashSpec("id", ("email", "plan"), "fingerprint-1", SPEC.identity, baseline='{"project": 1}'))
    harness.db.execute(f"DELETE FROM {harness.db.table()} WHERE id = 1")
    elsewhere = HashSpec("id", ("email", "plan"), "fingerprint-1", SPEC.identity, baseline='{"project": 2}')
    run = harness.run(spec=elsewhere)
    assert (run.counts.added, run.counts.changed, run.counts.removed) == (9, 0, 0)
    assert run.new_baseline is not None and "project 1 -> 2" in run.new_baseline
    assert harness.detector().snapshot_size(SYNC) == 9
    again = harness.run(spec=elsewhere)
    assert (again.counts.unchanged, again.new_baseline) == (9, None)


def test_a_removed_row_keeps_the_identifier_it_was_committed_with(harness: Harness):
    harness.db.create_users(3)
    harness.run()
    harness.db.execute(f"UPDATE {harness.db.table()} SET email = 'changed@x.io' WHERE id = 2")
    harness.run(acknowledge=lambda pk, op: False)
    harness.db.execute(f"DELETE FROM {harness.db.table()} WHERE id = 2")
    run = harness.run()
    table = pa.Table.from_batches(run.batches)
    assert table.column(PK).to_pylist() == ["2"]
    assert table.column(OP).to_pylist() == ["removed"]
    assert table.column(IDENT).to_pylist() == ["u2@x.io"]
    assert table.column("email").to_pylist() == [None]


def test_composite_keys(harness: Harness):
    db = harness.db
    db.execute(f"CREATE TABLE {db.table('pairs')} (a BIGINT, b VARCHAR(10), v VARCHAR(10))")
    db.insert("pairs", [(1, "x", "one"), (1, "y", "two"), (2, "x", "three"), (None, "z", "no key")])
    model = ModelConfig(source="db", table=db.table("pairs"), primary_key=["a", "b"])
    spec = HashSpec(("a", "b"), ("v",), "fingerprint-1")
    first = harness.run(spec=spec, model=model)
    assert (first.counts.added, first.counts.invalid) == (3, 1)
    assert sorted(pk for pk, _ in first.rows) == ['[1,"x"]', '[1,"y"]', '[2,"x"]']
    db.execute(f"UPDATE {db.table('pairs')} SET v = 'changed' WHERE a = 1 AND b = 'y'")
    db.execute(f"DELETE FROM {db.table('pairs')} WHERE a = 2")
    second = harness.run(spec=spec, model=model)
    assert second.ops == {"changed": ['[1,"y"]'], "removed": ['[2,"x"]']}


def test_mappings_that_only_add_a_field_flag_the_rows_whose_columns_did_not_change(harness: Harness):
    harness.db.create_users(4)
    before = HashSpec("id", ("email",), "fp-a", None, parts=(("", "shared"), ("email", "e1")))
    harness.run(spec=before)
    harness.db.execute(f"UPDATE {harness.db.table()} SET email = 'new@x.io' WHERE id = 1")
    after = HashSpec("id", ("email", "plan"), "fp-b", None, parts=(("", "shared"), ("email", "e1"), ("plan", "p1")))
    run = harness.run(spec=after)
    table = pa.Table.from_batches(run.batches).sort_by(PK)
    assert table.column(PK).to_pylist() == ["1", "2", "3", "4"]
    assert table.column(SAME_BEFORE).to_pylist() == [False, True, True, True]


def test_an_identifier_shared_with_a_row_hashed_under_other_mappings_is_found(harness: Harness):
    harness.db.create_users(3)
    harness.run()
    other = HashSpec("id", ("email", "plan"), "fingerprint-2", SPEC.identity)
    harness.run(spec=other, acknowledge=lambda pk, op: pk == "1")  # rows 2 and 3 keep their first hashes
    harness.db.execute(f"UPDATE {harness.db.table()} SET email = 'U2@x.io' WHERE id = 1")
    run = harness.run()  # under the first mappings again: row 1 differs, rows 2 and 3 do not
    counts = run.counts
    assert (counts.invalid, counts.unchanged, counts.changed) == (2, 1, 0)
    assert [pk for pk, _ in run.invalid] == ["1", "2"]
