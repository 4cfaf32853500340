"""Benchmark: a Users sync from PostgreSQL into the sandbox, against baselines measured in the same run.

    uv run python bench/users_sync.py                # 100k rows
    uv run python bench/users_sync.py --rows 1000000

Baselines: ``COPY (model) TO STDOUT`` of the same model (the fastest way out of PostgreSQL) and the
sandbox's own ceiling (prebuilt request bodies posted straight to it). Each sync run is a separate
``smartingest sync run`` process, so its peak memory (max RSS) is its own. Prints ratios, never
asserts on time: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psycopg

DSN = os.environ.get("SMARTINGEST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "smartingest_bench"
API_KEY = "bench-key"
MODEL_SQL = f"select id, email, first_name, last_name, city, plan, ltv, score, active, signed_up_at from {SCHEMA}.users"


def create_table(rows: int) -> None:
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        con.execute(
            f"""CREATE TABLE {SCHEMA}.users AS
                SELECT i::bigint AS id, 'user' || i || '@example.com' AS email, 'First' || (i % 5000) AS first_name,
                       'Last' || (i % 7919) AS last_name,
                       (ARRAY['Paris','Austin','Osaka','Lagos','Lima'])[1 + i % 5] AS city,
                       (ARRAY['free','pro','team','enterprise'])[1 + i % 4] AS plan,
                       ((i * 7919) % 100000 / 100.0)::numeric(12,2) AS ltv, (i % 1000) / 7.0 AS score,
                       i % 3 = 0 AS active,
                       timestamptz '2023-01-01 00:00:00+00' + (i % 100000) * interval '1 minute' AS signed_up_at
                FROM generate_series(1::bigint, {rows}::bigint) AS i"""
        )
        con.execute(f"ALTER TABLE {SCHEMA}.users ADD PRIMARY KEY (id)")
        con.execute(f"ANALYZE {SCHEMA}.users")


def change_rows(percent: float) -> int:
    every = max(1, round(100 / percent))
    with psycopg.connect(DSN, autocommit=True) as con:
        cur = con.execute(f"UPDATE {SCHEMA}.users SET plan = 'changed', ltv = ltv + 1 WHERE id % {every} = 0")
        return cur.rowcount


def time_copy() -> float:
    with psycopg.connect(DSN) as con, con.cursor() as cur:
        start = time.perf_counter()
        with cur.copy(f"COPY ({MODEL_SQL}) TO STDOUT") as copy:
            for _ in copy:
                pass
        return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartingest.sandbox",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--data-dir",
            str(data_dir),
            "--no-rate-limits",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/_sandbox/stats", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("sandbox did not start")


def sandbox_ceiling(url: str, users: int, offset: int, batch: int = 1000, concurrency: int = 4) -> float:
    """Seconds for the sandbox to take ``users`` prebuilt user updates, posted straight to it."""
    bodies = []
    for start in range(offset, offset + users, batch):
        chunk = [
            {
                "email": f"ceiling{i}@example.com",
                "dataFields": {
                    "firstName": "F",
                    "lastName": "L",
                    "city": "Paris",
                    "plan": "pro",
                    "ltv": 1.5,
                    "score": 2.5,
                    "active": True,
                    "signedUpAt": "2023-01-01 00:00:00 +00:00",
                },
            }
            for i in range(start, min(start + batch, offset + users))
        ]
        bodies.append(orjson.dumps({"users": chunk}))

    async def post_all() -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        async with httpx.AsyncClient(
            base_url=url, headers={"Api-Key": API_KEY, "Content-Type": "application/json"}, timeout=120
        ) as client:

            async def worker() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    (await client.post("/api/users/bulkUpdate", content=body)).raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(post_all())
    return time.perf_counter() - start


def write_project(directory: Path, url: str) -> Path:
    project = directory / "smartingest.yaml"
    project.write_text(
        json.dumps(
            {
                "sources": {
                    "pg": {
                        "type": "postgres",
                        "host": "127.0.0.1",
                        "port": 5432,
                        "database": "test",
                        "user": "postgres",
                    }
                },
                "models": {"users": {"source": "pg", "sql": MODEL_SQL, "primary_key": "id"}},
                "destinations": {
                    "sandbox": {"api_key": API_KEY, "base_url": url, "environment": "test", "rate_limit_scale": 1000}
                },
                "syncs": {
                    "bench": {
                        "model": "users",
                        "destination": "sandbox",
                        "type": "users",
                        "mappings": [
                            {"from": "email", "to": "email"},
                            {"from": "first_name", "to": "firstName"},
                            {"from": "last_name", "to": "lastName"},
                            {"from": "city", "to": "city"},
                            {"from": "plan", "to": "plan"},
                            {"from": "ltv", "to": "ltv"},
                            {"from": "score", "to": "score"},
                            {"from": "active", "to": "active"},
                            {"from": "signed_up_at", "to": "signedUpAt"},
                        ],
                    }
                },
            }
        )
    )
    return project


def timed_run(project: Path, home: Path) -> tuple[float, float, dict]:
    """(seconds, peak RSS in MiB, run summary) of one `smartingest sync run` process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", "bench", "--json"],
        env={**os.environ, "SMARTINGEST_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout = proc.stdout.read() if proc.stdout else b""
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"sync run failed: {stderr.decode()[-2000:]}")
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return elapsed, peak, json.loads(stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the generated table")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="share of rows changed before run 2")
    parser.add_argument("--keep", action="store_true", help="keep the table and the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smartingest-bench-"))
    print(f"rows: {args.rows:,}  work dir: {work}")
    create_table(args.rows)
    sandbox, url = start_sandbox(work / "sandbox")
    try:
        project = write_project(work, url)
        copy_first = time_copy()
        first_s, first_mem, first = timed_run(project, work / "home")
        assert first["counts"]["synced"] == args.rows, first
        ceiling_first = sandbox_ceiling(url, args.rows, offset=0)

        changed = change_rows(args.changed_percent)
        copy_second = time_copy()
        second_s, second_mem, second = timed_run(project, work / "home")
        assert second["counts"]["changed"] == changed, second
        ceiling_second = sandbox_ceiling(url, changed, offset=10 * args.rows)
    finally:
        sandbox.terminate()
        sandbox.wait()
        if not args.keep:
            with psycopg.connect(DSN, autocommit=True) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")

    report = {
        "rows": args.rows,
        "changed": changed,
        "copy_seconds": round((copy_first + copy_second) / 2, 3),
        "first_run": {
            "seconds": round(first_s, 3),
            "peak_rss_mib": round(first_mem, 1),
            "timings": first["timings"],
            "sandbox_ceiling_seconds": round(ceiling_first, 3),
        },
        "changed_run": {
            "seconds": round(second_s, 3),
            "peak_rss_mib": round(second_mem, 1),
            "timings": second["timings"],
            "sandbox_ceiling_seconds": round(ceiling_second, 3),
        },
    }
    copy_s = report["copy_seconds"]
    print(json.dumps(report, indent=2))
    print()
    print(f"{'':34}{'seconds':>10}{'x COPY':>10}{'x sandbox':>11}{'peak MiB':>10}")
    print(f"{'COPY (model) TO STDOUT':34}{copy_s:>10.2f}{1:>10.2f}")
    print(
        f"{'first run (all rows)':34}{first_s:>10.2f}{first_s / copy_s:>10.2f}"
        f"{first_s / ceiling_first:>11.2f}{first_mem:>10.0f}"
    )
    print(
        f"{f'{args.changed_percent:g}%-changed run':34}{second_s:>10.2f}{second_s / copy_s:>10.2f}"
        f"{second_s / max(ceiling_second, 1e-9):>11.2f}{second_mem:>10.0f}"
    )
    print(f"{'sandbox ceiling, all rows':34}{ceiling_first:>10.2f}")
    print(f"{'sandbox ceiling, changed rows':34}{ceiling_second:>10.2f}")
    print(f"\nbench process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.keep:
        print(f"kept: {work} and schema {SCHEMA}")


if __name__ == "__main__":
    main()
