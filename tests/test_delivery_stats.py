"""What delivery met, over real HTTP: the retry breakdown adds up, "sent" means rows that went out and
were answered, Retry-After is honoured up to its ceiling, and pacing meets no 429.

The sandbox answers where Iterable's rules matter (refused users, rate limits). Where a test needs a
given answer to a given bulkUpdate, a scripted server on loopback gives it: the sandbox's faults hit the
next requests whatever their endpoint, and a run reads the project's field types before it sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from smartingest.iterable.ratelimit import RequestPacer
from smartingest.sandbox import SandboxServer
from tests.conftest import SandboxAdmin, create_customers, running_sandbox, write_project

SYNC = "customers_to_users"
FAST = {"rate_limit_scale": 100}  # pacing is not under test here

# A scripted answer: "drop" (the connection closes without an answer) or (status, headers).
Scripted = str | tuple[int, dict[str, str]]


class ScriptedIterable:
    """An HTTP server on loopback that answers like Iterable, as scripted.

    ``GET /api/users/getFields`` lists no field. Each ``POST /api/users/bulkUpdate`` takes the next
    answer of the script; once it is spent, every user of a request is accepted. ``bulk_requests``
    counts the bulkUpdate requests received.
    """

    def __init__(self, script: list[Scripted]) -> None:
        self.script = list(script)
        self.bulk_requests = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200, {}, {"fields": {}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.bulk_requests += 1
                    scripted = owner.script.pop(0) if owner.script else None
                if scripted == "drop":
                    self.close_connection = True  # no answer at all: the client sees the connection close
                    return
                if scripted is not None:
                    status, headers = scripted
                    self._answer(status, headers, {"msg": "scripted failure", "code": "GenericError"})
                    return
                users = len(body["users"])
                self._answer(200, {}, {"successCount": users, "failCount": 0, "failedUpdates": {}})

            def _answer(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Any]:
    """Starts ScriptedIterable servers for a test (call with the script) and stops them after it."""
    servers: list[ScriptedIterable] = []

    def start(script: list[Scripted]) -> ScriptedIterable:
        servers.append(ScriptedIterable(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


def _assert_delivery_identities(delivery: dict[str, int]) -> None:
    assert delivery["requests"] == (
        delivery["accepted"] + delivery["refused"] + delivery["retries"] + delivery["gave_up"]
    ), delivery
    assert delivery["retries"] == delivery["throttled"] + delivery["server_errors"] + delivery["no_response"], delivery


def _cli(args: list[str], home: Path) -> str:
    result = CliRunner().invoke(app, args, env={"SMARTINGEST_HOME": str(home), "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.output


# -- the retry breakdown ----------------------------------------------------------------------------------------

# The first bulkUpdate of a 3-request run meets the script; the other two pass at once.
SCENARIOS: dict[str, tuple[list[Scripted], int, dict[str, int]]] = {
    # a dropped connection and two 503s, then it passes on its 4th attempt
    "recovers": (
        ["drop", (503, {}), (503, {})],
        4,
        {"requests": 6, "accepted": 3, "refused": 0, "retries": 3, "gave_up": 0}
        | {"throttled": 0, "server_errors": 2, "no_response": 1},
    ),
    # a dropped connection and two 429s with 3 attempts: its last failure is not retried
    "gives up": (
        ["drop", (429, {"Retry-After": "0"}), (429, {"Retry-After": "0"})],
        3,
        {"requests": 3, "accepted": 0, "refused": 0, "retries": 2, "gave_up": 1}
        | {"throttled": 1, "server_errors": 0, "no_response": 1},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_retry_breakdown_adds_up(pg, scripted, tmp_path, scenario):
    script, max_attempts, expected = SCENARIOS[scenario]
    create_customers(pg, 300)
    server = scripted(script)
    project = write_project(
        tmp_path,
        server.url,
        sql=_sql(pg),
        destination={**FAST, "max_attempts": max_attempts, "max_concurrent_requests": 1},
    )
    home = tmp_path / "home"
    ws = service.open_workspace(project, home=home)

    result = service.run(ws, SYNC)

    delivery = result.delivery
    assert {k: delivery[k] for k in expected} == expected
    _assert_delivery_identities(delivery)
    assert server.bulk_requests == delivery["requests"]
    if scenario == "recovers":
        assert result.status == "succeeded", result.error
        assert delivery["rows_sent"] == result.counts["synced"] == 300
    else:
        assert result.status == "failed"
        assert "gave up after 3 attempts" in (result.error or "")
        assert result.counts["retried_next_run"] == 300
        assert delivery["rows_sent"] == 0
    # The printed breakdown is the recorded one, and its parts add up too.
    shown = _cli(["--project", str(project), "runs", "show", str(result.run_id)], home)
    match = re.search(r"retried (\d+) \(throttled (\d+), server errors (\d+), no response (\d+)\)", shown)
    assert match, shown
    retried, *parts = (int(n) for n in match.groups())
    assert retried == sum(parts) == delivery["retries"]


# -- what "sent" counts -----------------------------------------------------------------------------------------


def test_sent_counts_rows_that_went_out_and_were_answered(pg, sandbox, admin: SandboxAdmin, tmp_path):
    create_customers(pg, 20)
    project = write_project(tmp_path, sandbox.url, sql=_sql(pg), destination=FAST)
    home = tmp_path / "home"
    ws = service.open_workspace(project, home=home)
    assert service.run(ws, SYNC).status == "succeeded"
    pg.execute("UPDATE customers SET first_name = 'Renamed' WHERE id IN (1, 2, 3)")
    pg.execute("UPDATE customers SET email = NULL WHERE id = 4")  # no identifier: rejected, never sent
    pg.execute("UPDATE customers SET email = 'broken' WHERE id = 5")  # sent; Iterable refuses it
    pg.execute("DELETE FROM customers WHERE id > 15")  # removed, on_removed: nothing: no request

    result = service.run(ws, SYNC)

    counts = result.counts
    assert (counts["changed"], counts["removed"]) == (5, 5)
    assert (counts["synced"], counts["rejected"]) == (3 + 5, 2)
    assert result.delivery["rows_sent"] == 4  # rows 1, 2, 3 and 5
    # The summary says what was sent, apart from the changes and their verdicts.
    shown = _cli(["--project", str(project), "runs", "show", str(result.run_id)], home)
    assert "changes 10 = synced 8 + rejected 2 + retried next run 0" in shown
    assert re.search(r"sent 4 rows in \d+ requests", shown), shown
    listed = _cli(["--project", str(project), "runs", "list"], home)
    row = next(line for line in listed.splitlines() if re.match(rf"\W*{result.run_id}\W", line))
    cells = [cell.strip() for cell in re.split(r"[│┃|]", row) if cell.strip()]
    header = next(line for line in listed.splitlines() if "queried" in line)
    names = [cell.strip() for cell in re.split(r"[│┃|]", header) if cell.strip()]
    assert dict(zip(names, cells, strict=True))["sent"] == "4"
    assert dict(zip(names, cells, strict=True))["changes"] == "10"

    # Only removals (the two rejected rows among them): changes that need no request.
    pg.execute("DELETE FROM customers WHERE id IN (4, 5, 15)")
    removals = service.run(ws, SYNC)
    assert (removals.counts["removed"], removals.counts["synced"]) == (3, 3)
    assert removals.delivery["rows_sent"] == removals.delivery["requests"] == 0
    shown = _cli(["--project", str(project), "runs", "show", str(removals.run_id)], home)
    assert "changes 3 = synced 3 + rejected 0" in shown
    assert "sent nothing to Iterable" in shown


# -- Retry-After ---------------------------------------------------------------------------------------------------


def test_retry_after_within_the_ceiling_is_waited_for(pg, scripted, tmp_path):
    create_customers(pg, 50)
    server = scripted([(429, {"Retry-After": "1"})])
    project = write_project(tmp_path, server.url, sql=_sql(pg), destination={**FAST, "max_retry_after_seconds": 2})
    ws = service.open_workspace(project, home=tmp_path / "home")
    started = time.monotonic()
    result = service.run(ws, SYNC)
    assert result.status == "succeeded", result.error
    assert time.monotonic() - started >= 1.0
    assert result.delivery["throttled"] == 1
    assert server.bulk_requests == 2


def test_retry_after_beyond_the_ceiling_stops_sending_for_the_run(pg, scripted, tmp_path):
    create_customers(pg, 300)
    server = scripted([(429, {"Retry-After": "3600"})])
    project = write_project(tmp_path, server.url, sql=_sql(pg), destination={**FAST, "max_concurrent_requests": 1})
    ws = service.open_workspace(project, home=tmp_path / "home")
    started = time.monotonic()
    result = service.run(ws, SYNC)

    assert time.monotonic() - started < 30  # neither the hour asked nor a hidden shorter wait
    assert result.status == "failed"
    assert "3600 s" in (result.error or "")
    assert "max_retry_after_seconds (120 s)" in (result.error or "")
    assert result.counts["retried_next_run"] == 300
    assert result.delivery["gave_up"] == 1
    assert server.bulk_requests == 1  # nothing was sent after the answer
    rows = service.run_rows(ws, result.run_id, status="retry", limit=1000)
    assert len(rows) == 300
    assert all("3600 s" in (row.reason or "") for row in rows)

    again = service.run(ws, SYNC)  # Iterable takes requests again
    assert again.status == "succeeded", again.error
    assert again.counts["added"] == again.counts["synced"] == 300


# -- pacing --------------------------------------------------------------------------------------------------------


def test_pacer_allows_at_most_the_rate_in_any_one_second_window():
    rate = 40

    async def acquire_times(n: int) -> list[float]:
        pacer = RequestPacer(rate)
        times = []
        for _ in range(n):
            await pacer.acquire()
            times.append(time.monotonic())
        return times

    times = asyncio.run(acquire_times(2 * rate + 10))
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= rate


@pytest.fixture
def rate_limited_sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox enforcing Iterable's rate limits, 8 times faster (bulkUpdate: 40/s, bursts of 40)."""
    with running_sandbox(tmp_path / "limited", rate_limits=True, rate_limit_scale=8) as server:
        yield server


def test_a_run_at_the_rate_limit_meets_no_429(pg, rate_limited_sandbox: SandboxServer, tmp_path):
    create_customers(pg, 1000)
    project = write_project(
        tmp_path,
        rate_limited_sandbox.url,
        sql=_sql(pg),
        destination={"rate_limit_scale": 8, "max_concurrent_requests": 8},
        sync={"batch_size": 10},
    )
    ws = service.open_workspace(project, home=tmp_path / "home")

    result = service.run(ws, SYNC)

    assert result.status == "succeeded", result.error
    admin = SandboxAdmin(rate_limited_sandbox)
    assert admin.requests() == result.delivery["requests"] == 100
    stats = admin.http.get("/_sandbox/stats").json()
    assert not [endpoint for endpoint, outcomes in stats["requests"].items() if "429" in outcomes]
    assert result.delivery["throttled"] == result.delivery["gave_up"] == 0
