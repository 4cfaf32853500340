"""Benchmark: peak memory of the Basic engine's plan as the model grows, without delivering anything.

    uv run python bench/cdc_memory.py --rows 1000000 3000000 --memory-limit 128MB

For each size it generates the PostgreSQL users table of bench/users_sync.py, plans a first run,
acknowledges every row and commits (as if Iterable took them all), changes 1% of the rows and plans
again, each in a fresh process so that max RSS is that plan's own. Prints seconds and peak RSS per
plan next to the COPY baseline. Memory should stop growing once DuckDB reaches --memory-limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import users_sync  # the table generator and the COPY baseline are shared

CHILD = """
import json, sys, time
from pathlib import Path
from smartingest.cdc.base import HashSpec
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.sources.registry import open_source
state, limit, sql = sys.argv[1], sys.argv[2], sys.argv[3]
source = open_source("pg", SourceConfig.model_validate(
    {"type": "postgres", "host": "127.0.0.1", "database": "test", "user": "postgres"}))
model = ModelConfig(source="pg", sql=sql, primary_key="id")
spec = HashSpec("id", ("active", "city", "email", "first_name", "last_name", "ltv", "plan", "score",
                       "signed_up_at"), "bench")
start = time.perf_counter()
change_set = BasicChangeDetector(Path(state), memory_limit=limit).plan("bench", source, model, spec)
planned = time.perf_counter() - start
for batch in change_set.changes(100_000):
    n = batch.num_rows
    change_set.settle(batch.column("__pk").to_pylist(), batch.column("__op").to_pylist(), [True] * n)
change_set.commit()
change_set.close()
print(json.dumps({"plan_seconds": planned, "changes": change_set.counts.to_send}))
"""


def plan_in_child(state: Path, limit: str) -> tuple[float, float, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), limit, users_sync.MODEL_SQL], stdout=subprocess.PIPE
    )
    stdout = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError("plan failed")
    result = json.loads(stdout)
    return result["plan_seconds"], usage.ru_maxrss / 1024, result["changes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--memory-limit", default="128MB", help="the Basic engine's cdc_memory_limit")
    args = parser.parse_args()
    print(f"{'rows':>10}{'COPY s':>9}{'first plan s':>14}{'peak MiB':>10}{'1% plan s':>11}{'peak MiB':>10}")
    for rows in args.rows:
        users_sync.create_table(rows)
        state = Path(tempfile.mkdtemp(prefix="smartingest-cdc-bench-"))
        copy = users_sync.time_copy()
        first_s, first_mem, _ = plan_in_child(state, args.memory_limit)
        users_sync.change_rows(1.0)
        second_s, second_mem, changes = plan_in_child(state, args.memory_limit)
        print(
            f"{rows:>10,}{copy:>9.2f}{first_s:>14.2f}{first_mem:>10.0f}{second_s:>11.2f}{second_mem:>10.0f}"
            f"   ({changes:,} changes)"
        )
        time.sleep(0.1)
    with users_sync.psycopg.connect(users_sync.DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {users_sync.SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
