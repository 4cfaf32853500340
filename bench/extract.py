"""Benchmark: how fast a source connector reads a model out of its database, against that database's own
client dumping the same query, measured in the same run. PostgreSQL and MariaDB, the same table in each.

    uv run python bench/extract.py --rows 1000000 --repeat 3

For each database, one line per way of reading, medians over the rounds:

- **connector**: ``Source.read`` of the model, every Arrow batch consumed (what a sync's read costs);
- **client dump**: the database's own command-line client writing the same query's rows to /dev/null:
  ``psql -c "\\copy (query) to /dev/null"`` for PostgreSQL, ``mariadb --batch --quick -e "query"`` for
  MariaDB (its fastest way to stream a result as text);

with rows/s, the ratio to the client dump (under 1: faster than the database's own client) and the growth
of the reading process's resident memory. The table is the users benchmark's (bench/users_sync.py): ten
columns of the kinds a users model has (bigint key, text, numeric(12,2), numeric, boolean, timestamptz), the
same values in MariaDB (DECIMAL(12,2), DOUBLE, DATETIME).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pymysql

from smartingest.config.models import ModelConfig
from smartingest.sources.mysql import MySQLSource
from smartingest.sources.postgres import PostgresSource

sys.path.insert(0, str(Path(__file__).parent))
import users_sync

PG_DSN = users_sync.DSN
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}
NAME = "smartingest_bench_extract"
COLUMNS = users_sync.COLUMNS


def query(qualifier: str) -> str:
    return f"SELECT {COLUMNS} FROM {qualifier}.users"


# ---------------------------------------------------------------------------------------------- the two tables


def create_postgres(rows: int, schema: str = NAME) -> None:
    users_sync.create_table(rows, schema)  # the users benchmark's table, in a schema of this one's


def create_mariadb(rows: int, database: str = NAME) -> None:
    with pymysql.connect(**MARIADB, autocommit=True) as con, con.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"USE `{database}`")  # where the sequence engine's seq_1_to_N tables resolve
        cur.execute(
            f"""CREATE TABLE `{database}`.users (id BIGINT PRIMARY KEY, email VARCHAR(64), first_name VARCHAR(16),
                last_name VARCHAR(16), city VARCHAR(8), plan VARCHAR(12), ltv DECIMAL(12,2), score DOUBLE,
                active BOOLEAN, signed_up_at DATETIME(6)) ENGINE=InnoDB"""
        )
        # seq_1_to_N is MariaDB's sequence engine: the same values as generate_series above.
        cur.execute(
            f"""INSERT INTO `{database}`.users
                SELECT seq, CONCAT('user', seq, '@example.com'), CONCAT('First', seq % 5000),
                       CONCAT('Last', seq % 7919), ELT(1 + seq % 5, 'Paris','Austin','Osaka','Lagos','Lima'),
                       ELT(1 + seq % 4, 'free','pro','team','enterprise'), (seq * 7919) % 100000 / 100.0,
                       (seq % 1000) / 7.0, seq % 3 = 0,
                       TIMESTAMP'2023-01-01 00:00:00' + INTERVAL (seq % 100000) MINUTE
                FROM seq_1_to_{rows}"""
        )
        cur.execute(f"ANALYZE TABLE `{database}`.users")


def drop_both(name: str = NAME) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    with pymysql.connect(**MARIADB, autocommit=True) as con, con.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


# ------------------------------------------------------------------------------------------------ the readers


def connector_read(source: Any, sql: str) -> Callable[[], tuple[int, float]]:
    """Read the model through the connector; (rows, resident memory growth in MiB)."""

    def run() -> tuple[int, float]:
        process = psutil.Process()
        before, peak, rows = process.memory_info().rss, 0, 0
        with source.read(ModelConfig(source="bench", sql=sql, primary_key="id")) as stream:
            for batch in stream:
                rows += batch.num_rows
                peak = max(peak, process.memory_info().rss)
        return rows, max(peak - before, 0) / 2**20

    return run


def client_dump(command: list[str]) -> Callable[[], tuple[int, float]]:
    def run() -> tuple[int, float]:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return -1, 0.0

    return run


def readers(name: str) -> dict[str, dict[str, tuple[str, Callable[[], tuple[int, float]]]]]:
    pg = PostgresSource(PostgresSource.Settings(database="test", user="postgres"))
    my = MySQLSource(MySQLSource.Settings(**MARIADB, database=name, ssl_mode="disabled"))
    psql = shutil.which("psql") or "psql"
    mariadb = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
    pg_sql, my_sql = query(name), query(f"`{name}`")
    return {
        "PostgreSQL": {
            "connector": ("ADBC, COPY binary", connector_read(pg, pg_sql)),
            "client dump": (
                "psql \\copy to /dev/null",
                client_dump([psql, "-X", "-q", PG_DSN, "-c", f"\\copy ({pg_sql}) to /dev/null"]),
            ),
        },
        "MariaDB": {
            "connector": ("connectorx", connector_read(my, my_sql)),
            "client dump": (
                "mariadb --batch --quick",
                client_dump(
                    [
                        mariadb,
                        "-h",
                        "127.0.0.1",
                        "-u",
                        "root",
                        "--batch",
                        "--quick",
                        "--skip-column-names",
                        "-e",
                        my_sql,
                    ]
                ),
            ),
        },
    }


# -------------------------------------------------------------------------------------------------- the run


def measure(rows: int, repeat: int, name: str = NAME) -> dict[str, Any]:
    create_postgres(rows, name)
    create_mariadb(rows, name)
    try:
        report: dict[str, Any] = {"rows": rows, "repeat": repeat, "databases": {}}
        for database, ways in readers(name).items():
            samples: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
            for _ in range(repeat):
                for way, (_via, run) in ways.items():  # interleaved: a slow moment hits both alike
                    start = time.perf_counter()
                    read, memory = run()
                    seconds = time.perf_counter() - start
                    if read not in (-1, rows):
                        raise RuntimeError(f"{database} {way} read {read} rows, not {rows}")
                    samples[way].append((seconds, memory))
            dump = statistics.median(s for s, _ in samples["client dump"])
            report["databases"][database] = {
                way: {
                    "via": ways[way][0],
                    "seconds": (seconds := statistics.median(s for s, _ in samples[way])),
                    "rows_per_second": rows / seconds,
                    "x_client_dump": seconds / dump,
                    "memory_mib": max(m for _, m in samples[way]),
                }
                for way in ways
            }
        return report
    finally:
        drop_both(name)


def print_table(report: dict[str, Any]) -> None:
    print(f"{report['rows']:,} rows, medians of {report['repeat']}")
    print(f"{'':50}{'seconds':>9}{'rows/s':>12}{'x dump':>8}{'+MiB':>7}")
    for database, ways in report["databases"].items():
        for way, line in ways.items():
            label = f"{database} {way} ({line['via']})"
            print(
                f"{label:50}{line['seconds']:>9.2f}{line['rows_per_second']:>12,.0f}"
                f"{line['x_client_dump']:>8.2f}{line['memory_mib']:>7.0f}"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated tables")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--json", action="store_true", help="print the report as JSON as well")
    args = parser.parse_args(argv)
    report = measure(args.rows, args.repeat)
    print_table(report)
    if args.json:
        print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
