"""Benchmark: a Users sync from PostgreSQL, against a hand-written script and COPY, measured in the same run.

    uv run python bench/users_sync.py                    # 1M rows (make bench)
    uv run python bench/users_sync.py --rows 10000000 --repeat 3

It generates a 10-column users table and measures, one after the other:

- **COPY**: ``\\copy (model) to /dev/null`` through psql (psycopg's ``COPY TO STDOUT``, discarded, where
  psql is missing): the fastest way the rows leave PostgreSQL;
- **script**: ``bench/handwritten.py``, what a user would write instead (server-side cursor,
  fetchmany(1000), orjson, httpx, one request at a time), sending every row;
- **smartingest, first run**, with ``max_concurrent_requests`` 4 and 8 (``--concurrency``): each a fresh
  first run (its own SMARTINGEST_HOME), every row sent;
- **smartingest, P%-changed run**: P% of the rows changed (``--changed-percent``), the next run of the first
  run with the first concurrency, which sends only those.

Every tool sends to ``bench/sink.py``, an Iterable-shaped sink in a process of its own, reset before each
run; after each run the sink must have seen exactly the users expected (every row, or the changed rows),
else the benchmark fails. Rate limits are off (``rate_limit_scale`` far above Iterable's, which would
hold 1M users to 200 s at least; see bench/rate_limits.py for a run under the real ones). Each tool runs
in a process of its own, so its time includes starting Python and its peak memory (max RSS, from
``wait4``) is its own. ``--repeat N`` gives medians of N rounds. Prints a JSON report and a table;
never asserts on time (machines are shared and noisy): compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import sink as sink_module  # the Iterable-shaped sink and its load generator

DSN = os.environ.get("SMARTINGEST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "smartingest_bench"
API_KEY = "bench-key"
BENCH = Path(__file__).parent
COLUMNS = "id, email, first_name, last_name, city, plan, ltv, score, active, signed_up_at"
# Far above every documented rate: 5 bulkUpdate requests/s become 500,000/s.
NO_RATE_LIMITS = 100_000


def model_sql(schema: str = SCHEMA) -> str:
    return f"select {COLUMNS} from {schema}.users"


MODEL_SQL = model_sql()


def create_table(rows: int, schema: str = SCHEMA) -> None:
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(
            f"""CREATE TABLE {schema}.users AS
                SELECT i::bigint AS id, 'user' || i || '@example.com' AS email, 'First' || (i % 5000) AS first_name,
                       'Last' || (i % 7919) AS last_name,
                       (ARRAY['Paris','Austin','Osaka','Lagos','Lima'])[1 + i % 5] AS city,
                       (ARRAY['free','pro','team','enterprise'])[1 + i % 4] AS plan,
                       ((i * 7919) % 100000 / 100.0)::numeric(12,2) AS ltv, (i % 1000) / 7.0 AS score,
                       i % 3 = 0 AS active,
                       timestamptz '2023-01-01 00:00:00+00' + (i % 100000) * interval '1 minute' AS signed_up_at
                FROM generate_series(1::bigint, {rows}::bigint) AS i"""
        )
        con.execute(f"ALTER TABLE {schema}.users ADD PRIMARY KEY (id)")
        con.execute(f"ANALYZE {schema}.users")


def drop_schema(schema: str = SCHEMA) -> None:
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def change_rows(percent: float, schema: str = SCHEMA) -> int:
    every = max(1, round(100 / percent))
    with psycopg.connect(DSN, autocommit=True) as con:
        cur = con.execute(f"UPDATE {schema}.users SET plan = 'changed', ltv = ltv + 1 WHERE id % {every} = 0")
        return cur.rowcount


def time_copy(schema: str = SCHEMA) -> float:
    """Seconds of ``COPY (model) TO STDOUT`` through psycopg, the rows discarded."""
    with psycopg.connect(DSN) as con, con.cursor() as cur:
        start = time.perf_counter()
        with cur.copy(f"COPY ({model_sql(schema)}) TO STDOUT") as copy:
            for _ in copy:
                pass
        return time.perf_counter() - start


def copy_command(schema: str) -> list[str] | None:
    """psql copying the model to /dev/null, or None without psql."""
    psql = shutil.which("psql")
    if psql is None:
        return None
    return [psql, "-X", "-q", DSN, "-c", f"\\copy ({model_sql(schema)}) to /dev/null"]


def measure_copy(schema: str = SCHEMA) -> dict[str, Any]:
    """One COPY of the model: psql's ``\\copy`` to /dev/null in a process of its own (its seconds and peak
    RSS), or psycopg's ``COPY TO STDOUT`` in this one (seconds only) without psql."""
    command = copy_command(schema)
    if command is None:
        return {"seconds": time_copy(schema), "via": "psycopg COPY TO STDOUT"}
    seconds, peak, _ = run_process(command)
    return {"seconds": seconds, "peak_rss_mib": peak, "via": "psql \\copy to /dev/null"}


def run_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, bytes]:
    """(seconds, peak RSS in MiB, stdout) of one process, its max RSS from wait4; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read both pipes to their end first (a full pipe would stall the child), then reap it with wait4.
    stdout, stderr = _read_all(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(command[:5])} failed ({proc.returncode}): {stderr.decode()[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, stdout  # ru_maxrss: KiB on Linux


def _read_all(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else b""))
    reader.start()
    out = proc.stdout.read()
    reader.join()
    return out, err[0]


def write_project(
    directory: Path,
    url: str,
    concurrency: int,
    schema: str,
    name: str,
    rate_limit_scale: float = NO_RATE_LIMITS,
    engine: str = "basic",
    planner_schema: str | None = None,
    table_model: bool = False,
) -> Path:
    """A project file syncing the model to ``url`` with ``concurrency`` requests in flight, its source
    planned by ``engine`` (the Lightning engine keeping its snapshots in ``planner_schema`` when given); the
    model is the query of ``COLUMNS``, or with ``table_model`` the table itself (the same rows)."""
    model: dict[str, Any] = {"source": "pg", "primary_key": "id"}
    model.update({"table": f"{schema}.users"} if table_model else {"sql": model_sql(schema)})
    source: dict[str, Any] = {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "test",
        "user": "postgres",
    }
    if engine != "basic":
        source["engine"] = engine
    if planner_schema is not None:
        source["planner_schema"] = planner_schema
    project = directory / f"{name}.yaml"
    project.write_text(
        json.dumps(
            {
                "sources": {"pg": source},
                "models": {"users": model},
                "destinations": {
                    "iterable": {
                        "api_key": API_KEY,
                        "base_url": url,
                        "environment": "test",
                        "rate_limit_scale": rate_limit_scale,
                        "max_concurrent_requests": concurrency,
                    }
                },
                "syncs": {
                    "bench": {
                        "model": "users",
                        "destination": "iterable",
                        "type": "users",
                        "mappings": [
                            {"from": "email", "to": "email"},
                            {"from": "id", "to": "id"},
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


def sync_run(project: Path, home: Path) -> tuple[float, float, dict[str, Any]]:
    """(seconds, peak RSS in MiB, run summary) of one ``smartingest sync run --json`` process."""
    command = [sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", "bench", "--json"]
    seconds, peak, stdout = run_process(command, {**os.environ, "SMARTINGEST_HOME": str(home)})
    return seconds, peak, json.loads(stdout)


class BenchFailed(Exception):
    """A run did not deliver what it should have: the numbers would be meaningless."""


def expect(sink: sink_module.SinkProcess, what: str, distinct: int) -> dict[str, int]:
    """The sink's stats after a run, which must count exactly ``distinct`` users."""
    stats = sink.stats()
    if stats["distinct_users"] != distinct or stats["failed_users"]:
        raise BenchFailed(f"{what}: the sink saw {stats}, expected exactly {distinct:,} distinct users, none failed")
    return stats


def check_summary(what: str, summary: dict[str, Any], key: str, expected: int) -> None:
    counts = summary.get("counts", {})
    if summary.get("status") not in (None, "succeeded") or counts.get(key) != expected:
        raise BenchFailed(f"{what}: expected {key} = {expected:,}, the run says {json.dumps(summary)[:2000]}")


def one_round(args: argparse.Namespace, sink: sink_module.SinkProcess, work: Path, round_no: int) -> dict[str, dict]:
    """One measurement of every line of the table; returns {line: sample}."""
    samples: dict[str, dict] = {}
    rows = args.rows

    samples["copy"] = measure_copy(args.schema)

    sink.reset()
    script = [sys.executable, str(BENCH / "handwritten.py"), "--url", sink.url, "--api-key", API_KEY]
    seconds, peak, stdout = run_process([*script, "--schema", args.schema, "--dsn", DSN])
    stats = expect(sink, "hand-written script", rows)
    samples["script"] = {"seconds": seconds, "peak_rss_mib": peak, "sink": stats, "script": json.loads(stdout)}

    homes: dict[int, Path] = {}
    projects: dict[int, Path] = {}
    for concurrency in args.concurrency:
        projects[concurrency] = write_project(work, sink.url, concurrency, args.schema, f"sink-c{concurrency}")
        homes[concurrency] = work / f"home-c{concurrency}-round{round_no}"
        sink.reset()
        seconds, peak, summary = sync_run(projects[concurrency], homes[concurrency])
        what = f"smartingest first run, {concurrency} in flight"
        check_summary(what, summary, "synced", rows)
        stats = expect(sink, what, rows)
        samples[f"first_c{concurrency}"] = _run_sample(seconds, peak, summary, stats)

    changed = change_rows(args.changed_percent, args.schema)
    first = args.concurrency[0]
    sink.reset()
    seconds, peak, summary = sync_run(projects[first], homes[first])
    what = f"smartingest {args.changed_percent:g}%-changed run"
    check_summary(what, summary, "changed", changed)
    stats = expect(sink, what, changed)
    samples["changed"] = {**_run_sample(seconds, peak, summary, stats), "changed_rows": changed}

    if args.sandbox:
        sandbox = start_sandbox(work / f"sandbox-{round_no}")
        try:
            project = write_project(work, sandbox.url, first, args.schema, "sandbox")
            seconds, peak, summary = sync_run(project, work / f"home-sandbox-round{round_no}")
            check_summary("smartingest first run into the sandbox", summary, "synced", rows)
            samples["sandbox_first"] = _run_sample(seconds, peak, summary, None)
        finally:
            sandbox.close()
    return samples


def _run_sample(seconds: float, peak: float, summary: dict[str, Any], stats: dict | None) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "peak_rss_mib": peak,
        "timings": summary.get("timings"),
        "delivery": summary.get("delivery"),
        "counts": summary.get("counts"),
        **({"sink": stats} if stats is not None else {}),
    }


class Sandbox:
    """A sandbox process; ``close()`` stops it."""

    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def start_sandbox(data_dir: Path, rate_limits: bool = False) -> Sandbox:
    """Our sandbox (``python -m smartingest.sandbox``) on a free port, Iterable's rate limits off unless asked."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [sys.executable, "-m", "smartingest.sandbox", "--port", str(port), "--api-key", API_KEY]
    command += ["--data-dir", str(data_dir)] + ([] if rate_limits else ["--no-rate-limits"])
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/_sandbox/stats", timeout=1)
            return Sandbox(proc, url)
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sandbox did not start")


LINES = {
    "copy": "COPY (model) to /dev/null",
    "script": "hand-written script",
    "first_c{c}": "smartingest first run, {c} in flight",
    "changed": "smartingest {p:g}%-changed run",
    "sandbox_first": "smartingest first run into the sandbox",
}


def summarize(args: argparse.Namespace, rounds: list[dict[str, dict]], sink_load: dict[str, Any]) -> dict:
    """Medians over the rounds of every line, with rows/s and ratios to the script and to COPY."""
    lines: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        seconds = statistics.median(r[name]["seconds"] for r in rounds)
        peaks = [r[name]["peak_rss_mib"] for r in rounds if "peak_rss_mib" in r[name]]
        line: dict[str, Any] = {
            "seconds": round(seconds, 3),
            "samples": [round(r[name]["seconds"], 3) for r in rounds],
            "rows_per_s": round(args.rows / seconds),
            "peak_rss_mib": round(statistics.median(peaks), 1) if peaks else None,
        }
        last = rounds[-1][name]
        for key in ("via", "timings", "delivery", "counts", "sink", "changed_rows"):
            if key in last:
                line[key] = last[key]
        lines[name] = line
    for line in lines.values():
        line["x_script"] = round(line["seconds"] / lines["script"]["seconds"], 3)
        line["x_copy"] = round(line["seconds"] / lines["copy"]["seconds"], 3)
    return {
        "rows": args.rows,
        "changed_percent": args.changed_percent,
        "repeat": args.repeat,
        "concurrency": args.concurrency,
        "sink": sink_load,
        "lines": lines,
    }


def label(name: str, args: argparse.Namespace) -> str:
    if name.startswith("first_c"):
        return LINES["first_c{c}"].format(c=name.removeprefix("first_c"))
    return LINES[name].format(p=args.changed_percent)


def print_table(report: dict, args: argparse.Namespace) -> None:
    header = f"{'':40}{'seconds':>9}{'rows/s':>11}{'x script':>10}{'x COPY':>9}{'peak MiB':>10}"
    print(header)
    print("-" * len(header))
    for name, line in report["lines"].items():
        peak = f"{line['peak_rss_mib']:>10.0f}" if line["peak_rss_mib"] is not None else f"{'':>10}"
        print(
            f"{label(name, args):40}{line['seconds']:>9.2f}{line['rows_per_s']:>11,}"
            f"{line['x_script']:>10.2f}{line['x_copy']:>9.2f}{peak}"
        )
    sink = report["sink"]
    print(
        f"\nrows: {args.rows:,} ({report['lines']['changed']['changed_rows']:,} changed); rows/s counts the model's "
        f"rows; x script, x COPY: seconds over theirs; medians of {args.repeat}"
    )
    if sink:
        per_cpu = f"{sink['users_per_cpu_s']:,}" if sink.get("users_per_cpu_s") else "too short to tell"
        print(
            f"sink: {sink['users_per_s']:,} users/s ({per_cpu} per CPU-second of the sink), "
            f"{sink['users']:,} users, 1,000 a request, 4 in flight"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated table")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows their medians")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="share of rows changed before the run")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[4, 8],
        help="max_concurrent_requests of the first runs, comma-separated; the changed run uses the first",
    )
    parser.add_argument("--sink-users", type=int, default=500_000, help="users to measure the sink with (0: skip)")
    parser.add_argument("--sandbox", action="store_true", help="also a first run into our sandbox (slow)")
    parser.add_argument("--schema", default=SCHEMA, help="PostgreSQL schema of the generated table")
    parser.add_argument("--report", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the table and the work directory")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="smartingest-bench-"))
    print(f"rows: {args.rows:,}  work dir: {work}", flush=True)
    create_table(args.rows, args.schema)
    try:
        with sink_module.SinkProcess(API_KEY) as sink:
            sink_load: dict[str, Any] = {}
            if args.sink_users:
                sink_load = sink_module.measure(sink.url, API_KEY, args.sink_users, pid=sink.proc.pid)
                expect(sink, "sink load", sink_load["users"])
            rounds = []
            for round_no in range(args.repeat):
                rounds.append(one_round(args, sink, work, round_no))
                print(f"round {round_no + 1}/{args.repeat} done", file=sys.stderr, flush=True)
    except BenchFailed as failed:
        raise SystemExit(f"BENCH FAILED: {failed}") from None
    finally:
        if not args.keep:
            drop_schema(args.schema)
            shutil.rmtree(work, ignore_errors=True)

    report = summarize(args, rounds, sink_load)
    print(json.dumps(report, indent=2))
    print()
    print_table(report, args)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    if args.keep:
        print(f"kept: {work} and schema {args.schema}")
    return report


if __name__ == "__main__":
    main()
