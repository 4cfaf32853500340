"""`smartingest sandbox` and `python -m smartingest.sandbox` take the same flags, run as real processes."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from .helpers import API_KEY

COMMANDS = {
    "smartingest sandbox": [sys.executable, "-m", "smartingest", "sandbox"],
    "python -m smartingest.sandbox": [sys.executable, "-m", "smartingest.sandbox"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_both_commands_take_the_fault_and_setting_flags(tmp_path, command):
    flags = ["--port", "0", "--api-key", API_KEY, "--data-dir", str(tmp_path), "--project-type", "userid"]
    flags += ["--rate-limit-scale", "0.34", "--error-rate", "0.25", "--latency-ms", "1.5", "--drop-rate", "0.125"]
    flags += ["--seed", "7", "--log-level", "info", "--gdpr-daily-cap", "2"]
    process = subprocess.Popen([*COMMANDS[command], *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.fullmatch(
            r"Sandbox listening on (http://127\.0\.0\.1:\d+) \(project type: userid\) API key: (\S+)\n", banner
        )
        assert match, banner
        url = match[1]
        assert match[2] == API_KEY
        faults = _when_up(lambda: httpx.get(f"{url}/_sandbox/faults").json())
        assert (faults["error_rate"], faults["latency_ms"], faults["drop_rate"], faults["seed"]) == (
            0.25,
            1.5,
            0.125,
            7,
        )
        # --rate-limit-scale 0.34: getFields (3/s) lets one request through at a time.
        httpx.delete(f"{url}/_sandbox/faults").raise_for_status()
        codes = [httpx.get(f"{url}/api/users/getFields", headers={"Api-Key": API_KEY}).status_code for _ in range(2)]
        assert codes == [200, 429]
        assert httpx.get(f"{url}/_sandbox/settings").json()["gdpr_daily_cap"] == 2
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "INFO" in stderr  # --log-level info: uvicorn logs its startup


@pytest.mark.parametrize(
    ("command", "flags", "message"),
    [
        ("smartingest sandbox", ["--error-rate", "2"], "--error-rate: Input should be less than or equal to 1"),
        (
            "python -m smartingest.sandbox",
            ["--drop-rate", "-1"],
            "--drop-rate: Input should be greater than or equal to 0",
        ),
        (
            "python -m smartingest.sandbox",
            ["--log-level", "loud"],
            "--log-level must be critical, error, warning, info, debug or trace, not 'loud'",
        ),
        (
            "python -m smartingest.sandbox",
            ["--project-type", "mail"],
            "--project-type must be email, userid or hybrid, not 'mail'",
        ),
    ],
)
def test_an_invalid_setting_is_a_usage_error_naming_its_flag(tmp_path, command, flags, message):
    result = subprocess.run(
        [*COMMANDS[command], "--data-dir", str(tmp_path), *flags], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert f"{command}: error: {message}" in result.stderr


def _when_up(call):
    deadline = time.monotonic() + 20
    while True:
        try:
            return call()
        except httpx.ConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
