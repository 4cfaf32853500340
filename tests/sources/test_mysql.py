"""MySQL and MariaDB specifics against the real MariaDB on 127.0.0.1:3306: how each column type is read,
the read-only UTC session, the query timeout, and errors that name what to fix."""

from __future__ import annotations

import datetime as dt
import secrets
import socket
from decimal import Decimal

import pyarrow as pa
import pymysql
import pytest

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.mysql import MySQLSource

from .conftest import MARIADB, mariadb_admin


def source(database: str, **overrides: object) -> MySQLSource:
    return MySQLSource(MySQLSource.Settings(**{**MARIADB, "database": database, **overrides}))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="my", sql=sql, primary_key=pk)


@pytest.fixture(scope="module")
def typed(mariadb_database: str) -> str:
    """A table of every kind of column the connector reads in its own way."""
    with mariadb_admin(mariadb_database) as admin, admin.cursor() as cur:
        cur.execute("SET time_zone = '+02:00'")  # the writer's zone: TIMESTAMP stores the instant
        cur.execute(
            "CREATE TABLE typed (id BIGINT UNSIGNED PRIMARY KEY, amount DECIMAL(12,2), tiny DECIMAL(5,0) UNSIGNED,"
            " wide DECIMAL(40,10), flag BOOLEAN, level TINYINT, bits BIT(10), span TIME, at TIMESTAMP NULL,"
            " local DATETIME(6), day DATE, doc JSON, blob_value BLOB, choice ENUM('a','b'), year_value YEAR)"
        )
        cur.execute(
            "INSERT INTO typed VALUES (18446744073709551615, -12.34, 99999, 123456789012345678901234567890.0123456789,"
            " 1, 7, b'1000000001', '-838:59:59', '2024-01-02 05:04:05', '2024-01-02 03:04:05.123456',"
            " '2024-01-02', '{\"a\": [1, 2]}', X'00FF', 'b', 2024), (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
            " NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        )
    return mariadb_database


def test_each_column_type_is_read_as_its_values_are(typed: str) -> None:
    src = source(typed)
    model = ModelConfig(source="my", table="typed", primary_key="id")
    schema = src.schema(model)
    assert dict(zip(schema.names, schema.types, strict=True)) == {
        "id": pa.uint64(),
        "amount": pa.decimal128(12, 2),
        "tiny": pa.decimal128(5, 0),
        "wide": pa.float64(),  # beyond decimal128's 38 digits, as for PostgreSQL
        "flag": pa.bool_(),
        "level": pa.int8(),
        "bits": pa.int64(),
        "span": pa.string(),  # TIME is a duration: -838:59:59 is no time of day
        "at": pa.timestamp("us", tz="UTC"),
        "local": pa.timestamp("us"),
        "day": pa.date32(),
        "doc": pa.string(),
        "blob_value": pa.large_binary(),
        "choice": pa.string(),
        "year_value": pa.int16(),
    }
    with src.read(model) as stream:
        rows = sorted(pa.Table.from_batches(list(stream), schema=stream.schema).to_pylist(), key=lambda r: r["id"])
    assert rows[0] == {name: None for name in schema.names} | {"id": 1}
    assert rows[1] | {"doc": None} == {
        "id": 18446744073709551615,
        "amount": Decimal("-12.34"),
        "tiny": Decimal("99999"),
        "wide": pytest.approx(1.2345678901234568e29),
        "flag": True,
        "level": 7,
        "bits": 513,
        "span": "-838:59:59",
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),  # written at +02:00, read as the UTC instant
        "local": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "day": dt.date(2024, 1, 2),
        "doc": None,
        "blob_value": b"\x00\xff",
        "choice": "b",
        "year_value": 2024,
    }
    assert rows[1]["doc"].replace(" ", "") == '{"a":[1,2]}'


def test_sessions_are_read_only(mariadb_database: str) -> None:
    with (
        source(mariadb_database)._session() as conn,
        conn.cursor() as cur,
        pytest.raises(pymysql.err.MySQLError, match="READ ONLY"),
    ):
        cur.execute("CREATE TABLE intruder (i INT)")


def test_a_query_over_its_timeout_is_stopped_and_says_which_setting(mariadb_database: str) -> None:
    with pytest.raises(SourceError, match="query_timeout_seconds") as err:
        source(mariadb_database, query_timeout_seconds=0.2).preview(query("SELECT SLEEP(5) AS id"))
    assert err.value.transient is False


def test_a_wrong_port_is_a_transient_connection_error(mariadb_database: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceConnectionError, match=f"cannot reach MySQL at 127.0.0.1:{port}") as err:
        source(mariadb_database, port=port).test_connection()
    assert err.value.transient is True


def test_a_wrong_password_is_an_auth_error_that_does_not_show_it(mariadb_database: str) -> None:
    src = source(mariadb_database, password="n0t-the-Pa55word")
    with pytest.raises(SourceAuthError, match="check user and password") as err:
        src.test_connection()
    assert err.value.transient is False
    assert "n0t-the-Pa55word" not in str(err.value) and "n0t-the-Pa55word" not in repr(src)


def test_an_unknown_database_says_so(mariadb_database: str) -> None:
    with pytest.raises(SourceConnectionError, match="has no database 'no_such_db'") as err:
        source("no_such_db").test_connection()
    assert err.value.transient is False


def test_a_missing_privilege_names_the_grant_that_fixes_it(mariadb_database: str) -> None:
    user, password = f"si_ro_{secrets.token_hex(3)}", secrets.token_hex(8)
    with mariadb_admin() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT SELECT ON `{mariadb_database}`.`people` TO '{user}'@'%'")
    try:
        src = source(mariadb_database, user=user, password=password)
        assert src.preview(ModelConfig(source="my", table="people", primary_key="id")).num_rows == 3
        with pytest.raises(SourceAuthError) as err:
            src.preview(ModelConfig(source="my", table="numbers", primary_key="id"))
        assert f"GRANT SELECT ON `{mariadb_database}`.* TO '{user}'" in str(err.value)
        assert "numbers" in str(err.value)
    finally:
        with mariadb_admin() as admin, admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def test_columns_named_twice_are_a_model_error(mariadb_database: str) -> None:
    with pytest.raises(ModelError, match="Duplicate column name 'balance'"):
        source(mariadb_database).preview(query("SELECT id, balance, balance FROM people"))
