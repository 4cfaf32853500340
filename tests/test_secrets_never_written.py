"""A planted password and API key are never found in anything smartingest writes: its logs (every logger
at DEBUG), its metadata database and state files, its run records and errors, its API answers. Real
PostgreSQL and the sandbox (which refuses the planted key, so errors are made); definitions in the
metadata database."""

from __future__ import annotations

import logging

import httpx
import pytest

from smartingest import service
from tests.api_support import SOURCE, Api, define_sync
from tests.conftest import stored_text

PASSWORD = "planted-password-3e8d1"
API_KEY = "planted-api-key-77f0c"


@pytest.fixture
def api(tmp_path, monkeypatch, metadata_database):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMARTINGEST_SECRET_KEY", raising=False)
    server = Api(tmp_path / "home")
    yield server
    server.stop()


def test_planted_secrets_are_never_written(pg, sandbox, api, caplog, metadata_database):
    caplog.set_level(logging.DEBUG)
    pg.execute("CREATE TABLE people AS SELECT 1 AS id, 'a@example.com' AS email")
    # The sandbox knows another key: every request with this one is refused.
    define_sync(api, f"select id, email from {pg.schema}.people", sandbox.url, API_KEY, PASSWORD, columns=())
    api.ok("PUT", "/api/v1/sources/unreachable", json={**SOURCE, "port": 9, "password": PASSWORD})

    answers = [
        api.http.post("/api/v1/sources/unreachable/test").text,
        api.http.post("/api/v1/destinations/iterable/test").text,
        api.http.post("/api/v1/syncs/people/plan").text,
        api.http.post("/api/v1/syncs/people/test-row", json={"primary_key": "1", "send": True}).text,
        api.http.get("/api/v1/sources").text,
        api.http.get("/api/v1/destinations/iterable").text,
    ]
    ws = service.open_workspace(home=api.home)
    run = service.run(ws, "people")
    assert run.status == "failed" and "refused the API key" in (run.error or "")
    answers += [api.http.get(f"/api/v1/runs/{run.run_id}").text, api.http.get("/metrics").text]
    text, _variables = service.export_project(ws)
    answers.append(text)

    written = b"".join(path.read_bytes() for path in api.home.rglob("*") if path.is_file())
    written += stored_text(api.home, metadata_database)
    assert b"people" in written  # the search reaches what was written
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (PASSWORD, API_KEY):
        assert secret not in logged, secret
        assert secret.encode() not in written, secret
        for answer in answers:
            assert secret not in answer, (secret, answer[:300])
    assert httpx.get(f"{api.url}/healthz").status_code == 200
