"""The REST API over real HTTP (uvicorn on loopback): tokens, definitions with their secrets never
returned, a run triggered and watched to its end, its row outcomes paged, and errors with their status
and message. The metadata database holds the definitions; real PostgreSQL and the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from smartingest.repository.secrets import KEY_ENV
from tests.api_support import Api, define_sync
from tests.conftest import API_KEY, create_customers, stored_text

PASSWORD = "planted-pg-password-91c2"


@pytest.fixture
def api(tmp_path, monkeypatch, metadata_database) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)  # no project file: definitions live in the metadata database
    monkeypatch.delenv(KEY_ENV, raising=False)
    server = Api(tmp_path / "home")
    yield server
    server.stop()


def _define(api: Api, pg_schema: str, base_url: str) -> None:
    define_sync(api, f"select id, email, plan from {pg_schema}.customers", base_url, API_KEY, PASSWORD)


def test_every_route_but_healthz_needs_a_valid_token(api):
    assert httpx.get(f"{api.url}/healthz").json()["status"] == "ok"
    for headers in ({}, {"Authorization": "Bearer si_not-a-token"}, {"Authorization": "Basic abc"}):
        refused = httpx.get(f"{api.url}/api/v1/syncs", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"]["message"] == "send a valid API token: Authorization: Bearer TOKEN"
        assert refused.headers["www-authenticate"] == "Bearer"
    assert api.ok("GET", "/api/v1/syncs") == {}
    assert "/api/v1/syncs/{name}/runs" in httpx.get(f"{api.url}/openapi.json").json()["paths"]


def test_a_sync_defined_run_and_watched_through_the_api(pg, sandbox, admin, api, metadata_database):
    create_customers(pg, 4)
    pg.execute("UPDATE customers SET email = 'not-an-email' WHERE id = 3")
    _define(api, pg.schema, sandbox.url)

    shown = api.ok("GET", "/api/v1/sources/warehouse")
    assert shown["password"] == "********" and shown["id"] == "warehouse"
    assert api.ok("GET", "/api/v1/destinations/iterable")["api_key"] == "********"
    # Saved back as shown, the secrets stay what they were.
    api.ok("PUT", "/api/v1/destinations/iterable", json={**api.ok("GET", "/api/v1/destinations/iterable")})

    plan = api.ok("POST", "/api/v1/syncs/people/plan")
    assert plan["counts"]["added"] == 4 and plan["destination"]["ok"] is True
    row = api.ok("POST", "/api/v1/syncs/people/test-row", json={"primary_key": "2"})
    assert row["body"] == {"users": [{"email": "user2@example.com", "dataFields": {"plan": "team"}}]}

    queued = api.http.post("/api/v1/syncs/people/runs")
    assert queued.status_code == 202
    run_id = queued.json()["run_id"]
    deadline = time.monotonic() + 60
    while (run := api.ok("GET", f"/api/v1/runs/{run_id}"))["status"] in ("queued", "querying", "in_progress"):
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    assert (run["status"], run["counts"]["synced"], run["counts"]["rejected"]) == ("warning", 3, 1)
    assert run["trigger"] == "api" and len(admin.users()) == 3

    rejected = api.ok("GET", f"/api/v1/runs/{run_id}/rows", params={"status": "rejected"})
    assert rejected["total"] == 1 and rejected["rows"][0]["pk"] == "3"
    assert rejected["rows"][0]["code"] == "invalid_email"
    [summary] = api.ok("GET", "/api/v1/sync-summaries")
    assert (summary["name"], summary["last_run"]["id"], summary["snapshot_rows"]) == ("people", run_id, 3)
    metrics = api.http.get("/metrics").text
    assert 'smartingest_runs_total{status="warning"} 1.0' in metrics
    assert 'smartingest_rows_total{count="rejected"} 1.0' in metrics
    assert 'smartingest_iterable_requests_total{endpoint="users/bulkUpdate",outcome="200"}' in metrics
    assert "smartingest_iterable_request_seconds_bucket" in metrics
    assert httpx.get(f"{api.url}/metrics").status_code == 401
    assert [r["id"] for r in api.ok("GET", "/api/v1/runs", params={"sync": "people"})] == [run_id]

    # No answer, nothing the service wrote to its database, holds a secret.
    for path in ("/api/v1/sources", "/api/v1/destinations", f"/api/v1/runs/{run_id}", "/api/v1/sync-summaries"):
        text = api.http.get(path).text
        assert PASSWORD not in text and API_KEY not in text
    stored = stored_text(api.home, metadata_database)
    assert b"people" in stored  # the search reaches what was written
    assert PASSWORD.encode() not in stored and API_KEY.encode() not in stored


def test_errors_say_what_is_wrong_with_the_status_that_fits(pg, sandbox, api):
    create_customers(pg, 1)
    _define(api, pg.schema, sandbox.url)
    missing = api.http.get("/api/v1/syncs/nope")
    assert (missing.status_code, missing.json()["error"]["message"]) == (404, "no sync named 'nope'")
    bad = api.http.put("/api/v1/models/other", json={"source": "nowhere", "table": "t", "primary_key": "id"})
    assert bad.status_code == 422 and "models.other.source: no source named 'nowhere'" in bad.json()["error"]["message"]
    in_use = api.http.delete("/api/v1/models/customers")
    assert in_use.status_code == 409 and "used by syncs people" in in_use.json()["error"]["message"]
    masked = api.http.put("/api/v1/destinations/fresh", json={"api_key": "********", "base_url": sandbox.url})
    assert masked.status_code == 422 and "give its value" in masked.json()["error"]["message"]
    kind = api.http.get("/api/v1/widgets")
    assert kind.status_code == 422 and kind.json()["error"]["type"] == "RequestValidationError"
    assert api.http.get("/api/v1/runs/12345").status_code == 404
    api.ok("PUT", "/api/v1/destinations/live", json={"api_key": "k", "base_url": sandbox.url})  # production
    people = api.ok("GET", "/api/v1/syncs/people")
    for i in range(5):
        api.ok("PUT", f"/api/v1/syncs/live{i}", json={**people, "id": f"live{i}", "destination": "live"})
    over = api.http.put("/api/v1/syncs/live5", json={**people, "id": "live5", "destination": "live"})
    assert over.status_code == 409 and "may hold 5 syncs (sync_quota), and this would make 6" in over.text
    [quota] = api.ok("GET", "/api/v1/quota")
    assert (quota["organization"], quota["used"], quota["remaining"]) == ("default", 5, 0)
    for i in range(5):
        api.ok("DELETE", f"/api/v1/syncs/live{i}")
    assert api.http.delete("/api/v1/syncs/people").status_code == 204
    assert api.http.delete("/api/v1/models/customers").status_code == 204


def test_actions_test_connections_preview_a_model_and_switch_a_schedule(pg, sandbox, api):
    create_customers(pg, 3)
    _define(api, pg.schema, sandbox.url)
    assert api.ok("POST", "/api/v1/sources/warehouse/test") == {"ok": True, "error": None}
    down = {"type": "postgres", "host": "127.0.0.1", "port": 9, "database": "test", "user": "postgres"}
    api.ok("PUT", "/api/v1/sources/down", json=down)
    failed = api.ok("POST", "/api/v1/sources/down/test")
    assert failed["ok"] is False and failed["error"]["type"] == "SourceConnectionError"
    assert api.ok("POST", "/api/v1/destinations/iterable/test")["ok"] is True
    api.ok("PUT", "/api/v1/destinations/wrong", json={"api_key": "not-the-key", "base_url": sandbox.url})
    refused = api.ok("POST", "/api/v1/destinations/wrong/test")
    assert refused["ok"] is False and "API key" in refused["message"]

    preview = api.ok("GET", "/api/v1/models/customers/preview", params={"limit": 2})
    assert [c["name"] for c in preview["columns"]] == ["id", "email", "plan"]
    assert [r["email"] for r in preview["rows"]] == ["user1@example.com", "user2@example.com"]

    api.ok("PUT", "/api/v1/syncs/people", json={**api.ok("GET", "/api/v1/syncs/people"), "schedule": {"every": "1h"}})
    assert api.ok("POST", "/api/v1/syncs/people/disable") == {"enabled": False}
    [summary] = api.ok("GET", "/api/v1/sync-summaries")
    assert (summary["status"], summary["enabled"], summary["next_run"]) == ("Disabled", False, None)
    api.ok("POST", "/api/v1/syncs/people/enable")
    [summary] = api.ok("GET", "/api/v1/sync-summaries")
    assert summary["status"] == "Pending" and summary["next_run"] is not None
    assert api.http.post("/api/v1/syncs/nope/enable").status_code == 404


def test_a_run_cancelled_stops_sending_and_its_rows_go_next_run(pg, sandbox, admin, api):
    create_customers(pg, 400)
    _define(api, pg.schema, sandbox.url)
    sync = api.ok("GET", "/api/v1/syncs/people")
    api.ok("PUT", "/api/v1/syncs/people", json={**sync, "batch_size": 10})
    destination = api.ok("GET", "/api/v1/destinations/iterable")
    api.ok("PUT", "/api/v1/destinations/iterable", json={**destination, "max_concurrent_requests": 1})
    admin.faults(latency_ms=250)  # 40 requests, one at a time: about 10 s of sending
    run_id = api.ok("POST", "/api/v1/syncs/people/runs")["run_id"]
    deadline = time.monotonic() + 30
    while api.ok("GET", f"/api/v1/runs/{run_id}")["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert api.ok("POST", f"/api/v1/runs/{run_id}/cancel") == {"cancelling": True}
    while (run := api.ok("GET", f"/api/v1/runs/{run_id}"))["finished_at"] is None:
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    assert run["status"] == "failed" and run["error"].startswith("cancelled by a user")
    counts = run["counts"]
    assert 0 < counts["synced"] < 400 and counts["synced"] + counts["retried_next_run"] == 400
    assert api.ok("POST", f"/api/v1/runs/{run_id}/cancel") == {"cancelling": False}
    admin.faults()
    # What was acknowledged is committed; the rest is what the next run sends.
    assert api.ok("POST", "/api/v1/syncs/people/plan")["counts"]["added"] == counts["retried_next_run"]


def test_a_draft_sync_is_previewed_without_being_saved(pg, sandbox, api):
    create_customers(pg, 2)
    _define(api, pg.schema, sandbox.url)
    draft = {
        "type": "users",
        "model": "customers",
        "destination": "iterable",
        "mappings": [{"from": "email", "to": "email"}, {"template": "{{ plan | upcase }}", "to": "tier"}],
    }
    preview = api.ok("POST", "/api/v1/sync-drafts/editing/preview", json=draft)
    assert preview["body"] == {"users": [{"email": "user1@example.com", "dataFields": {"tier": "PRO"}}]}
    keyed = api.ok("POST", "/api/v1/sync-drafts/editing/preview", params={"primary_key": "2"}, json=draft)
    assert keyed["primary_key"] == "2"
    typo = api.http.post(
        "/api/v1/sync-drafts/editing/preview",
        json={**draft, "mappings": [{"from": "email", "to": "email"}, {"tmplate": "x"}]},
    )
    assert typo.status_code == 422 and "syncs.editing.mappings[1]" in typo.json()["error"]["message"]
    assert list(api.ok("GET", "/api/v1/syncs")) == ["people"]  # nothing saved
