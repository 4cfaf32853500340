"""Benchmark: a Users first run under Iterable's real rate limits, against the ceiling they allow.

    uv run python bench/rate_limits.py                 # 50,000 users
    uv run python bench/rate_limits.py --users 200000

Our sandbox enforces Iterable's documented limits (``python -m smartingest.sandbox`` without
``--no-rate-limits``) and the destination paces itself at them (``rate_limit_scale: 1``). The ceiling
is bulkUpdate's rate (``iterable/endpoints.py``: 5 requests/s per project) times the users a request
carries (the users sync's ``batch_size``, 1,000): 5,000 users/s. The report gives the share of it the
run achieved, over its deliver phase and over the whole process, and the 429s it met (``throttled`` in
the run's ``delivery`` statistics, docs/runs.md): a client that paces itself right meets none.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from smartingest.config.syncs import UsersSync
from smartingest.iterable.endpoints import USERS_BULK_UPDATE

sys.path.insert(0, str(Path(__file__).parent))
import users_sync  # the table generator, project file, sandbox and timed runs

SCHEMA = "smartingest_bench_limits"


def measure(users: int, concurrency: int, schema: str = SCHEMA) -> dict:
    """One first run of ``users`` rows into a rate-limited sandbox; the report (see the module docstring)."""
    batch = UsersSync.model_fields["batch_size"].default
    ceiling = USERS_BULK_UPDATE.rate_per_second * batch
    work = Path(tempfile.mkdtemp(prefix="smartingest-bench-limits-"))
    users_sync.create_table(users, schema)
    sandbox = users_sync.start_sandbox(work / "sandbox", rate_limits=True)
    try:
        project = users_sync.write_project(work, sandbox.url, concurrency, schema, "limits", rate_limit_scale=1)
        seconds, peak, summary = users_sync.sync_run(project, work / "home")
        users_sync.check_summary("first run under rate limits", summary, "synced", users)
    finally:
        sandbox.close()
        users_sync.drop_schema(schema)
        shutil.rmtree(work, ignore_errors=True)
    deliver = summary["timings"]["deliver"]
    delivery = summary["delivery"]
    return {
        "users": users,
        "max_concurrent_requests": concurrency,
        "ceiling_users_per_s": ceiling,
        "ceiling": f"{USERS_BULK_UPDATE.name}: {USERS_BULK_UPDATE.rate_per_second:g} requests/s x {batch} users",
        "seconds": round(seconds, 3),
        "deliver_seconds": deliver,
        "users_per_s_delivering": round(users / deliver),
        "users_per_s_whole_run": round(users / seconds),
        "share_of_ceiling_delivering": round(users / deliver / ceiling, 3),
        "share_of_ceiling_whole_run": round(users / seconds / ceiling, 3),
        "throttled_429": delivery["throttled"],
        "requests": delivery["requests"],
        "delivery": delivery,
        "peak_rss_mib": round(peak, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50_000, help="rows in the generated table")
    parser.add_argument("--concurrency", type=int, default=4, help="max_concurrent_requests")
    parser.add_argument("--schema", default=SCHEMA, help="PostgreSQL schema of the generated table")
    args = parser.parse_args(argv)
    report = measure(args.users, args.concurrency, args.schema)
    print(json.dumps(report, indent=2))
    print(
        f"\n{report['users']:,} users in {report['seconds']:.1f} s ({report['deliver_seconds']:.1f} s delivering): "
        f"{report['users_per_s_delivering']:,} users/s while delivering, "
        f"{report['share_of_ceiling_delivering']:.0%} of the ceiling ({report['ceiling']}); "
        f"whole run {report['share_of_ceiling_whole_run']:.0%}; "
        f"429s met: {report['throttled_429']} in {report['requests']} requests"
    )
    return report


if __name__ == "__main__":
    main()
