"""Benchmark: the web UI's pages with 100 syncs and a million-row run, against the same pages small.

    uv run python bench/ui_pages.py                  # 100 syncs, a 1M-row run
    uv run python bench/ui_pages.py --syncs 20 --rows 100000

It builds one home (SQLite metadata database, as ``serve`` starts with) holding a DuckDB source with two
tables, ``small`` (1,000 users) and ``big`` (``--rows`` users, one in a hundred with an email Iterable
rejects), and ``--syncs`` Users syncs: one over ``big``, the others over ``small``. Every sync really runs
(twice: a first run and one with nothing changed, so each has a snapshot and a history) into
``bench/sink.py``; the million rows' outcomes are those the run recorded.

It then serves the UI as ``serve`` does (uvicorn on a loopback port, in this process) and times each page
over HTTP, the median of ``--repeat`` requests, beside its baseline measured in the same run:

- the sync list (and the fragment it polls every 5 s) with every sync, against the same list when the
  project has only one sync (a second home): the ratio says how the list grows with the syncs;
- a sync's page, against the same page in the one-sync home;
- the big run's page (first and last page of rows, one status, one reason, one primary key searched),
  against the same pages of a 1,000-row run: paged on the server, they should cost about the same;
- every page also against the sign-in page, the floor of a request (a template and nothing read).

Prints a JSON report and a table; never asserts on time (machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))
import sink as sink_module  # the Iterable-shaped sink
from smartingest import service
from smartingest.server.app import create_app
from smartingest.server.listening import listening_socket

API_KEY = "bench-key"
SMALL_ROWS = 1_000
NO_RATE_LIMITS = 100_000


def make_source(path: Path, rows: int) -> None:
    """The DuckDB file: ``small`` and ``big`` users tables (one big user in a hundred has a bad email)."""
    good = "'u' || i || '@example.com'"
    with duckdb.connect(str(path)) as con:
        for table, count, email in (
            ("small", SMALL_ROWS, good),
            ("big", rows, f"CASE WHEN i % 100 = 7 THEN 'not-an-email-' || i ELSE {good} END"),
        ):
            columns = f"i AS id, {email} AS email, 'plan' || (i % 4) AS plan"
            con.execute(f"CREATE TABLE {table} AS SELECT {columns} FROM range(?) t(i)", [count])


def define(ws: service.Workspace, source: Path, sink_url: str, syncs: int) -> list[str]:
    """The source, two models, the destination and ``syncs`` Users syncs (the first over ``big``)."""
    service.save_definition(ws, "source", "files", {"type": "duckdb", "path": str(source)})
    for model in ("small", "big"):
        service.save_definition(ws, "model", model, {"source": "files", "table": model, "primary_key": "id"})
    destination = {"api_key": API_KEY, "base_url": sink_url, "environment": "test", "rate_limit_scale": NO_RATE_LIMITS}
    service.save_definition(ws, "destination", "iterable", destination)
    names = []
    for i in range(syncs):
        name = f"sync-{i:03d}"
        mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]
        definition = {"type": "users", "model": "big" if i == 0 else "small", "destination": "iterable"}
        service.save_definition(ws, "sync", name, {**definition, "mappings": mappings, "schedule": {"every": "1h"}})
        names.append(name)
    return names


def build_home(home: Path, source: Path, sink_url: str, syncs: int) -> dict[str, Any]:
    """A home whose syncs have each run twice; returns the names and the big and small runs' ids."""
    ws = service.open_workspace(home=home)
    names = define(ws, source, sink_url, syncs)
    started = time.perf_counter()
    for _ in range(2):
        for name in names:
            service.run(ws, name)
    runs = {name: service.list_runs(ws, name, limit=2) for name in names}
    built = {
        "names": names,
        "token": service.create_token(ws, "bench"),
        "first_run": {name: runs[name][-1].id for name in names},  # first runs sent every row
        "seconds": round(time.perf_counter() - started, 1),
    }
    ws.ledger.engine.dispose()
    return built


class Served:
    """The UI and API served by uvicorn in a thread, and a signed-in client."""

    def __init__(self, home: Path, token: str) -> None:
        app = create_app(lambda: service.open_workspace(home=home), run_workers=1, schedule=False)
        self.sock = listening_socket("127.0.0.1", 0)
        url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.http = httpx.Client(
            base_url=url,
            cookies={"smartingest_session": token},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    def time(self, path: str, repeat: int) -> float:
        """Median milliseconds of ``repeat`` GETs of ``path`` (after one untimed: caches warm as in use)."""
        samples = []
        for i in range(repeat + 1):
            start = time.perf_counter()
            response = self.http.get(path)
            elapsed = time.perf_counter() - start
            if response.status_code != 200 or ("Sign in" in response.text and "/login" not in path):
                raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
            if i:
                samples.append(elapsed * 1000)
        return statistics.median(samples)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def run_pages(run_id: int, rows: int) -> dict[str, str]:
    """The pages of one run of ``rows`` rows a user opens, by what they show."""
    return {
        "run page, first 50 rows": f"/runs/{run_id}",
        "run page, a page near the end": f"/runs/{run_id}?offset={rows - 50}",
        "rows rejected": f"/runs/{run_id}?status=rejected",
        "rows of one reason": f"/runs/{run_id}?reason=invalid_email",
        "one primary key searched": f"/runs/{run_id}?key={rows - 3}",
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    source = work / "source.duckdb"
    make_source(source, args.rows)
    with sink_module.SinkProcess(API_KEY) as sink:
        many = build_home(work / "many", source, sink.url, args.syncs)
        one = build_home(work / "one", source, sink.url, 1)
        # The one-sync home's sync reads ``big``; give it a small run to compare the run pages with.
        small_run = many["first_run"][many["names"][1]]
    big_run = many["first_run"][many["names"][0]]
    report: dict[str, Any] = {"syncs": args.syncs, "rows": args.rows, "setup_seconds": many["seconds"], "pages": {}}

    served_many, served_one = Served(work / "many", many["token"]), Served(work / "one", one["token"])
    try:
        floor = served_many.time("/login", args.repeat)
        report["sign_in_page_ms"] = round(floor, 1)

        def line(what: str, ms: float, baseline: float, baseline_name: str) -> None:
            report["pages"][what] = {
                "ms": round(ms, 1),
                "baseline": baseline_name,
                "baseline_ms": round(baseline, 1),
                "x_baseline": round(ms / baseline, 2),
                "x_sign_in": round(ms / floor, 1),
            }

        for what, path in (
            ("sync list", "/syncs"),
            ("sync list, polled fragment", "/syncs?fragment=true"),
            ("a sync's page", "/syncs/sync-000"),
            ("API sync list", "/api/v1/syncs"),
        ):
            ms, baseline = served_many.time(path, args.repeat), served_one.time(path, args.repeat)
            line(f"{what} ({args.syncs} syncs)", ms, baseline, "1 sync")
        small = run_pages(small_run, SMALL_ROWS)
        for what, path in run_pages(big_run, args.rows).items():
            ms, baseline = served_many.time(path, args.repeat), served_many.time(small[what], args.repeat)
            line(f"{what} ({args.rows:,}-row run)", ms, baseline, f"{SMALL_ROWS:,}-row run")
    finally:
        served_many.close()
        served_one.close()
    return report


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['syncs']} syncs, a {report['rows']:,}-row run; sign-in page {report['sign_in_page_ms']} ms")
    print(f"{'page':<52} {'ms':>8} {'baseline':>16} {'ms':>8} {'x base':>7} {'x sign-in':>9}")
    for what, line in report["pages"].items():
        print(
            f"{what:<52} {line['ms']:>8} {line['baseline']:>16} {line['baseline_ms']:>8} "
            f"{line['x_baseline']:>7} {line['x_sign_in']:>9}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syncs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7, help="requests per page (the median is kept)")
    args = parser.parse_args(argv)
    os.environ.pop("SMARTINGEST_DATABASE_URL", None)  # the homes' own SQLite metadata databases
    os.environ.pop("SMARTINGEST_SECRET_KEY", None)
    with tempfile.TemporaryDirectory(prefix="smartingest-ui-bench-") as tmp:
        report = measure(args, Path(tmp))
    print(json.dumps(report, indent=2))
    print_table(report)
    return report


if __name__ == "__main__":
    main()
