"""Fixtures for the source connector tests: the same small dataset in PostgreSQL (read also as Redshift), SQLite,
DuckDB, MariaDB, Snowflake, ClickHouse (its fixtures in ``clickhouse_fixtures``), the fakes of Trino,
Firebolt, Databricks, Athena and BigQuery over FakeEngine (``trino_fixtures``, ``firebolt_fixtures``,
``databricks_fixtures``, ``athena_fixtures``, ``bigquery_fixtures``), and the fakes of the SQL Server, Oracle
and Teradata drivers over FakeEngine (``driver_fixtures``).

PostgreSQL is the real server at 127.0.0.1:5432 (user postgres, trust auth, database ``test``); every session
works in its own schema ``smartingest_src_<random>``, dropped at the end. SQLite and DuckDB use temp files.
Snowflake is the fakesnow emulator, started by the tests (``snowflake_fixtures``, a plugin of the suite).
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pymysql
import pytest

from smartingest.sources.base import Source
from smartingest.sources.duckdb import DuckDBSource
from smartingest.sources.mysql import MySQLSource, PlanetScaleSource, SingleStoreSource
from smartingest.sources.postgres import PostgresSource
from smartingest.sources.redshift import RedshiftSource
from smartingest.sources.snowflake import SnowflakeSource
from smartingest.sources.sqlite import SqliteSource

from .athena_fixtures import athena_case, athena_fake, athena_server, moto_s3  # noqa: F401
from .bigquery_fixtures import bigquery_case, bigquery_fake, bigquery_server  # noqa: F401
from .clickhouse_fixtures import clickhouse_case, clickhouse_database, clickhouse_server  # noqa: F401
from .databricks_fixtures import databricks_case, databricks_fake, databricks_server  # noqa: F401
from .firebolt_fixtures import firebolt_api, firebolt_case, firebolt_network  # noqa: F401
from .loopback import released
from .snowflake_fixtures import Emulator, fresh_database, lay_out_dataset, snowflake_released
from .sshd import SSHD, Bastion, running_sshd
from .trino_fixtures import trino_case, trino_coordinator  # noqa: F401

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
UTC = dt.UTC
NUMBERS_ROWS = 5000

# The people rows every connector serves: (id, name, balance, score, active, born, updated_at, attrs JSON).
PEOPLE = [
    (
        1,
        "Ada",
        "12.34",
        1.5,
        True,
        dt.date(2024, 1, 2),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        '{"plan": "pro"}',
    ),
    (2, None, None, None, False, None, None, None),
    (3, "Zoë", "-0.50", 2.25, None, dt.date(1999, 12, 31), dt.datetime(2023, 6, 1, 12, tzinfo=UTC), '{"tags": [1, 2]}'),
]
COLUMNS = ["id", "name", "balance", "score", "active", "born", "updated_at", "attrs"]


@dataclass
class Case:
    """One connector serving the dataset, and what the contract expects of it."""

    name: str
    source: Source
    schema_name: str  # qualifier for schema-qualified table names
    types: dict[str, pa.DataType]
    rows: list[dict[str, Any]]  # the people rows as read() must return them (attrs compared as parsed JSON)
    # True when no connection/lock of the source is held any more; ``wait`` allows a server a moment to notice.
    is_released: Callable[..., bool]
    settings: dict[str, Any] = field(default_factory=dict)  # as in a project file, for the registry
    # What refuses a CTE that writes (WITH gone AS (DELETE ... RETURNING id)): the check before the query runs,
    # or, where the database's SQL has no such CTE (Snowflake's), the database's parser.
    writing_cte_refusal: str = "would write"
    # What ``is_released`` observes, where it is less than "no session of the source's is open on the server".
    released_means: str = "no session of the source's is open on the server"
    # The value rules (docs/values.md) at the source: a query in the database's SQL and what each of its
    # columns must read as (an exact decimal, the calendar's edge dates, NaN, nesting); every case in REAL has
    # them (a fake's values would be its engine's, not the database's).
    values: tuple[str, dict[str, Any]] | None = None


# ------------------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh schema holding people, people_view and numbers; dropped after the session."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - only without the test server
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not available: {exc}")
    schema = f"smartingest_src_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'SET search_path = "{schema}"')
        admin.execute(
            "CREATE TABLE people (id bigint PRIMARY KEY, name text, balance numeric(12,2), score double precision,"
            " active boolean, born date, updated_at timestamptz, attrs jsonb)"
        )
        with admin.cursor() as cur:
            cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", PEOPLE)
        admin.execute("CREATE VIEW people_view AS SELECT id, name, balance FROM people")
        admin.execute(
            f"CREATE TABLE numbers AS SELECT g::int AS id, 'n' || g AS label FROM generate_series(1, {NUMBERS_ROWS}) g"
        )
        try:
            yield schema
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_settings(schema: str, **overrides: Any) -> dict[str, Any]:
    return {"database": "test", "user": "postgres", "search_path": [schema]} | overrides


def pg_sessions(application_name: str) -> int:
    """How many server sessions use this application_name (our connector sets it from its settings)."""
    with psycopg.connect(PG_DSN) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return row.fetchone()[0]  # type: ignore[index]


def _pg_released(application_name: str, wait: float = 2.0) -> bool:
    # A backend leaves pg_stat_activity a moment after the client closes; allow it that moment.
    return released(lambda: pg_sessions(application_name), wait)


NAN = float("nan")
NESTED: Any = [[1, 2], [3, 4]]  # as a list, or as JSON text holding it
EXACT = Decimal("12345678901234567890.123456789")  # 29 digits: a double would round it
EDGE_VALUES: dict[str, Any] = {"exact": EXACT, "last_day": dt.date(9999, 12, 31), "first_day": dt.date(1, 1, 1)}
PG_VALUES = (
    "SELECT 1 AS id, 12345678901234567890.123456789::numeric(29,9) AS exact, DATE '9999-12-31' AS last_day,"
    " DATE '0001-01-01' AS first_day, 'NaN'::float8 AS nan"
)

PG_TYPES = {
    "id": pa.int64(),
    "name": pa.string(),
    "balance": pa.decimal128(12, 2),
    "score": pa.float64(),
    "active": pa.bool_(),
    "born": pa.date32(),
    "updated_at": pa.timestamp("us", tz="UTC"),
    "attrs": pa.string(),
}


@pytest.fixture
def postgres_case(pg_schema: str) -> Case:
    app = f"si-test-{secrets.token_hex(4)}"
    settings = pg_settings(pg_schema, application_name=app)
    return Case(
        name="postgres",
        source=PostgresSource(PostgresSource.Settings(**settings)),
        schema_name=pg_schema,
        types=PG_TYPES,
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: _pg_released(app, wait),
        settings=settings,
        values=(
            PG_VALUES + ", ARRAY[ARRAY[1,2],ARRAY[3,4]] AS nested",
            EDGE_VALUES | {"nan": NAN, "nested": NESTED},
        ),
    )


@pytest.fixture
def redshift_case(pg_schema: str) -> Case:
    """Redshift's connector over the PostgreSQL protocol, against the real PostgreSQL (see docs/sources.md for
    what only a Redshift cluster would show)."""
    app = f"si-test-{secrets.token_hex(4)}"
    settings = {
        "host": "127.0.0.1",
        "port": 5432,
        "database": "test",
        "user": "postgres",
        "sslmode": "disable",  # the test server has no certificate
        "search_path": [pg_schema],
        "application_name": app,
    }
    return Case(
        name="redshift",
        source=RedshiftSource(RedshiftSource.Settings(**settings)),
        schema_name=pg_schema,
        types=PG_TYPES,
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: _pg_released(app, wait),
        settings=settings,
        values=(PG_VALUES, EDGE_VALUES | {"nan": NAN}),  # Redshift nests in SUPER, which PostgreSQL has not
    )


# ----------------------------------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "source.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, balance NUMERIC(12,2), score REAL, active BOOLEAN,"
        " born DATE, updated_at TIMESTAMP, attrs JSON)"
    )
    conn.executemany(
        "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                n,
                None if b is None else float(b),
                s,
                None if a is None else int(a),
                d and d.isoformat(),
                u and u.isoformat(),
                j,
            )
            for i, n, b, s, a, d, u, j in PEOPLE
        ],
    )
    conn.execute("CREATE VIEW people_view AS SELECT id, name, balance FROM people")
    conn.execute("CREATE TABLE numbers (id INTEGER PRIMARY KEY, label TEXT)")
    conn.executemany("INSERT INTO numbers VALUES (?, ?)", [(i, f"n{i}") for i in range(1, NUMBERS_ROWS + 1)])
    conn.commit()
    conn.close()
    return path


def _sqlite_released(path: Path) -> bool:
    # An open read statement holds SQLite's SHARED lock, which makes an exclusive lock fail at once.
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN EXCLUSIVE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


@pytest.fixture
def sqlite_case(sqlite_path: Path) -> Case:
    settings = {"path": str(sqlite_path)}
    return Case(
        name="sqlite",
        source=SqliteSource(SqliteSource.Settings(**settings)),
        schema_name="main",
        types={
            "id": pa.int64(),
            "name": pa.string(),
            "balance": pa.float64(),  # SQLite stores NUMERIC(12,2) as REAL/INTEGER: no exact decimals to keep
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.string(),  # SQLite has no date type: ISO text as stored
            "updated_at": pa.string(),
            "attrs": pa.string(),
        },
        rows=_expected_rows(decimal=False, native_dates=False),
        is_released=lambda wait=0: _sqlite_released(sqlite_path),
        settings=settings,
        # No decimal, date or NaN in SQLite (NaN is stored as NULL): dates are text, nesting JSON text.
        values=(
            "SELECT 1 AS id, '9999-12-31' AS last_day, json_array(json_array(1, 2), json_array(3, 4)) AS nested",
            {"last_day": "9999-12-31", "nested": NESTED},
        ),
    )


# ----------------------------------------------------------------------------------------------------- DuckDB


@pytest.fixture(scope="session")
def duckdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("duckdb") / "source.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR, balance DECIMAL(12,2), score DOUBLE,"
        " active BOOLEAN, born DATE, updated_at TIMESTAMPTZ, attrs JSON)"
    )
    conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [list(r) for r in PEOPLE])
    conn.execute("CREATE VIEW people_view AS SELECT id, name, balance FROM people")
    conn.execute(
        f"CREATE TABLE numbers AS SELECT i::INTEGER AS id, 'n' || i AS label FROM range(1, {NUMBERS_ROWS + 1}) r(i)"
    )
    conn.close()
    return path


def _duckdb_released(path: Path) -> bool:
    # In one process DuckDB refuses a read-write connection while a read-only one to the same file is open.
    try:
        duckdb.connect(str(path)).close()
        return True
    except duckdb.ConnectionException:
        return False


@pytest.fixture
def duckdb_case(duckdb_path: Path) -> Case:
    settings = {"path": str(duckdb_path)}
    return Case(
        name="duckdb",
        source=DuckDBSource(DuckDBSource.Settings(**settings)),
        schema_name="main",
        types={
            "id": pa.int64(),
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),
            "attrs": pa.string(),
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=0: _duckdb_released(duckdb_path),
        settings=settings,
        values=(
            "SELECT 1 AS id, 12345678901234567890.123456789::DECIMAL(29,9) AS exact, DATE '9999-12-31' AS last_day,"
            " DATE '0001-01-01' AS first_day, 'NaN'::DOUBLE AS nan, [[1, 2], [3, 4]] AS nested, {'a': [1]} AS obj",
            EDGE_VALUES | {"nan": NAN, "nested": NESTED, "obj": {"a": [1]}},
        ),
    )


# ------------------------------------------------------------------------------------------------- MariaDB

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}  # the server the machine runs, root without a password


def mariadb_admin(database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(**MARIADB, database=database, autocommit=True)


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """A fresh database holding people, people_view and numbers; dropped after the session."""
    database = f"smartingest_src_{secrets.token_hex(4)}"
    with mariadb_admin() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
    # Closed before the tests run: the release probe counts every connection that uses the database.
    with mariadb_admin(database) as admin, admin.cursor() as cur:
        cur.execute(
            "CREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR(100), balance DECIMAL(12,2), score DOUBLE,"
            " active BOOLEAN, born DATE, updated_at TIMESTAMP(6) NULL, attrs JSON)"
        )
        cur.execute("SET time_zone = '+00:00'")
        cur.executemany(
            "INSERT INTO people VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(i, n, b, s, a, d, u and u.replace(tzinfo=None), j) for i, n, b, s, a, d, u, j in PEOPLE],
        )
        cur.execute("CREATE VIEW people_view AS SELECT id, name, balance FROM people")
        cur.execute(f"CREATE TABLE numbers AS SELECT seq AS id, CONCAT('n', seq) AS label FROM seq_1_to_{NUMBERS_ROWS}")
    try:
        yield database
    finally:
        with mariadb_admin() as admin, admin.cursor() as cur:
            cur.execute(f"DROP DATABASE `{database}`")


def _mariadb_released(database: str, wait: float = 2.0) -> bool:
    # The server lists each connection with its current database; ours are the only ones using this one.
    def sessions() -> int:
        with mariadb_admin() as admin, admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.processlist WHERE db = %s", (database,))
            return int(cur.fetchone()[0])

    return released(sessions, wait)


@pytest.fixture
def mysql_case(mariadb_database: str) -> Case:
    settings = {**MARIADB, "database": mariadb_database}
    return Case(
        name="mysql",
        source=MySQLSource(MySQLSource.Settings(**settings)),
        schema_name=mariadb_database,
        types={
            "id": pa.int64(),
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),  # BOOLEAN is TINYINT(1)
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),
            "attrs": pa.string(),  # MariaDB's JSON is LONGTEXT: JSON text the server does not mark as such
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: _mariadb_released(mariadb_database, wait),
        settings=settings,
        # No NaN in MySQL's DOUBLE; nesting is JSON.
        values=(
            "SELECT 1 AS id, CAST('12345678901234567890.123456789' AS DECIMAL(29,9)) AS exact,"
            " DATE'9999-12-31' AS last_day, DATE'0001-01-01' AS first_day,"
            " JSON_ARRAY(JSON_ARRAY(1, 2), JSON_ARRAY(3, 4)) AS nested",
            EDGE_VALUES | {"nested": NESTED},
        ),
    )


# ------------------------------------------------------------------------------------------------- Snowflake


@pytest.fixture(scope="session")
def snowflake_database(snowflake_emulator: Emulator) -> str:
    """A database of the emulator holding people, people_view and numbers (the emulator ends with the session)."""
    database = fresh_database("smartingest_src")
    lay_out_dataset(snowflake_emulator, database, PEOPLE, NUMBERS_ROWS)
    return database


@pytest.fixture
def snowflake_case(snowflake_emulator: Emulator, snowflake_database: str) -> Case:
    settings = snowflake_emulator.settings(snowflake_database)
    return Case(
        name="snowflake",
        source=SnowflakeSource(SnowflakeSource.Settings(**settings)),
        schema_name="public",  # PUBLIC, as the connector shows a name Snowflake stores in upper case
        types={
            "id": pa.int64(),  # NUMBER(38, 0)
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),  # TIMESTAMP_TZ
            "attrs": pa.string(),  # VARIANT, JSON text
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: snowflake_released(snowflake_database, wait),
        settings=settings,
        writing_cte_refusal="syntax error",
        values=(
            "SELECT 1 AS id, 12345678901234567890.123456789::NUMBER(29,9) AS exact, '9999-12-31'::DATE AS last_day,"
            " '0001-01-01'::DATE AS first_day, 'NaN'::FLOAT AS nan,"
            " PARSE_JSON('[[1, 2], [3, 4]]') AS nested",
            EDGE_VALUES | {"nan": NAN, "nested": NESTED},
        ),
    )


@pytest.fixture
def planetscale_case(mysql_case: Case) -> Case:
    """PlanetScale's profile of the connector against MariaDB: TLS off (the test server has none) and no
    Vitess session statement (MariaDB has no ``workload``); test_mysql_profiles.py checks what only Vitess
    would run."""
    settings = mysql_case.settings | {"ssl_mode": "disabled", "session_statements": []}
    return replace(
        mysql_case,
        name="planetscale",
        source=PlanetScaleSource(PlanetScaleSource.Settings(**settings)),
        settings=settings,
    )


@pytest.fixture
def singlestore_case(mysql_case: Case) -> Case:
    """SingleStore's profile of the connector against MariaDB: no read-only session, TIMESTAMP read as stored
    (a wall-clock time, as DATETIME: the test server's zone is UTC, so the values are the UTC ones)."""
    settings = mysql_case.settings
    rows = [r | {"updated_at": r["updated_at"] and r["updated_at"].replace(tzinfo=None)} for r in mysql_case.rows]
    return replace(
        mysql_case,
        name="singlestore",
        source=SingleStoreSource(SingleStoreSource.Settings(**settings)),
        types=mysql_case.types | {"updated_at": pa.timestamp("us")},
        rows=rows,
    )


def _expected_rows(*, decimal: bool, native_dates: bool) -> list[dict[str, Any]]:
    rows = []
    for values in PEOPLE:
        row = dict(zip(COLUMNS, values, strict=True))
        if row["balance"] is not None:
            row["balance"] = Decimal(row["balance"]) if decimal else float(row["balance"])
        if not native_dates:
            row["born"] = row["born"] and row["born"].isoformat()
            row["updated_at"] = row["updated_at"] and row["updated_at"].isoformat()
        rows.append(row)
    return rows


# The connectors that really run here (a server, a file, an emulator, a real engine behind a test server),
# and those tested against a fake at their driver's or HTTP boundary (contract only).
REAL = ["postgres", "sqlite", "duckdb", "mysql", "planetscale", "singlestore", "redshift", "snowflake", "clickhouse"]
FAKED = ["trino", "firebolt", "sqlserver", "synapse", "oracle", "teradata", "databricks", "athena", "bigquery"]


@pytest.fixture(params=REAL + FAKED)
def case(request: pytest.FixtureRequest) -> Case:
    """Each contract test runs once per connector."""
    return request.getfixturevalue(f"{request.param}_case")


@pytest.fixture(params=REAL)
def real_case(request: pytest.FixtureRequest) -> Case:
    """A connector that really runs here: its values are the database's own."""
    return request.getfixturevalue(f"{request.param}_case")


# ----------------------------------------------------------------------------------------------- SSH bastion


@pytest.fixture(scope="session")
def bastion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    """A real OpenSSH server on loopback that tunnels may go through."""
    if not Path(SSHD).exists():  # pragma: no cover - make test installs it
        pytest.fail(f"{SSHD} is missing: install Debian's openssh-server (make test does)")
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def tunnel_settings(bastion: Bastion) -> dict[str, Any]:
    return {
        "ssh_host": bastion.host,
        "ssh_port": bastion.port,
        "ssh_user": bastion.user,
        "ssh_private_key_path": str(bastion.key_path),
        "ssh_host_key": bastion.host_key,
    }


def tunnelled(case: Case, bastion: Bastion) -> Case:
    """The same case, its connections going through the bastion."""
    settings = case.settings | tunnel_settings(bastion)
    source = type(case.source)(type(case.source).Settings(**settings))  # type: ignore[attr-defined]
    return Case(case.name, source, case.schema_name, case.types, case.rows, case.is_released, settings)


# The fakes at the driver boundary run FakeEngine, which reads the dataset above: imported once it is defined.
from .driver_fixtures import *  # noqa: E402, F403
