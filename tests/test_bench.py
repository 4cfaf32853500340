"""The benchmark still works: its sink answers and counts like Iterable, its scripts run on a tiny table.

Speed is never asserted here (docs/testing.md); these only fail when `make bench` would break.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import httpx
import orjson
import pytest

from tests.iterable_contract import CONTRACT_PATH, load_contract

BENCH = Path(__file__).resolve().parent.parent / "bench"
KEY = "bench-test-key"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sink_module = _load("sink")
handwritten = _load("handwritten")
users_sync = _load("users_sync")
rate_limits = _load("rate_limits")


@pytest.fixture(scope="module")
def sink() -> Iterator:
    with sink_module.SinkProcess(KEY) as process:
        yield process


@pytest.fixture
def http(sink) -> Iterator[httpx.Client]:
    sink.reset()
    with httpx.Client(base_url=sink.url, headers={"Api-Key": KEY}, timeout=10) as client:
        yield client


@pytest.fixture
def schema() -> Iterator[str]:
    """A schema of its own for the bench's table (never another test's, nor another run's)."""
    name = f"smartingest_bench_test_{uuid.uuid4().hex[:8]}"
    yield name
    users_sync.drop_schema(name)


needs_contract = pytest.mark.skipif(not CONTRACT_PATH.exists(), reason=f"the API contract is not at {CONTRACT_PATH}")


def _answer_fits(method: str, template: str, response: httpx.Response) -> None:
    operation = load_contract().operation(method, template)
    assert operation is not None
    problems = operation.response_problems(response.status_code, response.headers["content-type"], response.content)
    assert problems == [], problems


@needs_contract
def test_the_sink_answers_bulk_update_per_the_contract_and_counts_distinct_users(http, sink):
    users = [
        {"email": "ann@example.com", "dataFields": {"plan": "pro", "ltv": 1.5, "seen": "2024-01-31 13:45:00 +00:00"}},
        {"email": "Ann@Example.com", "dataFields": {"plan": "team"}},  # the same user, as Iterable compares emails
        {"userId": "u-1"},
        {"email": "not-an-email"},
        {"dataFields": {"plan": "free"}},
    ]
    first_body_bytes = len(orjson.dumps({"users": users}))
    response = http.post("/api/users/bulkUpdate", content=orjson.dumps({"users": users}))
    assert response.status_code == 200
    _answer_fits("POST", "/api/users/bulkUpdate", response)
    answer = response.json()
    assert (answer["successCount"], answer["failCount"]) == (3, 2)
    assert answer["failedUpdates"]["invalidEmails"] == ["not-an-email", ""]
    assert set(answer["createdFields"]) == {"email", "plan", "ltv", "seen"}

    again = http.post("/api/users/bulkUpdate", content=orjson.dumps({"users": [{"email": "bob@example.com"}] * 2}))
    assert again.json()["successCount"] == 2

    assert sink.stats() == {
        "requests": 2,
        "users": 7,
        "distinct_users": 3,  # ann, u-1, bob
        "failed_users": 2,
        "other_requests": 0,
        "refused_requests": 0,
        "body_bytes": len(orjson.dumps({"users": [{"email": "bob@example.com"}] * 2})) + first_body_bytes,
    }
    fields = http.get("/api/users/getFields")
    _answer_fits("GET", "/api/users/getFields", fields)
    assert fields.json() == {"fields": {"email": "string", "plan": "string", "ltv": "double", "seen": "date"}}

    sink.reset()
    assert sink.stats()["distinct_users"] == 0


@needs_contract
def test_the_sink_refuses_a_bad_key_and_a_bad_body(http, sink):
    for headers in ({"Api-Key": "wrong"}, {"Api-Key": ""}):
        refused = http.post("/api/users/bulkUpdate", content=b'{"users": []}', headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "BadApiKey"
        _answer_fits("POST", "/api/users/bulkUpdate", refused)
    assert http.get("/api/users/getFields", headers={"Api-Key": "wrong"}).status_code == 401
    malformed = http.post("/api/users/bulkUpdate", content=b"{not json")
    assert malformed.status_code == 400 and malformed.json()["code"] == "BadJsonBody"
    assert http.get("/api/nothing/here").status_code == 404
    assert sink.stats()["users"] == 0 and sink.stats()["refused_requests"] == 5


def test_the_sink_speaks_http_1_1_keep_alive_chunked_and_pipelined(sink):
    sink.reset()
    host, port = sink.url.removeprefix("http://").split(":")
    body = b'{"users": [{"email": "pipe@example.com"}]}'
    post = b"POST /api/users/bulkUpdate HTTP/1.1\r\nHost: x\r\nApi-Key: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        KEY.encode(),
        len(body),
        body,
    )
    chunked = (
        b"POST /api/users/bulkUpdate HTTP/1.1\r\nHost: x\r\nApi-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
        % KEY.encode()
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        # Three requests in one write, the last closing the connection: three answers, in order, then EOF.
        conn.sendall(post + chunked + b"GET /_sink/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 3
    assert b'"users":2,"distinct_users":1,"failed_users":0,"other_requests":0,"refused_requests":0,' in received


def test_the_sink_load_generator_measures_it(sink):
    sink.reset()
    result = sink_module.measure(sink.url, KEY, users=5000, concurrency=2, pid=sink.proc.pid)
    assert result["users"] == 5000 and result["users_per_s"] > 0
    assert sink.stats()["distinct_users"] == 5000


def test_the_handwritten_script_sends_every_row_as_iterable_wants_it(sink, schema):
    users_sync.create_table(2000, schema)
    sink.reset()
    result = handwritten.sync(sink.url, KEY, schema, users_sync.DSN)
    assert (result["users"], result["failed"], result["requests"]) == (2000, 0, 2)
    assert sink.stats()["distinct_users"] == 2000

    row = (7, "user7@example.com", "First7", "Last7", "Lima", "team", Decimal("554.33"), Decimal("1.0"), False,
           datetime(2023, 1, 1, 0, 7, tzinfo=UTC))  # fmt: skip
    user = handwritten.to_user(row)
    assert user["email"] == "user7@example.com"
    assert user["dataFields"]["signedUpAt"] == "2023-01-01 00:07:00 +00:00"
    assert user["dataFields"]["ltv"] == 554.33 and isinstance(user["dataFields"]["score"], float)
    assert len(user["dataFields"]) == 9


def test_the_benchmark_runs_end_to_end_on_a_tiny_table(tmp_path, schema):
    report_path = tmp_path / "report.json"
    command = [sys.executable, str(BENCH / "users_sync.py"), "--rows", "2000", "--concurrency", "4"]
    command += ["--sink-users", "5000", "--schema", schema, "--report", str(report_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    lines = report["lines"]
    assert list(lines) == ["copy", "script", "first_c4", "changed"]
    assert lines["first_c4"]["sink"]["distinct_users"] == 2000
    assert lines["changed"]["sink"]["distinct_users"] == lines["changed"]["changed_rows"] == 20
    assert lines["script"]["x_script"] == 1.0 and lines["copy"]["x_copy"] == 1.0
    assert all(line["seconds"] > 0 for line in lines.values())
    assert all(lines[name]["peak_rss_mib"] for name in ("script", "first_c4", "changed"))
    assert "hand-written script" in done.stdout and "smartingest 1%-changed run" in done.stdout


def test_the_rate_limits_benchmark_reports_its_share_of_the_ceiling(schema):
    report = rate_limits.measure(2000, concurrency=4, schema=schema)
    assert report["ceiling_users_per_s"] == 5000
    assert report["throttled_429"] == 0 and report["requests"] == 2
    assert 0 < report["share_of_ceiling_whole_run"] <= report["share_of_ceiling_delivering"]


def test_the_template_benchmark_checks_its_renderings_against_liquid_row_by_row():
    report = _load("templates").main(["--rows", "3000"])
    assert len(report["lines"]) == 4
    assert all(line["rows_per_s"] > 0 for line in report["lines"].values())


def test_the_added_fields_benchmark_delivers_every_row_both_ways_and_the_lone_field_is_smaller(tmp_path, schema):
    results = _load("added_fields").measure(300, schema, tmp_path)
    alone, whole = results["added field alone"], results["whole rows"]
    assert alone["requests"] == whole["requests"] == 1
    assert 0 < alone["body_bytes"] * 2 < whole["body_bytes"]


def test_the_ui_pages_benchmark_times_every_page_against_its_baseline():
    report = _load("ui_pages").main(["--syncs", "3", "--rows", "2000", "--repeat", "1"])
    assert len(report["pages"]) == 9
    assert all(line["ms"] > 0 and line["baseline_ms"] > 0 for line in report["pages"].values())


def test_the_extract_benchmark_reads_every_row_of_both_databases_beside_their_clients():
    extract = _load("extract")
    name = f"smartingest_bench_test_{uuid.uuid4().hex[:8]}"
    report = extract.measure(500, 1, name)
    assert set(report["databases"]) == {"PostgreSQL", "MariaDB"}
    for ways in report["databases"].values():
        assert set(ways) == {"connector", "client dump"}
        assert ways["client dump"]["x_client_dump"] == 1.0
        assert all(line["seconds"] > 0 for line in ways.values())


def test_the_lightning_benchmark_times_both_engines_changed_runs_against_copy_on_two_sizes(tmp_path, schema):
    report_path = tmp_path / "report.json"
    command = [sys.executable, str(BENCH / "lightning.py"), "--rows", "300,500", "--schema", schema]
    command += ["--report", str(report_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert list(report["sizes"]) == ["300", "500"]
    for rows, size in ((300, report["sizes"]["300"]), (500, report["sizes"]["500"])):
        lines = size["lines"]
        assert list(lines) == ["copy", "basic_changed", "lightning_changed", "basic_first", "lightning_first"]
        assert size["changed_rows"] == rows // 100
        for engine in ("basic", "lightning"):
            assert lines[f"{engine}_first"]["sink"]["distinct_users"] == rows
            assert lines[f"{engine}_changed"]["sink"]["distinct_users"] == rows // 100
            assert lines[f"{engine}_changed"]["peak_rss_mib"] > 0
            assert set(lines[f"{engine}_changed"]["phases"]) >= {"query_and_plan", "outside_phases"}
        # Basic reads every row out of the database; Lightning the changes and the tally's one row.
        assert lines["copy"]["rows_read"] == lines["basic_changed"]["rows_read"] == rows
        assert lines["lightning_changed"]["rows_read"] == rows // 100 + 1
        assert lines["copy"]["x_copy"] == 1.0 and all(line["seconds"] > 0 for line in lines.values())
    assert "| Lightning, 1%-changed run |" in done.stdout
    # The planner schema goes with the table (the fixture drops the table's schema only).
    with users_sync.psycopg.connect(users_sync.DSN) as con:
        found = con.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (f"{schema}_planner",))
        assert found.fetchone() == (0,)
