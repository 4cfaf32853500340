"""A Users sync from MariaDB into the sandbox over real HTTP: the CDC and sync pipeline unchanged on the
MySQL connector (the real MariaDB on 127.0.0.1:3306), from a first run through changes and removals."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal

import pymysql
import pytest

from smartingest import service
from tests.conftest import write_project

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}


@pytest.fixture
def mariadb() -> Iterator[tuple[str, pymysql.cursors.Cursor]]:
    database = f"smartingest_sync_{secrets.token_hex(4)}"
    admin = pymysql.connect(**MARIADB, autocommit=True)
    cur = admin.cursor()
    cur.execute(f"CREATE DATABASE `{database}`")
    cur.execute(f"USE `{database}`")
    cur.execute(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, email VARCHAR(200), plan VARCHAR(20), ltv DECIMAL(10,2))"
    )
    cur.executemany(
        "INSERT INTO customers VALUES (%s, %s, %s, %s)",
        [(i, f"m{i}@example.com", ("free", "pro")[i % 2], Decimal(i) + Decimal("0.25")) for i in range(1, 51)],
    )
    try:
        yield database, cur
    finally:
        cur.execute(f"DROP DATABASE `{database}`")
        admin.close()


def test_a_users_sync_from_mariadb_sends_only_what_changed(tmp_path, sandbox, admin, mariadb):
    database, cur = mariadb
    source = {"type": "mysql", **MARIADB, "database": database}
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
