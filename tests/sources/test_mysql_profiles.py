"""PlanetScale and SingleStore, the MySQL-protocol profiles of the MySQL connector, against the real MariaDB:
what each profile sends and reads differently (docs/sources.md lists what only their own servers would show),
and the session statements every profile of the family takes."""

from __future__ import annotations

import time
from decimal import Decimal

import pymysql
import pytest
from pydantic import ValidationError

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceError
from smartingest.sources.mysql import MySQLSource, PlanetScaleSource, SingleStoreSource, map_mysql_error

from .conftest import MARIADB, mariadb_admin

SLOW = "SELECT a.seq AS id FROM seq_1_to_100000 a JOIN seq_1_to_100000 b ON a.seq < 0 OR b.seq < 0 OR SLEEP(0) = 0"


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="my", sql=sql, primary_key=pk)


def running(database: str, fragment: str) -> list[str]:
    with mariadb_admin() as admin, admin.cursor() as cur:
        cur.execute(
            "SELECT info FROM information_schema.processlist WHERE db = %s AND info LIKE %s",
            (database, f"%{fragment}%"),
        )
        return [str(row[0]) for row in cur.fetchall()]


def test_planetscale_defaults_to_verified_tls_and_vitess_olap_workload() -> None:
    settings = PlanetScaleSource.Settings(host="aws.connect.psdb.cloud", database="app", user="reader")
    assert settings.ssl_mode == "verify_identity"
    assert settings.session_statements == ["SET workload = 'olap'"]
    with pytest.raises(ValidationError, match="host"):
        PlanetScaleSource.Settings(database="app", user="reader")


def test_planetscale_sends_vitess_its_query_timeout_as_a_directive(mariadb_database: str) -> None:
    # MariaDB reads the directive as the comment it is to any server but Vitess: the query runs, and the
    # text it runs with is there to see.
    settings = {**MARIADB, "database": mariadb_database, "ssl_mode": "disabled", "session_statements": []}
    source = PlanetScaleSource(PlanetScaleSource.Settings(**settings, query_timeout_seconds=30))
    with source.read(query("SELECT seq AS id FROM seq_1_to_1000000"), 1000) as stream:
        next(stream)
        statements = running(mariadb_database, "smartingest stream")
    assert len(statements) == 1
    assert "SELECT /*vt+ QUERY_TIMEOUT_MS=30000 */ * FROM (" in statements[0]


def test_vitess_errors_are_mapped_by_the_mysql_error_they_wrap() -> None:
    settings = PlanetScaleSource.Settings(host="h", database="app", user="reader", query_timeout_seconds=2)
    missing = pymysql.err.ProgrammingError(
        1105,
        "target: app.-.primary: vttablet: rpc error: code = NotFound desc = Table 'app.t' doesn't exist "
        '(errno 1146) (sqlstate 42S02) (CallerID: reader): Sql: "select * from t"',
    )
    mapped = map_mysql_error(missing, settings, vendor="PlanetScale")
    assert isinstance(mapped, ModelError) and "doesn't exist" in str(mapped)
    deadline = pymysql.err.OperationalError(
        1317, "target: app.-.primary: vttablet: rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    )
    mapped = map_mysql_error(deadline, settings, vendor="PlanetScale")
    assert isinstance(mapped, SourceError) and "query_timeout_seconds (2" in str(mapped)
    assert mapped.transient is False


def test_singlestore_keeps_the_query_timeout_with_a_watchdog(mariadb_database: str) -> None:
    settings = {**MARIADB, "database": mariadb_database}
    source = SingleStoreSource(SingleStoreSource.Settings(**settings, query_timeout_seconds=0.5))
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(0.5\)") as err, source.read(query(SLOW)) as stream:
        list(stream)
    assert err.value.transient is False
    assert time.monotonic() - started < 30  # ended by the watchdog, not by the query finishing
    assert not running(mariadb_database, "smartingest stream")


def test_singlestore_reads_timestamps_as_stored(mariadb_database: str) -> None:
    source = SingleStoreSource(SingleStoreSource.Settings(**MARIADB, database=mariadb_database))
    table = source.preview(query("SELECT 1 AS id, TIMESTAMP'2024-01-02 03:04:05' AS at"))
    assert str(table.schema.field("at").type) == "timestamp[us]"


def test_session_statements_are_run_and_only_set_statements_are_taken(mariadb_database: str) -> None:
    precise = {"session_statements": ["SET SESSION div_precision_increment = 8"]}
    source = MySQLSource(MySQLSource.Settings(**MARIADB, database=mariadb_database, **precise))
    # The server's default is 4 digits after the point of a division.
    assert source.preview(query("SELECT 1 AS id, 1/3 AS third")).column(1).to_pylist() == [Decimal("0.33333333")]
    for bad in ("DROP TABLE people", "SET @a = 1; DROP TABLE people"):
        with pytest.raises(ValidationError, match="is not one SET statement"):
            MySQLSource.Settings(**MARIADB, database=mariadb_database, session_statements=[bad])
    for undoing in ("SET SESSION TRANSACTION READ WRITE", "SET SESSION transaction_read_only = 0"):
        with pytest.raises(ValidationError, match="read-only mode"):
            MySQLSource.Settings(**MARIADB, database=mariadb_database, session_statements=[undoing])
