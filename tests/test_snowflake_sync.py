"""A Users sync from Snowflake into the sandbox over real HTTP: the CDC and sync pipeline unchanged on the
Snowflake connector (the fakesnow emulator in server mode, through the real snowflake-connector-python), from
a first run through changes and removals."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from smartingest import service
from tests.conftest import write_project
from tests.sources.snowflake_fixtures import Emulator, admin_cursor, fresh_database


@pytest.fixture
def customers(snowflake_emulator: Emulator) -> Iterator[tuple[str, Any]]:
    database = fresh_database("smartingest_sync")
    with admin_cursor(snowflake_emulator, database) as cur:
        cur.execute("CREATE TABLE customers (id NUMBER(38, 0), email TEXT, plan TEXT, ltv NUMBER(10, 2))")
        rows = [
            f"({i}, 'm{i}@example.com', '{('free', 'pro')[i % 2]}', {Decimal(i) + Decimal('0.25')})"
            for i in range(1, 51)
        ]
        cur.execute("INSERT INTO customers VALUES " + ", ".join(rows))
        yield database, cur


def test_a_users_sync_from_snowflake_sends_only_what_changed(tmp_path, sandbox, admin, snowflake_emulator, customers):
    database, cur = customers
    # Unquoted names, stored as CUSTOMERS, EMAIL...: the project names them as they are written.
    source = {"type": "snowflake", **snowflake_emulator.settings(database)}
    mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}, {"from": "ltv", "to": "ltv"}]
    project = write_project(tmp_path, sandbox.url, table="customers", source=source, mappings=mappings)
    ws = service.open_workspace(project, home=tmp_path / "home")

    first = service.run(ws, "customers_to_users")
    assert first.status == "succeeded", first.error
    assert first.counts["synced"] == 50
    assert admin.users()["m3@example.com"]["dataFields"] == {"plan": "pro", "ltv": 3.25}

    cur.execute("UPDATE customers SET plan = 'team' WHERE id IN (1, 2)")
    cur.execute("DELETE FROM customers WHERE id = 50")
    cur.execute("INSERT INTO customers VALUES (51, 'm51@example.com', 'free', 51.25)")
    second = service.run(ws, "customers_to_users")
    assert second.status == "succeeded", second.error
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (1, 2, 1)
    assert second.counts["unchanged"] == 47
    assert admin.users()["m2@example.com"]["dataFields"]["plan"] == "team"
    assert "m51@example.com" in admin.users()
