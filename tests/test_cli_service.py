"""The service's commands as a user runs them: `serve` answering over HTTP, `token create/list/revoke`
(a revoked token is refused), `runs cancel`. Real processes, real HTTP; definitions in the metadata
database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from tests.conftest import write_project


def test_serve_answers_with_tokens_made_and_revoked_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "SMARTINGEST_HOME": str(tmp_path / "home")}
    env.pop("SMARTINGEST_SECRET_KEY", None)
    env.pop("SMARTINGEST_DATABASE_URL", None)
    cli = [sys.executable, "-m", "smartingest"]
    token = subprocess.run([*cli, "token", "create", "ops"], env=env, capture_output=True, text=True, check=True)
    token_text = token.stdout.strip()
    assert token_text.startswith("si_")
    server = subprocess.Popen([*cli, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), line
        url = line.split()[2]
        assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
        headers = {"Authorization": f"Bearer {token_text}"}
        assert httpx.get(f"{url}/api/v1/sync-summaries", headers=headers, timeout=10).json() == []

        listed = subprocess.run([*cli, "token", "list", "--json"], env=env, capture_output=True, text=True, check=True)
        [entry] = json.loads(listed.stdout)
        assert entry["name"] == "ops" and entry["last_used_at"] is not None and token_text not in listed.stdout
        subprocess.run([*cli, "token", "revoke", "ops"], env=env, check=True, capture_output=True)
        assert httpx.get(f"{url}/api/v1/sync-summaries", headers=headers, timeout=10).status_code == 401
    finally:
        server.terminate()
        server.wait(10)


def test_runs_cancel_ends_a_queued_run(sandbox, tmp_path):
    project = write_project(tmp_path, sandbox.url)
    home = tmp_path / "home"
    run_id = service.enqueue_run(service.open_workspace(project, home=home), "customers_to_users")
    env = {"SMARTINGEST_HOME": str(home)}
    result = CliRunner().invoke(app, ["--project", str(project), "runs", "cancel", str(run_id)], env=env)
    assert result.exit_code == 0 and f"run #{run_id}: asked to stop" in result.output
    again = CliRunner().invoke(app, ["--project", str(project), "runs", "cancel", str(run_id)], env=env)
    assert f"run #{run_id}: already ended" in again.output
    record = service.get_run(service.open_workspace(project, home=home), run_id)
    assert record is not None and record.status == "failed"


def test_sync_quota_shows_what_counts_per_organization(sandbox, tmp_path):
    project = write_project(tmp_path, sandbox.url, destination={"environment": "production", "organization": "acme"})
    env = {"SMARTINGEST_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(app, ["--project", str(project), "sync", "quota"], env=env)
    assert result.exit_code == 0 and "acme" in result.output and "customers_to_users" in result.output
    as_json = CliRunner().invoke(app, ["--project", str(project), "sync", "quota", "--json"], env=env)
    [usage] = json.loads(as_json.output)
    assert (usage["organization"], usage["used"], usage["remaining"]) == ("acme", 1, 4)
