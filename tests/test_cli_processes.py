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
