"""A Users sync from ClickHouse into the sandbox over real HTTP: the CDC and sync pipeline unchanged on the
ClickHouse connector (the ClickHouse engine, chdb, behind the loopback HTTP interface of
``tests/sources/chdb_http.py``), from a first run through changes and removals."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from smartingest import service
from tests.conftest import write_project
from tests.sources.chdb_http import ClickHouseHttpShim, engine
from tests.sources.clickhouse_fixtures import clickhouse_released

USER, PASSWORD = "sync_reader", "sync-Pa55"


@pytest.fixture
def clickhouse() -> Iterator[tuple[ClickHouseHttpShim, str]]:
    server = ClickHouseHttpShim({USER: PASSWORD})
    database = f"smartingest_sync_{secrets.token_hex(4)}"
    ch = engine()
    ch.query(f"CREATE DATABASE {database}")
    ch.query(
        f"CREATE TABLE {database}.customers (id Int64, email String, plan LowCardinality(String),"
        " ltv Decimal(10, 2)) ENGINE = MergeTree ORDER BY id"
    )
    rows = ", ".join(f"({i}, 'c{i}@example.com', '{('free', 'pro')[i % 2]}', {i}.25)" for i in range(1, 51))
    ch.query(f"INSERT INTO {database}.customers VALUES {rows}")
    try:
        yield server, database
    finally:
        server.close()
        ch.query(f"DROP DATABASE {database}")


def test_a_users_sync_from_clickhouse_sends_only_what_changed(tmp_path, sandbox, admin, clickhouse):
    server, database = clickhouse
    source = {
        "type": "clickhouse",
        "host": "127.0.0.1",
        "port": server.port,
        "database": database,
        "user": USER,
        "password": PASSWORD,
    }
    mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}, {"from": "ltv", "to": "ltv"}]
    project = write_project(tmp_path, sandbox.url, table="customers", source=source, mappings=mappings)
    ws = service.open_workspace(project, home=tmp_path / "home")

    first = service.run(ws, "customers_to_users")
    assert first.status == "succeeded", first.error
    assert first.counts["synced"] == 50
    assert admin.users()["c3@example.com"]["dataFields"] == {"plan": "pro", "ltv": 3.25}

    ch = engine()
    # Mutations run in the background unless asked to finish first.
    ch.query(f"ALTER TABLE {database}.customers UPDATE plan = 'team' WHERE id IN (1, 2) SETTINGS mutations_sync = 1")
    ch.query(f"ALTER TABLE {database}.customers DELETE WHERE id = 50 SETTINGS mutations_sync = 1")
    ch.query(f"INSERT INTO {database}.customers VALUES (51, 'c51@example.com', 'free', 51.25)")
    second = service.run(ws, "customers_to_users")
    assert second.status == "succeeded", second.error
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (1, 2, 1)
    assert second.counts["unchanged"] == 47
    assert admin.users()["c2@example.com"]["dataFields"]["plan"] == "team"
    assert "c51@example.com" in admin.users()
    assert clickhouse_released(server)  # every call of the runs closed the connections it opened
