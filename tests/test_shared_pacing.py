"""Request pacing shared by every process sending to one Iterable project (rate_limiter: redis): two
processes together stay under an endpoint's limit, as one does alone. Real Redis on 127.0.0.1:6379, the
sandbox enforcing Iterable's rate limits, real `sync run` processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from smartingest.iterable.ratelimit import RedisPacing
from smartingest.sandbox import SandboxServer
from tests.conftest import SandboxAdmin, create_customers, running_sandbox, write_project

REDIS = "redis://127.0.0.1:6379/15"


def _acquire_times(project: str, rate: float, count: int, times: list[float]) -> None:
    async def go() -> None:
        pacing = RedisPacing(REDIS, project)
        pacer = pacing.pacer("POST /api/users/bulkUpdate", rate)
        try:
            for _ in range(count):
                await pacer.acquire()
                times.append(time.monotonic())
        finally:
            await pacing.aclose()

    asyncio.run(go())


def test_two_processes_share_one_endpoint_s_rate():
    project, rate, each = uuid.uuid4().hex, 20.0, 20
    times: list[float] = []
    threads = [threading.Thread(target=_acquire_times, args=(project, rate, each, times)) for _ in range(2)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 40 requests at 20/s take at least 39 intervals, whoever sends them (each alone would take 19).
    assert time.monotonic() - start >= (2 * each - 1) / rate - 0.05
    ordered = sorted(times)
    busiest = max(sum(1 for t in ordered if s <= t < s + 1.0) for s in ordered)
    assert busiest <= rate + 1  # the +1: two processes' wake-ups jitter around their reserved slots


def test_a_redis_that_does_not_answer_leaves_each_process_pacing_alone():
    async def go() -> float:
        pacing = RedisPacing("redis://127.0.0.1:9/0", uuid.uuid4().hex)
        pacer = pacing.pacer("POST /api/users/bulkUpdate", 10.0)
        start = time.monotonic()
        for _ in range(6):
            await pacer.acquire()
        await pacing.aclose()
        return time.monotonic() - start

    assert asyncio.run(go()) >= 0.45  # still paced: 6 requests at 10/s


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox enforcing Iterable's rate limits, 8 times faster (bulkUpdate: 40/s, bursts of 40)."""
    with running_sandbox(tmp_path / "limited", rate_limits=True, rate_limit_scale=8) as server:
        yield server


def test_two_runs_to_one_project_together_meet_no_429(pg, limited, tmp_path):
    create_customers(pg, 1200)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    project = write_project(
        tmp_path, limited.url, sql=sql, destination={"rate_limit_scale": 8}, sync={"batch_size": 20}
    )
    doc = yaml.safe_load(project.read_text())
    doc["syncs"]["second"] = dict(doc["syncs"]["customers_to_users"])
    doc["rate_limiter"] = {"type": "redis", "url": REDIS}
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "SMARTINGEST_HOME": str(tmp_path / "home")}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", name, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("customers_to_users", "second")
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, (out + err).decode()[-2000:]
    admin = SandboxAdmin(limited)
    assert admin.requests() == 120  # 60 each, at 40/s together: 3 s at least
    stats = admin.http.get("/_sandbox/stats").json()
    assert not [endpoint for endpoint, outcomes in stats["requests"].items() if "429" in outcomes]
