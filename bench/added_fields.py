"""Benchmark: the run after a mapping was added, sending only the added field to unchanged rows, against
sending every row whole (what any other mapping change does, and what a full resync does).

    uv run python bench/added_fields.py                 # 1M rows
    uv run python bench/added_fields.py --rows 100000

On the users table of ``bench/users_sync.py`` (PostgreSQL) and its Iterable-shaped sink, in one run:

1. a first run with the benchmark's ten mappings fills the snapshot;
2. the state is copied, and a template mapping (``fullName``) is added to the project;
3. **added field alone**: ``sync run`` on one copy, where every row is unchanged and gets only the new field;
4. **whole rows**: ``sync run --full-resync`` on the other copy, every row sent with every field.

Prints, for both, the seconds of the run process, its peak RSS, the requests and bytes the sink received,
and the ratios of the first to the second; never asserts on time. Both must deliver every row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import sink as sink_module
import users_sync

ADDED = {"template": "{{ first_name }} {{ last_name }}", "to": "fullName"}


def run(project: Path, home: Path, *options: str) -> tuple[float, float, dict[str, Any]]:
    """(seconds, peak RSS in MiB, run summary) of one ``sync run`` process."""
    command = [sys.executable, "-m", "smartingest", "--project", str(project), "sync", "run", "bench", "--json"]
    seconds, peak, stdout = users_sync.run_process([*command, *options], {**os.environ, "SMARTINGEST_HOME": str(home)})
    return seconds, peak, json.loads(stdout)


def with_added_mapping(project: Path) -> Path:
    doc = json.loads(project.read_text())
    doc["syncs"]["bench"]["mappings"].append(ADDED)
    added = project.with_name("added.yaml")
    added.write_text(json.dumps(doc))
    return added


def measure(rows: int, schema: str, work: Path, concurrency: int = 4) -> dict[str, dict[str, Any]]:
    users_sync.create_table(rows, schema)
    with sink_module.SinkProcess(users_sync.API_KEY) as sink:
        project = users_sync.write_project(work, sink.url, concurrency, schema, "base")
        first = work / "alone"
        _, _, summary = run(project, first)
        users_sync.check_summary("first run", summary, "synced", rows)
        whole = work / "whole"
        shutil.copytree(first, whole)
        added = with_added_mapping(project)
        results: dict[str, dict[str, Any]] = {}
        for name, home, options in (("added field alone", first, ()), ("whole rows", whole, ("--full-resync",))):
            sink.reset()
            seconds, peak, summary = run(added, home, *options)
            users_sync.check_summary(name, summary, "synced", rows)
            stats = users_sync.expect(sink, name, rows)
            results[name] = {
                "seconds": round(seconds, 2),
                "peak_rss_mib": round(peak),
                "requests": stats["requests"],
                "body_bytes": stats["body_bytes"],
            }
        return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--schema", default=users_sync.SCHEMA + "_added")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smartingest-bench-") as tmp:
        try:
            results = measure(args.rows, args.schema, Path(tmp))
        finally:
            users_sync.drop_schema(args.schema)
    alone, whole = results["added field alone"], results["whole rows"]
    report = {
        "rows": args.rows,
        "results": results,
        "ratios": {
            "seconds": round(alone["seconds"] / whole["seconds"], 2),
            "body_bytes": round(alone["body_bytes"] / whole["body_bytes"], 2),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return report
    print(f"{args.rows:,} rows, one template mapping added to ten")
    print(f"{'':20} {'seconds':>8} {'peak RSS':>9} {'requests':>9} {'body MiB':>9}")
    for name, r in results.items():
        mib = r["body_bytes"] / 2**20
        print(f"{name:20} {r['seconds']:>8} {r['peak_rss_mib']:>8}M {r['requests']:>9,} {mib:>9.1f}")
    ratios = report["ratios"]
    print(f"added field alone / whole rows: {ratios['seconds']}x the time, {ratios['body_bytes']}x the bytes")
    return report


if __name__ == "__main__":
    main()
