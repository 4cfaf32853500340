"""Iterable misbehaving: 429 and 5xx bursts, dropped connections, an outage, a wrong API key."""

from __future__ import annotations

import pytest

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers

# Faults aimed at delivery: the run's field-type check (getFields) goes through untouched.
BULK_UPDATE = "POST /api/users/bulkUpdate"


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_status_bursts_slow_the_run_but_lose_nothing(pg, sandbox, admin: SandboxAdmin, workspace_factory, status):
    create_customers(pg, 300)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    admin.faults(status_burst={"count": 4, "status": status, "retry_after": 0}, endpoint=BULK_UPDATE)
    result = service.run(ws, "customers_to_users")
    assert result.status == "succeeded", result.error
    assert result.counts["synced"] == 300
    assert len(admin.users()) == 300
    assert admin.requests(outcome=str(status)) == 4
    assert result.delivery["retries"] == 4
    assert result.delivery["throttled" if status == 429 else "server_errors"] == 4
    assert service.get_run(ws, result.run_id).delivery == result.delivery


def test_random_server_errors_lose_nothing(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    create_customers(pg, 1000)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    admin.faults(error_rate=0.3, seed=11)
    result = service.run(ws, "customers_to_users")
    assert result.status == "succeeded", result.error
    assert result.counts["synced"] == 1000
    assert len(admin.users()) == 1000
    assert admin.requests(outcome="500") >= 1


def test_dropped_connections_are_retried(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 200)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    admin.faults(drop_next=2, drop_rate=0.1, seed=3, endpoint=BULK_UPDATE)
    result = service.run(ws, "customers_to_users")
    assert result.status == "succeeded", result.error
    assert result.counts["synced"] == 200
    assert len(admin.users()) == 200
    assert admin.requests(outcome="dropped") >= 2
    assert result.delivery["no_response"] == admin.requests(outcome="dropped")


def test_outage_fails_the_run_and_the_next_run_sends_everything_left(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 300)
    ws = workspace_factory(sandbox.url, sql=_sql(pg), destination={"max_attempts": 2})
    admin.faults(status_burst={"count": 10_000, "status": 503})
    failed = service.run(ws, "customers_to_users")
    assert failed.status == "failed"
    assert "Iterable kept failing" in (failed.error or "")
    assert failed.counts["retried_next_run"] == 300
    assert failed.counts["synced"] == 0
    retry_rows = service.run_rows(ws, failed.run_id, status="retry", limit=1000)
    assert len(retry_rows) == 300
    assert all("503" in (r.reason or "") for r in retry_rows)

    admin.faults()  # Iterable is back
    recovered = service.run(ws, "customers_to_users")
    assert recovered.status == "succeeded"
    assert recovered.counts["added"] == 300
    assert len(admin.users()) == 300


def test_wrong_api_key_fails_the_run_with_a_clear_error(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 10)
    ws = workspace_factory(sandbox.url, sql=_sql(pg), destination={"api_key": "wrong-key"})
    result = service.run(ws, "customers_to_users")
    assert result.status == "failed"
    assert "refused the API key" in (result.error or "")
    assert result.counts["retried_next_run"] == 10
    assert admin.users() == {}


def test_unreachable_iterable_fails_with_the_address(pg, workspace_factory):
    create_customers(pg, 5)
    ws = workspace_factory("http://127.0.0.1:9", sql=_sql(pg), destination={"max_attempts": 2})
    result = service.run(ws, "customers_to_users")
    assert result.status == "failed"
    assert "127.0.0.1:9" in (result.error or "")
    assert result.counts["retried_next_run"] == 5
