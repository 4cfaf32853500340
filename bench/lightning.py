"""Benchmark: the 1%-changed run of a Users sync from PostgreSQL with the Basic and the Lightning engines,
against COPY, measured in the same run, at one table size or several.

    uv run python bench/lightning.py                                   # 1M rows (make bench-lightning)
    uv run python bench/lightning.py --rows 1000000,10000000 --repeat 3

For each size it generates the users benchmark's table (bench/users_sync.py), the model of both engines'
syncs (a table model: on PostgreSQL the Lightning engine then reads only the rows written since its last
run), and, each round:

1. a **first run** with each engine, every row sent: Basic keeps its snapshot under its own SMARTINGEST_HOME,
   Lightning in a planner schema of this benchmark's (``<schema>_planner``, dropped before each round and at
   the end), each with a project file of its own;
2. P% of the rows changed, once (``--changed-percent``, 1 by default), so both engines see the same change;
3. **COPY**: ``\\copy (model) to /dev/null`` through psql (psycopg's ``COPY TO STDOUT`` where psql is
   missing), the fastest way the rows leave PostgreSQL, on the table as the changed runs find it;
4. the **P%-changed run** of each engine (the next run after its first), the order alternating from round
   to round.

Each line gives seconds and rows/s (the model's rows over those seconds), × COPY (the line's seconds over
the COPY of the same round; the median of the rounds' ratios), the **rows out of the database** (the run's
``rows_read``: every row for Basic, the changes and a few small query results for Lightning; COPY: every
row) and the **peak memory** of its process (max RSS, from ``wait4``). Each run is a ``smartingest sync run
--json`` process of its own, so its time includes starting Python; the changed runs' phases (from the
run's ``timings``) are printed too. Every run sends to ``bench/sink.py``, reset before each run; after each
the sink must have seen exactly the users expected (every row, or the changed rows), else the benchmark
fails. ``--repeat N`` gives medians of N rounds. Prints a JSON report and a Markdown table per size; never
asserts on time (machines are shared and noisy): compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import sink as sink_module
import users_sync
from users_sync import BenchFailed

SCHEMA = "smartingest_bench_lightning"
ENGINES = ("basic", "lightning")
PHASES = ("prepare", "query_and_plan", "deliver", "commit")
LABELS = {
    "copy": "COPY (model) to /dev/null",
    "basic_changed": "Basic, {p:g}%-changed run",
    "lightning_changed": "Lightning, {p:g}%-changed run",
    "basic_first": "Basic, first run",
    "lightning_first": "Lightning, first run",
}


def planner_schema(schema: str) -> str:
    """The Lightning engine's planner schema for the benchmark's table in ``schema``."""
    return f"{schema}_planner"


def engine_run(
    engine: str, project: Path, home: Path, sink: sink_module.SinkProcess, what: str, key: str, expected: int
) -> dict[str, Any]:
    """One ``sync run`` process of ``engine``; the run must say ``key`` = ``expected`` and the sink must have
    received exactly ``expected`` users."""
    sink.reset()
    seconds, peak, summary = users_sync.sync_run(project, home)
    users_sync.check_summary(what, summary, key, expected)
    stats = users_sync.expect(sink, what, expected)
    timings = summary.get("timings") or {}
    return {
        "seconds": seconds,
        "peak_rss_mib": peak,
        "rows_read": summary.get("rows_read"),
        "timings": timings,
        # What the process spent outside the run's phases: starting Python and the imports, and exiting.
        "outside_phases": seconds - float(timings.get("total", 0.0)),
        "counts": summary.get("counts"),
        "sink": stats,
    }


def one_round(
    rows: int, args: argparse.Namespace, sink: sink_module.SinkProcess, work: Path, round_no: int
) -> dict[str, dict[str, Any]]:
    """One measurement of every line at ``rows`` rows (the table already made); returns {line: sample}."""
    planner = planner_schema(args.schema)
    users_sync.drop_schema(planner)  # each round's Lightning first run starts with no snapshot, as Basic's
    projects, homes = {}, {}
    for engine in ENGINES:
        name = f"{engine}-{rows}"
        schema = planner if engine == "lightning" else None
        projects[engine] = users_sync.write_project(
            work, sink.url, args.concurrency, args.schema, name, engine=engine, planner_schema=schema, table_model=True
        )
        homes[engine] = work / f"home-{name}-round{round_no}"

    order = ENGINES if round_no % 2 == 0 else ENGINES[::-1]
    samples: dict[str, dict[str, Any]] = {}
    for engine in order:
        what = f"{engine} first run ({rows:,} rows)"
        samples[f"{engine}_first"] = engine_run(engine, projects[engine], homes[engine], sink, what, "synced", rows)
        _progress(what, samples[f"{engine}_first"])

    changed = users_sync.change_rows(args.changed_percent, args.schema)
    samples["copy"] = {**users_sync.measure_copy(args.schema), "rows_read": rows}
    _progress(f"COPY ({rows:,} rows)", samples["copy"])
    for engine in order:
        what = f"{engine} {args.changed_percent:g}%-changed run ({rows:,} rows, {changed:,} changed)"
        sample = engine_run(engine, projects[engine], homes[engine], sink, what, "changed", changed)
        samples[f"{engine}_changed"] = {**sample, "changed_rows": changed}
        _progress(what, sample)

    for home in homes.values():  # a 10M Basic snapshot is hundreds of MB
        shutil.rmtree(home, ignore_errors=True)
    return samples


def _progress(what: str, sample: dict[str, Any]) -> None:
    read = f", {sample['rows_read']:,} rows read" if sample.get("rows_read") is not None else ""
    print(f"  {what}: {sample['seconds']:.2f} s{read}", file=sys.stderr, flush=True)


def summarize(rows: int, rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the rounds of every line, with rows/s and the ratio to the same round's COPY."""
    lines: dict[str, dict[str, Any]] = {}
    for name in LABELS:
        samples = [r[name] for r in rounds]
        seconds = statistics.median(s["seconds"] for s in samples)
        peaks = [s["peak_rss_mib"] for s in samples if s.get("peak_rss_mib") is not None]
        read = [s["rows_read"] for s in samples if s.get("rows_read") is not None]
        ratios = [s["seconds"] / r["copy"]["seconds"] for s, r in zip(samples, rounds, strict=True)]
        line: dict[str, Any] = {
            "seconds": round(seconds, 3),
            "samples": [round(s["seconds"], 3) for s in samples],
            "rows_per_s": round(rows / seconds),
            "x_copy": round(statistics.median(ratios), 3),
            "x_copy_samples": [round(ratio, 3) for ratio in ratios],
            "rows_read": round(statistics.median(read)) if read else None,
            "peak_rss_mib": round(statistics.median(peaks), 1) if peaks else None,
        }
        if "timings" in samples[0]:
            line["phases"] = {
                phase: round(statistics.median(float(s["timings"].get(phase, 0.0)) for s in samples), 3)
                for phase in PHASES
            }
            line["phases"]["outside_phases"] = round(statistics.median(s["outside_phases"] for s in samples), 3)
        last = samples[-1]
        for key in ("via", "counts", "sink", "changed_rows", "timings"):
            if key in last:
                line[key] = last[key]
        lines[name] = line
    return {"rows": rows, "changed_rows": rounds[-1]["basic_changed"]["changed_rows"], "lines": lines}


def measure(rows: int, args: argparse.Namespace, sink: sink_module.SinkProcess, work: Path) -> dict[str, Any]:
    """Every line at ``rows`` rows, medians of ``args.repeat`` rounds."""
    print(f"{rows:,} rows: creating the table", file=sys.stderr, flush=True)
    users_sync.create_table(rows, args.schema)
    rounds = []
    for round_no in range(args.repeat):
        rounds.append(one_round(rows, args, sink, work, round_no))
        print(f"{rows:,} rows: round {round_no + 1}/{args.repeat} done", file=sys.stderr, flush=True)
    return summarize(rows, rounds)


def label(name: str, changed_percent: float) -> str:
    return LABELS[name].format(p=changed_percent)


def print_tables(report: dict[str, Any]) -> None:
    """A Markdown table per size: the lines, then the changed runs' phases."""
    percent, repeat = report["changed_percent"], report["repeat"]
    for size in report["sizes"].values():
        rounds = f"medians of {repeat}" if repeat > 1 else "one round"
        print(
            f"\n| {size['rows']:,} rows ({rounds}) | seconds | rows/s | × COPY | rows out of the database | peak RSS |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, line in size["lines"].items():
            read = f"{line['rows_read']:,}" if line["rows_read"] is not None else ""
            peak = f"{line['peak_rss_mib']:.0f} MiB" if line["peak_rss_mib"] is not None else ""
            print(
                f"| {label(name, percent)} | {line['seconds']:.2f} | {line['rows_per_s']:,} | {line['x_copy']:.2f} "
                f"| {read} | {peak} |"
            )
        print(
            f"\n{size['changed_rows']:,} rows changed; rows/s counts the model's rows; × COPY: seconds over the "
            "same round's COPY; the first runs precede the change and are shown for reference"
        )
        print(
            f"\n| {size['rows']:,} rows, phases (s) | prepare | query and plan | deliver | commit | start-up and exit |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, line in size["lines"].items():
            if "phases" in line:
                cells = " | ".join(f"{line['phases'][p]:.2f}" for p in (*PHASES, "outside_phases"))
                print(f"| {label(name, percent)} | {cells} |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rows",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1_000_000],
        help="rows in the generated table, comma-separated for several sizes (default 1000000)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds per size; the tables show their medians")
    parser.add_argument("--changed-percent", type=float, default=1.0, help="share of rows changed before the run")
    parser.add_argument("--concurrency", type=int, default=4, help="max_concurrent_requests of every run")
    parser.add_argument(
        "--schema", default=SCHEMA, help="PostgreSQL schema of the generated table (Lightning's: <schema>_planner)"
    )
    parser.add_argument("--report", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the table, the planner schema and the work dir")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="smartingest-bench-lightning-"))
    print(f"rows: {', '.join(f'{n:,}' for n in args.rows)}  work dir: {work}", file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        "changed_percent": args.changed_percent,
        "repeat": args.repeat,
        "concurrency": args.concurrency,
        "sizes": {},
    }
    users_sync.drop_schema(planner_schema(args.schema))
    try:
        with sink_module.SinkProcess(users_sync.API_KEY) as sink:
            for rows in args.rows:
                report["sizes"][str(rows)] = measure(rows, args, sink, work)
    except BenchFailed as failed:
        raise SystemExit(f"BENCH FAILED: {failed}") from None
    finally:
        if not args.keep:
            users_sync.drop_schema(planner_schema(args.schema))
            users_sync.drop_schema(args.schema)
            shutil.rmtree(work, ignore_errors=True)

    print(json.dumps(report, indent=2))
    print_tables(report)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    if args.keep:
        print(f"kept: {work}, schemas {args.schema} and {planner_schema(args.schema)}")
    return report


if __name__ == "__main__":
    main()
