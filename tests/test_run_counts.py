"""Every run's counts add up as docs/runs.md states, including a run whose process was killed."""

from __future__ import annotations

import signal

from smartingest import service
from tests.conftest import SandboxAdmin
from tests.test_kill_and_resume import _start_slow_run


def _assert_identities(counts: dict[str, int]) -> None:
    assert counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"]
    verdicts = ("synced", "rejected", "retried_next_run", "deferred", "skipped")
    assert counts["added"] + counts["changed"] + counts["removed"] == sum(counts[name] for name in verdicts)


def test_a_killed_run_is_settled_from_its_row_outcomes(pg, sandbox, admin: SandboxAdmin, tmp_path):
    proc, project, home = _start_slow_run(
        pg, sandbox, admin, tmp_path, rows=1500, after_requests=10, checkpoint={"checkpoint_rows": 200}
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    admin.faults()

    ws = service.open_workspace(project, home=home)
    [killed] = service.list_runs(ws, "customers_to_users")
    recorded = service.row_counts(ws, killed.id)  # what the killed process wrote before it died
    assert 0 < recorded["synced"] < 1500

    rerun = service.run(ws, "customers_to_users")  # marks the killed run interrupted
    assert rerun.status == "succeeded", rerun.error

    settled = service.get_run(ws, killed.id)
    assert settled.status == "failed"
    assert "interrupted" in settled.error
    counts = settled.counts
    assert counts["queried"] == counts["added"] == 1500
    assert counts["synced"] == recorded["synced"]
    assert counts["rejected"] == recorded.get("rejected", 0) == 0
    # Changes without a verdict were not committed: the next run sent them, so they count as retried.
    assert counts["retried_next_run"] == 1500 - counts["synced"]
    # Outcomes are written at each checkpoint, just before it commits: the rows the killed run counts as
    # synced are the rows the next run did not send again (one checkpoint more if the kill fell between).
    assert 1500 <= counts["synced"] + rerun.counts["added"] <= 1500 + 200
    _assert_identities(counts)
    _assert_identities(rerun.counts)
