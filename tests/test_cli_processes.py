"""The command line as a user runs it: real processes for the sandbox command and progress output."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sandbox_command_serves_and_prints_its_generated_key(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartingest",
            "sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "d"),
            "--project-type",
            "hybrid",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"API key: (\S+)", line)
        assert match, line
        key = match[1]
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/users/getFields", headers={"Api-Key": key})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/users/getFields", headers={"Api-Key": "x"}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sandbox_command_rejects_a_bad_project_type(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "smartingest", "sandbox", "--project-type", "mail", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--project-type must be email, userid or hybrid" in result.stderr


_PROGRESS_CHECK = """
import sys
from pathlib import Path
import duckdb
from smartingest.cdc.base import HashSpec
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.sources.registry import open_source
tmp = Path(sys.argv[1])
with duckdb.connect(str(tmp / "s.duckdb")) as con:
    con.execute("CREATE TABLE t AS SELECT 1 AS id, 'a@x.io' AS email")
source = open_source("db", SourceConfig.model_validate({"type": "duckdb", "path": str(tmp / "s.duckdb")}))
change_set = BasicChangeDetector(tmp / "state").plan(
    "s", source, ModelConfig(source="db", table="t", primary_key="id"), HashSpec("id", ("email",), "f"))
setting = "SELECT current_setting('enable_progress_bar')"
print(change_set.con.execute(setting).fetchone()[0])
change_set.close()
with source._session() as connection:
    print(connection.execute(setting).fetchone()[0])
"""


def test_duckdb_connections_draw_no_progress_bar(tmp_path):
    """DuckDB draws a progress bar on stdout for queries over two seconds, which would corrupt --json output.

    Checked in a process of its own: under pytest DuckDB leaves the bar off anyway.
    """
    result = subprocess.run(
        [sys.executable, "-c", _PROGRESS_CHECK, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_the_cli_answers_without_importing_the_engine():
    # --version, --help and argument errors need only the command line: the engine is imported on first use.
    probe = (
        "import sys; from smartingest import cli; "
        "heavy = [m for m in ('duckdb', 'pyarrow', 'sqlalchemy', 'httpx') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
