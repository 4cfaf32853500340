"""Runs on worker processes (Celery on the real Redis at 127.0.0.1:6379): two `smartingest worker`
processes take the runs a dispatcher hands over; a worker killed with SIGKILL mid-run loses nothing: the
sync's next run, on the other worker, marks it interrupted and sends what was not acknowledged. Real
PostgreSQL and the sandbox over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from smartingest import service
from smartingest.scheduler.loop import Dispatcher, fresh
from tests.conftest import SandboxAdmin, create_customers, write_project

SYNC = "customers_to_users"
BROKER = "redis://127.0.0.1:6379/14"


@pytest.fixture
def project(pg, sandbox, tmp_path) -> Path:
    redis.Redis.from_url(BROKER).flushdb()
    create_customers(pg, 300)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    project = write_project(
        tmp_path, sandbox.url, sql=sql, destination={"max_concurrent_requests": 1}, sync={"batch_size": 10}
    )
    doc = yaml.safe_load(project.read_text())
    doc["workers"] = {"broker_url": BROKER, "resend_after_seconds": 1}
    doc["checkpoint_rows"] = 50  # what the killed worker had acknowledged is committed as it goes
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


@pytest.fixture
def workers(project, tmp_path) -> Iterator[list[subprocess.Popen]]:
    env = {**os.environ, "SMARTINGEST_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "smartingest", "--project", str(project), "worker", "--concurrency", "1"]
    started = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    for process in started:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith("worker: taking runs from"), line
    time.sleep(2)  # Celery connects to the broker after printing
    yield started
    for process in started:
        process.kill()
        process.wait()


def _wait(ws: service.Workspace, run_id: int, until: set[str], seconds: float = 60) -> service.RunRecord:
    deadline = time.monotonic() + seconds
    while True:
        record = service.get_run(ws, run_id)
        assert record is not None
        if record.status in until:
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.1)


def test_worker_processes_execute_runs_and_a_killed_one_loses_nothing(project, workers, sandbox, tmp_path):
    ws = service.open_workspace(project, home=tmp_path / "home")
    dispatcher = Dispatcher(fresh(ws))
    admin = SandboxAdmin(sandbox)
    admin.faults(latency_ms=150)  # 30 requests one at a time: about 5 s of sending

    first = service.enqueue_run(ws, SYNC)
    dispatcher.step()  # handed to the workers
    running = _wait(ws, first, {"in_progress"})
    assert running.pid in {w.pid for w in workers}
    time.sleep(1.5)
    victim = next(w for w in workers if w.pid == running.pid)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    admin.faults()
    second = service.enqueue_run(ws, SYNC)
    dispatcher.step()
    done = _wait(ws, second, {"succeeded", "warning", "failed"})
    assert done.status == "succeeded", done.error
    killed = service.get_run(ws, first)
    assert killed is not None and killed.status == "failed" and "interrupted" in (killed.error or "")
    # Its counts add up (verdicts it recorded, the rest to retry); the second run sent only what the first
    # had not committed, and every row is in Iterable.
    assert killed.counts["synced"] + killed.counts["retried_next_run"] == 300
    assert 0 < done.counts["added"] < 300 and done.counts["unchanged"] == 300 - done.counts["added"]
    assert len(admin.users()) == 300
    assert service.plan(ws, SYNC).counts.to_send == 0
