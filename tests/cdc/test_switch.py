"""Switching a source between Basic and Lightning carries the snapshot over: nothing is sent twice, and
what was pending (changed, unacknowledged, removed) stays pending."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartingest.cdc.base import HashSpec
from smartingest.cdc.switch import EngineSwitch
from tests.cdc.conftest import SPEC, SYNC, Database, Harness

OTHER = {"basic": "lightning", "lightning": "basic"}


@pytest.fixture(params=["basic", "lightning"])
def start(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_switch_sends_only_what_changed(db: Database, tmp_path: Path, start: str):
    harness = Harness(db, start, tmp_path / "state")
    db.create_users(50)
    assert harness.run().counts.added == 50
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id <= 3")
    db.execute(f"DELETE FROM {db.table()} WHERE id = 50")
    db.insert("users", [(51, "new@x.io", "free")])
    harness.engine = OTHER[start]
    run = harness.run()
    assert run.ops == {"added": ["51"], "changed": ["1", "2", "3"], "removed": ["50"]}
    assert run.counts.unchanged == 46
    assert harness.detector().snapshot_size(SYNC) == 50
    assert harness.run().rows == []


def test_a_round_trip_keeps_every_change_of_both_engines(db: Database, tmp_path: Path, start: str):
    harness = Harness(db, start, tmp_path / "state")
    db.create_users(20)
    harness.run()
    for step in range(1, 4):
        harness.engine = OTHER[harness.engine]
        db.execute(f"UPDATE {db.table()} SET plan = 'step{step}' WHERE id = {step}")
        assert harness.run().ops == {"changed": [str(step)]}
        assert harness.run().rows == []


def test_rows_not_acknowledged_before_a_switch_come_back_after_it(db: Database, tmp_path: Path, start: str):
    harness = Harness(db, start, tmp_path / "state")
    db.create_users(10)
    harness.run()
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id <= 4")
    db.execute(f"DELETE FROM {db.table()} WHERE id = 10")
    harness.run(acknowledge=lambda pk, op: pk in ("1", "2"))
    harness.engine = OTHER[start]
    assert harness.run().ops == {"changed": ["3", "4"], "removed": ["10"]}


def test_a_mapping_change_across_a_switch_is_judged_as_before_it(db: Database, tmp_path: Path, start: str):
    harness = Harness(db, start, tmp_path / "state")
    db.create_users(10)
    harness.run()
    harness.engine = OTHER[start]
    remapped = HashSpec("id", ("email", "plan"), "fingerprint-2", SPEC.identity)
    run = harness.run(spec=remapped)
    assert run.counts.changed == 10 and run.remapped is not None


def test_a_carry_that_died_before_the_switch_was_marked_is_done_again(db: Database, tmp_path: Path):
    harness = Harness(db, "basic", tmp_path / "state")
    db.create_users(10)
    harness.run()
    harness.engine = "lightning"
    switch = harness.detector()
    assert isinstance(switch, EngineSwitch)
    # The Lightning snapshot is written, then the process dies before the marker says so.
    assert switch.lightning.carry_from_basic(switch.basic, SYNC, harness.model, SPEC) == 10
    assert switch.holder(SYNC) == "basic"
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id = 1")
    harness.engine = "basic"
    assert harness.run().ops == {"changed": ["1"]}  # Basic still holds the snapshot
    harness.engine = "lightning"
    assert harness.run().rows == []
    assert harness.detector().snapshot_size(SYNC) == 10


def test_reset_forgets_the_snapshot_of_both_engines(db: Database, tmp_path: Path, start: str):
    harness = Harness(db, start, tmp_path / "state")
    db.create_users(5)
    harness.run()
    harness.engine = OTHER[start]
    harness.run()
    assert harness.detector().reset(SYNC)
    harness.engine = start
    assert harness.run().counts.added == 5
