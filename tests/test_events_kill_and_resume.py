"""An events sync killed hard (SIGKILL on the real process) mid-run: the rerun resends what the killed run
never committed, and the event ids make those resends replace, so the sandbox ends with every event once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from smartingest import service
from tests.conftest import SandboxAdmin, write_project
from tests.events_support import (
    EVENT_MAPPINGS,
    SYNC,
    create_purchases,
    events_by_id,
    expected_purchase_events,
    purchases_sql,
    stored_event_count,
)

ROWS = 1500
TRACK_BULK = "POST /api/events/trackBulk"


def test_kill_9_mid_run_then_rerun_leaves_each_event_once(pg, sandbox, admin: SandboxAdmin, tmp_path):
    create_purchases(pg, ROWS, buyers=50)  # 30 events per user
    project = write_project(
        tmp_path,
        sandbox.url,
        sql=purchases_sql(pg),
        mappings=EVENT_MAPPINGS,
        destination={"max_concurrent_requests": 1},
        sync={"type": "events", "event_name": "purchase", "created_at": "bought_at", "batch_size": 50},
    )
    home = tmp_path / "home"
    admin.faults(latency_ms=150)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", SYNC],
        env={**os.environ, "SMARTINGEST_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while admin.requests(TRACK_BULK) < 8:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the run did not start sending"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    admin.faults()
    tracked_before = stored_event_count(sandbox.url)
    assert 0 < tracked_before < ROWS

    ws = service.open_workspace(project, home=home)
    killed = service.list_runs(ws, SYNC)[0]
    assert killed.status in ("in_progress", "querying")  # as the killed process left it

    rerun = service.run(ws, SYNC)
    assert rerun.status == "succeeded", rerun.error
    # Nothing of the killed run was committed: every row is sent again, the tracked ones included...
    assert (rerun.counts["added"], rerun.counts["synced"]) == (ROWS, ROWS)
    # ...and their ids make those resends replace the events instead of adding them twice.
    assert stored_event_count(sandbox.url) == ROWS
    model = expected_purchase_events(pg)
    assert events_by_id(sandbox.url, {e["email"] for e in model.values()}) == model

    runs = service.list_runs(ws, SYNC)
    assert runs[1].id == killed.id
    assert runs[1].status == "failed"
    assert "interrupted" in runs[1].error

    again = service.run(ws, SYNC)
    assert again.counts["unchanged"] == ROWS
    assert again.delivery["requests"] == 0
