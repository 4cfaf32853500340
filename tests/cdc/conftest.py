"""The CDC contract suite's fixtures: one model on a real database, read by each engine through the same
seam (``detector_for``, as a run builds it), and a run of it that reports what it found.

Databases: DuckDB (a file per test), PostgreSQL (a schema per test), Redshift (the Redshift connector on the
local PostgreSQL, a schema per test: a profile, as tests/sources reads it), MariaDB (a database per test),
Snowflake (its emulator, a database per test), ClickHouse (the chdb engine behind its HTTP shim, a database
per test), and Databricks and BigQuery (their API fakes made writable, over DuckDB: a schema per test), each
with the Lightning engine's planner schema of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chdb
import duckdb
import psycopg
import pymysql
import pytest

from smartingest.cdc.base import OP, PK, ChangeCounts, ChangeDetector, HashSpec, Identity
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.engine.pipeline import detector_for
from smartingest.sources.registry import open_source
from tests.conftest import PG_DSN
from tests.sources.bigquery_fixtures import BigQueryFake, bigquery_settings
from tests.sources.chdb_http import ClickHouseHttpShim
from tests.sources.databricks_fixtures import DatabricksFake, databricks_settings
from tests.sources.fake_engine import FakeEngine
from tests.sources.snowflake_fixtures import Emulator, fresh_database

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}
SYNC = "sync-1"
SPEC = HashSpec("id", ("email", "plan"), "fingerprint-1", Identity("email", "email", ignore_case=True, trim=True))


class Database:
    """A database holding the model's table ``users``, and a planner schema for the Lightning engine."""

    kind: str
    planner_schema: str

    def execute(self, statement: str) -> None:
        raise NotImplementedError

    def source(self) -> dict[str, Any]:
        raise NotImplementedError

    def table(self, name: str = "users") -> str:
        return name

    def close(self) -> None:
        pass

    def create_users(self, rows: int, table: str = "users") -> None:
        self.execute(f"CREATE TABLE {self.table(table)} (id BIGINT, email VARCHAR(100), plan VARCHAR(20))")
        if rows:
            self.insert(table, [(i, f"u{i}@x.io", "free") for i in range(1, rows + 1)])

    def insert(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        self.execute(f"INSERT INTO {self.table(table)} VALUES {values}")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


class DuckDBDatabase(Database):
    kind = "duckdb"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "source.duckdb"
        self.planner_schema = "smartingest_planner"

    def execute(self, statement: str) -> None:
        with duckdb.connect(str(self.path)) as con:
            con.execute(statement)

    def source(self) -> dict[str, Any]:
        return {"type": "duckdb", "path": str(self.path)}


class PostgresDatabase(Database):
    kind = "postgres"

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:10]
        self.schema = f"cdc_{token}"
        self.planner_schema = f"cdc_planner_{token}"
        self.con = psycopg.connect(PG_DSN, autocommit=True)
        self.con.execute(f"CREATE SCHEMA {self.schema}")

    def execute(self, statement: str) -> None:
        self.con.execute(statement)  # type: ignore[arg-type]

    def table(self, name: str = "users") -> str:
        return f"{self.schema}.{name}"

    def source(self) -> dict[str, Any]:
        return {"type": "postgres", "host": "127.0.0.1", "database": "test", "user": "postgres"}

    def close(self) -> None:
        self.con.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.con.execute(f"DROP SCHEMA IF EXISTS {self.planner_schema} CASCADE")
        self.con.close()


class RedshiftDatabase(PostgresDatabase):
    """The Redshift connector (and the Lightning engine's Redshift SQL) on the local PostgreSQL: a profile."""

    kind = "redshift"

    def source(self) -> dict[str, Any]:
        return {
            "type": "redshift",
            "host": "127.0.0.1",
            "port": 5432,
            "database": "test",
            "user": "postgres",
            "sslmode": "disable",  # the test server has no certificate
        }


class MariaDBDatabase(Database):
    kind = "mariadb"

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:10]
        self.database = f"cdc_{token}"
        self.planner_schema = f"cdc_planner_{token}"
        self.con = pymysql.connect(**MARIADB, autocommit=True)
        self.execute(f"CREATE DATABASE {self.database}")

    def execute(self, statement: str) -> None:
        with self.con.cursor() as cur:
            cur.execute(statement)

    def table(self, name: str = "users") -> str:
        return f"{self.database}.{name}"

    def source(self) -> dict[str, Any]:
        return {"type": "mysql", "host": "127.0.0.1", "database": self.database, "user": "root"}

    def close(self) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {self.database}")
        self.execute(f"DROP DATABASE IF EXISTS {self.planner_schema}")
        self.con.close()


class SnowflakeDatabase(Database):
    """A database of its own on the Snowflake emulator (tests/sources/snowflake_fixtures.py): fakesnow, so
    DuckDB underneath, speaking Snowflake's SQL and wire protocol to the real driver."""

    kind = "snowflake"

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.database = fresh_database("CDC")
        self.planner_schema = "smartingest_planner"
        self.con = emulator.admin(self.database)

    def execute(self, statement: str) -> None:
        with contextlib.closing(self.con.cursor()) as cur:
            cur.execute(statement)

    def source(self) -> dict[str, Any]:
        return {"type": "snowflake", **self.emulator.settings(self.database)}

    def close(self) -> None:
        self.con.close()


class ClickHouseDatabase(Database):
    """A database of its own on the ClickHouse engine (chdb) behind its HTTP shim (tests/sources/chdb_http.py).
    Columns are Nullable unless declared otherwise (as the tests' other databases make them), and an UPDATE
    is ClickHouse's mutation, waited for."""

    kind = "clickhouse"

    def __init__(self, server: ClickHouseHttpShim) -> None:
        token = uuid.uuid4().hex[:10]
        self.server = server
        self.database = f"cdc_{token}"
        self.planner_schema = f"cdc_planner_{token}"
        self.execute(f"CREATE DATABASE {self.database}")

    def execute(self, statement: str) -> None:
        update = re.fullmatch(r"UPDATE (\S+) SET (.+?)(?: WHERE (.+))?", statement.strip(), re.DOTALL)
        if update is not None:
            statement = f"ALTER TABLE {update[1]} UPDATE {update[2]} WHERE {update[3] or '1'}"
        con = chdb.connect(f"{self.server.engine.path}?data_type_default_nullable=1&mutations_sync=2")
        try:
            con.query(statement)
        finally:
            con.close()

    def table(self, name: str = "users") -> str:
        return f"{self.database}.{name}"

    def source(self) -> dict[str, Any]:
        return {"type": "clickhouse", "host": "127.0.0.1", "port": self.server.port, "database": self.database}

    def close(self) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {self.database}")
        self.execute(f"DROP DATABASE IF EXISTS {self.planner_schema}")


class FakeEngineDatabase(Database):
    """A schema of its own in an API fake whose engine is DuckDB (tests/sources/fake_engine.py), laid out
    by the tests in DuckDB's SQL; the fake runs what the connector sends as sqlglot writes it from the
    database's dialect."""

    def __init__(self, engine: FakeEngine) -> None:
        token = uuid.uuid4().hex[:10]
        self.engine = engine
        self.schema = f"cdc_{token}"
        self.planner_schema = f"cdc_planner_{token}"
        self.execute(f"CREATE SCHEMA {self.schema}")

    def execute(self, statement: str) -> None:
        with self.engine._lock:
            self.engine._db.execute(statement)

    def table(self, name: str = "users") -> str:
        return f"{self.schema}.{name}"

    def close(self) -> None:
        self.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.execute(f"DROP SCHEMA IF EXISTS {self.planner_schema} CASCADE")


class DatabricksDatabase(FakeEngineDatabase):
    """The Databricks fake (tests/sources/databricks_fixtures.py): the Statement Execution API."""

    kind = "databricks"

    def __init__(self, fake: DatabricksFake) -> None:
        super().__init__(fake.engine)
        self.fake = fake

    def source(self) -> dict[str, Any]:
        return {"type": "databricks", **databricks_settings(self.fake, schema=self.schema)}


class BigQueryDatabase(FakeEngineDatabase):
    """The BigQuery fake (tests/sources/bigquery_fixtures.py): the REST and Storage Read APIs; a dataset is
    a schema of the engine."""

    kind = "bigquery"

    def __init__(self, fake: BigQueryFake) -> None:
        super().__init__(fake.engine)
        self.fake = fake

    def source(self) -> dict[str, Any]:
        return {"type": "bigquery", **bigquery_settings(self.fake, dataset=self.schema)}


@pytest.fixture(scope="session")
def cdc_bigquery() -> Iterator[BigQueryFake]:
    fake = BigQueryFake(writable=True)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def cdc_databricks() -> Iterator[DatabricksFake]:
    fake = DatabricksFake(writable=True)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def cdc_clickhouse() -> Iterator[ClickHouseHttpShim]:
    shim = ClickHouseHttpShim({"default": ""})
    try:
        yield shim
    finally:
        shim.close()


def open_database(kind: str, directory: Path, request: pytest.FixtureRequest | None = None) -> Database:
    if kind == "snowflake":
        assert request is not None
        return SnowflakeDatabase(request.getfixturevalue("snowflake_emulator"))
    if kind == "clickhouse":
        assert request is not None
        return ClickHouseDatabase(request.getfixturevalue("cdc_clickhouse"))
    if kind == "databricks":
        assert request is not None
        return DatabricksDatabase(request.getfixturevalue("cdc_databricks"))
    if kind == "bigquery":
        assert request is not None
        return BigQueryDatabase(request.getfixturevalue("cdc_bigquery"))
    if kind == "duckdb":
        return DuckDBDatabase(directory)
    if kind == "postgres":
        return PostgresDatabase()
    if kind == "redshift":
        return RedshiftDatabase()
    return MariaDBDatabase()


@dataclass
class Run:
    """What one run found and sent: the counts, the (key, operation) pairs handed out, the invalid rows."""

    counts: ChangeCounts
    rows: list[tuple[str, str]]
    invalid: list[tuple[str | None, str]]
    batches: list[Any]
    new_baseline: str | None = None
    remapped: str | None = None

    @property
    def ops(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for pk, op in self.rows:
            found.setdefault(op, []).append(pk)
        return {op: sorted(pks) for op, pks in found.items()}


class Harness:
    """A model on a database, synced by one engine (which a test may switch)."""

    def __init__(self, db: Database, engine: str, state_dir: Path) -> None:
        self.db = db
        self.engine = engine
        self.state_dir = state_dir
        self.model = ModelConfig(source="db", table=db.table(), primary_key="id")

    def config(self) -> SourceConfig:
        return SourceConfig.model_validate(
            {**self.db.source(), "engine": self.engine, "planner_schema": self.db.planner_schema}
        )

    def detector(self) -> ChangeDetector:
        return detector_for(self.config(), self.state_dir, source_name="db")

    def run(
        self,
        spec: HashSpec = SPEC,
        acknowledge: Callable[[str, str], bool] = lambda pk, op: True,
        full_resync: bool = False,
        commit: bool = True,
        model: ModelConfig | None = None,
        sync: str = SYNC,
    ) -> Run:
        """Plan, read every change, settle each as ``acknowledge`` says, and commit (unless told not to: a run
        that dies before its commit)."""
        source = open_source("db", self.config())
        change_set = self.detector().plan(sync, source, model or self.model, spec, full_resync)
        try:
            batches = list(change_set.changes(7))
            rows = [
                (pk, op)
                for batch in batches
                for pk, op in zip(batch.column(PK).to_pylist(), batch.column(OP).to_pylist(), strict=True)
            ]
            change_set.settle([pk for pk, _ in rows], [op for _, op in rows], [acknowledge(pk, op) for pk, op in rows])
            if commit:
                change_set.commit()
            invalid = sorted(((r.pk, r.reason) for r in change_set.invalid_rows()), key=lambda r: (r[0] or "", r[1]))
            return Run(change_set.counts, rows, invalid, batches, change_set.new_baseline, change_set.remapped)
        finally:
            change_set.close()


DATABASES = ["duckdb", "postgres", "redshift", "mariadb", "snowflake", "clickhouse", "databricks", "bigquery"]
EMULATED = ["snowflake", "clickhouse", "databricks", "bigquery"]  # an emulator, an embedded engine, two fakes


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = open_database(request.param, tmp_path, request)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture(params=["basic", "lightning"])
def harness(request: pytest.FixtureRequest, db: Database, tmp_path: Path) -> Harness:
    return Harness(db, request.param, tmp_path / "state")


# What the emulated databases add is their dialect's SQL and, but for Snowflake, merges without
# transactions: not the engines' logic again, which the real databases' runs cover. So the Basic engine's
# contract (it reads every source alike; tests/sources checks each read) runs on the real databases only,
# and where DuckDB runs the SQL underneath (Snowflake's emulator, the two API fakes), a few tests of the
# contract and the switch run; besides, the property test and a merge stopped before its commit run on
# them. ClickHouse, the real engine, runs everything.
_FAKES = ("snowflake", "databricks", "bigquery")
_ON_FAKES = {
    "test_counts_across_runs",
    "test_null_duplicate_and_shared_keys_are_invalid_with_their_reason",
    "test_a_checkpoint_makes_what_was_acknowledged_before_it_durable",
    "test_composite_keys",
    "test_a_round_trip_keeps_every_change_of_both_engines",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = item.callspec.params if isinstance(item, pytest.Function) and hasattr(item, "callspec") else {}
        kind = params.get("db")
        contract_or_switch = item.path.name in ("test_contract.py", "test_switch.py")
        if (kind in EMULATED and params.get("harness") == "basic") or (
            kind in _FAKES and contract_or_switch and getattr(item, "originalname", "") not in _ON_FAKES
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
