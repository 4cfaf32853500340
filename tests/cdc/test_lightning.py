"""What is the Lightning engine's own: the privileges it needs (and the GRANT that gives them), the tables
it keeps in the planner schema, and that it only ever reads the model."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import chdb
import psycopg
import pymysql
import pytest

from smartingest.cdc.lightning import LightningChangeSet
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.engine.pipeline import detector_for
from smartingest.errors import ConfigError, SourceAuthError, SourceConnectionError
from smartingest.sources.registry import open_source
from tests.cdc.conftest import (
    MARIADB,
    SPEC,
    SYNC,
    BigQueryDatabase,
    ClickHouseDatabase,
    Database,
    Harness,
    MariaDBDatabase,
    PostgresDatabase,
    RedshiftDatabase,
    SnowflakeDatabase,
)
from tests.conftest import PG_DSN
from tests.sources.snowflake_fixtures import Emulator


@pytest.mark.parametrize(
    ("make", "first_grant"),
    [
        (PostgresDatabase, 'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"'),
        (RedshiftDatabase, 'GRANT CREATE ON DATABASE "test" TO "{role}"'),
    ],
    ids=["postgres", "redshift"],
)
def test_the_grant_a_role_needs_is_named_and_the_run_works_once_it_has_it(tmp_path: Path, make, first_grant: str):
    db = make()
    role = f"cdc_reader_{uuid.uuid4().hex[:8]}"
    try:
        db.create_users(5)
        db.execute(f"CREATE ROLE {role} LOGIN")
        db.execute(f"GRANT USAGE ON SCHEMA {db.schema} TO {role}")
        db.execute(f"GRANT SELECT ON {db.table()} TO {role}")  # the model may only be read
        harness = Harness(db, "lightning", tmp_path / "state")
        harness.db.source = lambda: {**make.source(db), "user": role}  # type: ignore[method-assign]

        with pytest.raises(SourceAuthError) as missing:
            harness.run()
        assert first_grant.format(schema=db.planner_schema, role=role) in str(missing.value)
        assert "engine to basic" in str(missing.value)

        db.execute(f"CREATE SCHEMA {db.planner_schema}")  # there, but not the role's to write in
        with pytest.raises(SourceAuthError) as not_writable:
            harness.run()
        assert f'GRANT USAGE, CREATE ON SCHEMA "{db.planner_schema}" TO "{role}"' in str(not_writable.value)

        db.execute(f'GRANT USAGE, CREATE ON SCHEMA {db.planner_schema} TO "{role}"')
        assert harness.run().counts.added == 5
        db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id = 1")
        assert harness.run().ops == {"changed": ["1"]}
    finally:
        db.close()
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP OWNED BY {role}")
            con.execute(f"DROP ROLE IF EXISTS {role}")


def test_mariadb_names_the_grant_a_user_needs(tmp_path: Path):
    db = MariaDBDatabase()
    user = f"cdc_{uuid.uuid4().hex[:8]}"
    try:
        db.create_users(3)
        db.execute(f"CREATE USER '{user}'@'%'")
        db.execute(f"GRANT SELECT ON {db.database}.* TO '{user}'@'%'")
        harness = Harness(db, "lightning", tmp_path / "state")
        harness.db.source = lambda: {"type": "mysql", "host": "127.0.0.1", "database": db.database, "user": user}  # type: ignore[method-assign]

        with pytest.raises(SourceAuthError) as missing:
            harness.run()
        assert f"GRANT ALL PRIVILEGES ON `{db.planner_schema}`.* TO '{user}'@'" in str(missing.value)

        db.execute(f"GRANT ALL PRIVILEGES ON {db.planner_schema}.* TO '{user}'@'%'")
        assert harness.run().counts.added == 3
    finally:
        db.close()
        with pymysql.connect(**MARIADB, autocommit=True) as con, con.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_the_planner_schema_holds_a_snapshot_and_a_row_per_sync(tmp_path: Path):
    db = PostgresDatabase()
    try:
        db.create_users(4)
        Harness(db, "lightning", tmp_path / "state").run()
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            tables = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (db.planner_schema,)
                )
            }
            assert "smartingest_syncs" in tables
            snapshot = next(t for t in tables if t.startswith("snapshot_"))
            assert not any(t.startswith("plan_") for t in tables)  # the plan is dropped once merged
            assert con.execute(f"SELECT count(*) FROM {db.planner_schema}.{snapshot}").fetchone() == (4,)
            row = con.execute(f"SELECT sync_key, hash_scheme FROM {db.planner_schema}.smartingest_syncs").fetchone()
            assert row is not None and row[0] == SYNC and "hash_record_extended" in row[1]
    finally:
        db.close()


def test_snowflake_keeps_its_tables_under_the_names_snowflake_stores_unquoted_ones_as(
    tmp_path: Path, snowflake_emulator: Emulator
):
    db = SnowflakeDatabase(snowflake_emulator)
    try:
        db.create_users(3)
        harness = Harness(db, "lightning", tmp_path / "state")
        harness.model = ModelConfig(source="db", table="users", primary_key="id")  # resolved in PUBLIC
        assert harness.run().counts.added == 3  # creating the planner schema left PUBLIC the current schema
        with contextlib.closing(db.con.cursor()) as cur:
            cur.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'SMARTINGEST_PLANNER' ORDER BY table_name, ordinal_position"
            )
            columns = cur.fetchall()
        # The names written unquoted in a model's SQL (SELECT * FROM smartingest_planner.smartingest_syncs).
        snapshot = [column for table, column in columns if table.startswith("SNAPSHOT_")]
        assert snapshot == ["ID", "__HASH", "__IDENT"]
        assert {table for table, _ in columns if not table.startswith("SNAPSHOT_")} == {"SMARTINGEST_SYNCS"}
        db.execute("UPDATE users SET plan = 'pro' WHERE id = 2")
        db.execute("DELETE FROM users WHERE id = 3")
        assert harness.run().ops == {"changed": ["2"], "removed": ["3"]}
    finally:
        db.close()


def test_sources_the_engine_does_not_run_on_say_so(tmp_path: Path):
    config = SourceConfig.model_validate({"type": "sqlite", "path": str(tmp_path / "x.db"), "engine": "lightning"})
    detector = detector_for(config, tmp_path / "state", source_name="db")
    model = ModelConfig(source="db", table="users", primary_key="id")
    with pytest.raises(ConfigError, match=r"does not run on sqlite sources yet.*set the source.s engine to basic"):
        detector.plan(SYNC, open_source("db", config), model, SPEC)


def test_a_table_with_the_models_primary_key_is_diffed_without_scanning_it_for_duplicates(tmp_path: Path):
    db = PostgresDatabase()
    try:
        db.execute(f"CREATE TABLE {db.table()} (id BIGINT PRIMARY KEY, email VARCHAR(100), plan VARCHAR(20))")
        db.insert("users", [(i, f"u{i}@x.io", "free") for i in range(1, 21)])
        harness = Harness(db, "lightning", tmp_path / "state")
        harness.run()
        db.execute(f"UPDATE {db.table()} SET plan = 'pro', email = 'U{1}@x.io' WHERE id IN (1, 2)")
        change_set = harness.detector().plan(SYNC, open_source("db", harness.config()), harness.model, SPEC)
        try:
            staged = {row[0] for row in change_set.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            # The primary key rules out duplicates, the counts rule out removed keys, and identifiers are
            # looked up for the changed rows only: none of those scans of the whole model ran.
            assert not {"dup_raw", "removed_raw", "shared_raw"} & staged
            assert "held_idents" in staged
            assert (change_set.counts.changed, change_set.counts.invalid) == (0, 2)  # rows 1 and 2 share u1@x.io
            # The changed rows, the counts, and row 1's snapshot entry: row 2 now has its identifier.
            assert change_set.rows_read == 2 + 1 + 1
        finally:
            change_set.close()
    finally:
        db.close()


def test_a_profile_the_engine_is_not_tested_on_says_so(tmp_path: Path):
    db = MariaDBDatabase()
    try:
        db.create_users(2)
        harness = Harness(db, "lightning", tmp_path / "state")
        harness.db.source = lambda: {  # type: ignore[method-assign]
            "type": "planetscale",
            "host": "127.0.0.1",
            "database": db.database,
            "user": "root",
            "ssl_mode": "disabled",
            "session_statements": [],  # MariaDB has no Vitess workload to set
        }
        with pytest.raises(ConfigError, match=r"does not run on PlanetScale sources yet.*engine to basic"):
            harness.run()
    finally:
        db.close()


def test_a_key_that_changes_type_starts_a_new_snapshot(tmp_path: Path):
    db = PostgresDatabase()
    try:
        db.create_users(5)
        harness = Harness(db, "lightning", tmp_path / "state")
        harness.run()
        db.execute(f"ALTER TABLE {db.table()} ALTER COLUMN id TYPE text USING 'k' || id")
        run = harness.run()
        assert (run.counts.added, run.counts.removed) == (5, 0)
        assert run.new_baseline is not None and "changed type" in run.new_baseline
        again = harness.run()
        assert (again.counts.unchanged, again.new_baseline) == (5, None)
        assert harness.detector().snapshot_size(SYNC) == 5
    finally:
        db.close()


def test_a_merge_that_stops_before_it_commits_leaves_the_snapshot_as_it_was(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """In one transaction where the database has them, else as a next generation of the snapshot that only
    the sync's row, written last, makes the snapshot (ClickHouse)."""
    db.create_users(6)
    harness = Harness(db, "lightning", tmp_path / "state")
    harness.run()
    db.execute(f"UPDATE {db.table()} SET plan = 'pro' WHERE id <= 3")
    db.execute(f"DELETE FROM {db.table()} WHERE id = 6")

    def broken(*args: Any, **kwargs: Any) -> list[str]:
        raise SourceConnectionError("the connection broke")

    with monkeypatch.context() as patched:
        patched.setattr(LightningChangeSet, "_record_written", broken)
        with pytest.raises(SourceConnectionError):
            harness.run()
    assert harness.run().ops == {"changed": ["1", "2", "3"], "removed": ["6"]}
    assert harness.run().ops == {}


def test_clickhouse_keeps_one_generation_of_the_snapshot_and_one_row_per_sync(tmp_path: Path, cdc_clickhouse):
    db = ClickHouseDatabase(cdc_clickhouse)
    try:
        db.create_users(4)
        harness = Harness(db, "lightning", tmp_path / "state")
        for plan in ("free", "pro", "team"):
            db.execute(f"UPDATE {db.table()} SET plan = '{plan}' WHERE id = 1")
            harness.run()
        engine = chdb.connect(cdc_clickhouse.engine.path)
        try:
            tables = (
                engine.query(
                    f"SELECT name FROM system.tables WHERE database = '{db.planner_schema}' ORDER BY name", "CSV"
                )
                .bytes()
                .decode()
                .split()
            )
            syncs = (
                engine.query(f"SELECT sync_key, generation FROM {db.planner_schema}.smartingest_syncs", "CSV")
                .bytes()
                .decode()
                .split()
            )
        finally:
            engine.close()
        assert tables == ['"smartingest_syncs"', next(t for t in tables if t.startswith('"snapshot_'))]
        assert tables[1].endswith('_3"') and syncs == [f'"{SYNC}",3']  # the first run's, then two merges
    finally:
        db.close()


def test_bigquery_makes_the_planner_dataset_in_the_models_location(tmp_path: Path, cdc_bigquery):
    db = BigQueryDatabase(cdc_bigquery)
    try:
        db.create_users(2)
        assert Harness(db, "lightning", tmp_path / "state").run().counts.added == 2
        created = [
            job.sql
            for job in cdc_bigquery.jobs.values()
            if job.sql.startswith("CREATE SCHEMA") and db.planner_schema in job.sql
        ]
        # A query cannot read datasets of two locations; whether it exists, the API says for any location.
        assert created == [f"CREATE SCHEMA IF NOT EXISTS `{db.planner_schema}` OPTIONS (location = 'US')"]
        assert any(
            method == "GET" and path.endswith(f"/datasets/{db.planner_schema}")
            for method, path, _ in cdc_bigquery.requests
        )
    finally:
        db.close()
