"""Basic CDC when the mappings only added parts (HashSpec.parts): the changed rows whose columns are as
the snapshot holds them are flagged, so only the added parts go to them; anything else sends rows whole.
A real DuckDB source file and real snapshot files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from smartingest.cdc.base import OP, PK, SAME_BEFORE, HashSpec
from smartingest.cdc.basic import BasicChangeDetector
from tests.test_cdc_basic import MODEL, _source, _sql

PARTS = (("", "shared-1"), ("email", "e-1"), ("plan", "p-1"))
BEFORE = HashSpec("id", ("email", "plan"), "fingerprint-1", parts=PARTS)
WITH_CITY = HashSpec("id", ("city", "email", "plan"), "fingerprint-2", parts=(*PARTS, ("city", "c-1")))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            """CREATE TABLE users AS SELECT i AS id, 'u' || i || '@x.io' AS email, 'free' AS plan, 'Oslo' AS city
               FROM range(1, 11) t(i)"""
        )
    return path


def _changes(detector: BasicChangeDetector, db: Path, spec: HashSpec, acknowledge=lambda pk: True, **plan_options):
    """Plan, settle every change (acknowledged as told), commit; the change set and its rows."""
    change_set = detector.plan("sync", _source(db), MODEL, spec, **plan_options)
    try:
        batches = list(change_set.changes(4))
        table = pa.Table.from_batches(batches) if batches else pa.table({PK: [], OP: [], SAME_BEFORE: []})
        if table.num_rows:
            pks, ops = table.column(PK).to_pylist(), table.column(OP).to_pylist()
            change_set.settle(pks, ops, [acknowledge(pk) for pk in pks])
        change_set.commit()
        return change_set, table
    finally:
        change_set.close()


def _flagged(table: pa.Table) -> set[str]:
    pks, flags = table.column(PK).to_pylist(), table.column(SAME_BEFORE).to_pylist()
    return {pk for pk, same in zip(pks, flags, strict=True) if same}


def test_only_added_parts_flag_the_rows_whose_columns_did_not_change(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _changes(detector, db, BEFORE)
    _sql(db, "UPDATE users SET plan = 'pro' WHERE id IN (2, 3)")
    _sql(db, "INSERT INTO users VALUES (11, 'u11@x.io', 'free', 'Rome')")
    _sql(db, "DELETE FROM users WHERE id = 10")

    change_set, table = _changes(detector, db, WITH_CITY)
    assert change_set.added_parts == ("city",)
    counts = change_set.counts
    assert (counts.added, counts.changed, counts.removed, change_set.same_before) == (1, 9, 1, 7)
    assert _flagged(table) == {"1", "4", "5", "6", "7", "8", "9"}
    assert change_set.remapped is not None

    # Committed under the new mappings: nothing left to send, nothing flagged.
    change_set, table = _changes(detector, db, WITH_CITY)
    assert (change_set.counts.changed, change_set.added_parts, table.num_rows) == (0, (), 0)


def test_rows_not_acknowledged_come_back_whole(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _changes(detector, db, BEFORE)
    _changes(detector, db, WITH_CITY, acknowledge=lambda pk: pk not in ("1", "2"))

    # The snapshot now holds the new mappings' hashes, and the two rows' old ones: those are sent whole.
    change_set, table = _changes(detector, db, WITH_CITY)
    assert (change_set.counts.changed, change_set.added_parts, _flagged(table)) == (2, (), set())
    assert change_set.remapped is None


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (HashSpec("id", ("city", "email"), "fp-2", parts=(*PARTS[:2], ("c", "c-1"))), "removed"),
        (HashSpec("id", ("email", "plan"), "fp-2", parts=(("", "shared-2"), *PARTS[1:])), "shared"),
        (HashSpec("id", ("city", "email", "plan"), "fp-2", parts=(*PARTS[:2], ("plan", "p-2"), ("c", "c"))), "changed"),
        (HashSpec("id", ("city", "email", "plan"), "fp-2"), "no parts"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_any_other_change_sends_every_row_whole(db, tmp_path, spec, why):
    detector = BasicChangeDetector(tmp_path / "state")
    _changes(detector, db, BEFORE)
    change_set, table = _changes(detector, db, spec)
    assert (change_set.counts.changed, change_set.added_parts, _flagged(table)) == (10, (), set()), why


def test_a_full_resync_or_a_dropped_column_sends_rows_whole(db, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state")
    _changes(detector, db, BEFORE)
    change_set, table = _changes(detector, db, WITH_CITY, full_resync=True)
    assert (change_set.added_parts, _flagged(table)) == ((), set())

    detector.reset("sync")
    _changes(detector, db, BEFORE)
    # The snapshot's hashes read "plan", which the model no longer has: they cannot be recomputed.
    _sql(db, "ALTER TABLE users DROP COLUMN plan")
    parts = (("", "shared-1"), ("email", "e-1"), ("plan", "p-1"), ("city", "c-1"))
    change_set, table = _changes(detector, db, HashSpec("id", ("city", "email"), "fp-3", parts=parts))
    assert (change_set.counts.changed, change_set.added_parts) == (10, ())
