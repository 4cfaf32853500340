"""Oracle specifics, on the fake of python-oracledb at the driver boundary (``oracle_fixtures``): how each Oracle
type is planned and asked of the driver, names stored in upper case, the read-only session and its call timeout,
the SQL the connector writes, and errors that name what to fix."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import oracledb
import pyarrow as pa
import pytest
from oracledb import errors as ora_errors

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.oracle import (
    OracleSettings,
    OracleSource,
    _column,
    _read_query,
    map_oracle_error,
    shown_name,
    stored_name,
)
from smartingest.sources.registry import secret_keys

from .conftest import NUMBERS_ROWS, tunnel_settings
from .driver_fakes import closed_port
from .oracle_fixtures import ORACLE_PASSWORD, FakeOracleServer, dpy, ora, oracle_settings
from .sshd import Bastion

PEOPLE = ModelConfig(source="ora", table="people", primary_key="id")
NUMBERS = ModelConfig(source="ora", table="numbers", primary_key="id")
SUBJECT = 'model table "people"'


def source(server: FakeOracleServer, **overrides: Any) -> OracleSource:
    return OracleSource(OracleSettings(**oracle_settings(server, **overrides)))


def query(sql: str) -> ModelConfig:
    return ModelConfig(source="ora", sql=sql, primary_key="id")


# ------------------------------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("db_type", "precision", "scale", "fetched"),
    [
        ("DB_TYPE_NUMBER", 19, 0, pa.int64()),
        ("DB_TYPE_NUMBER", 38, 0, pa.int64()),  # INTEGER
        ("DB_TYPE_NUMBER", 5, -2, pa.int64()),  # whole hundreds
        ("DB_TYPE_NUMBER", 12, 2, pa.decimal128(12, 2)),
        ("DB_TYPE_NUMBER", 2, 5, pa.decimal128(5, 5)),  # 0.000xy
        ("DB_TYPE_NUMBER", 0, -127, pa.float64()),  # NUMBER without precision, COUNT(*)...
        ("DB_TYPE_NUMBER", 126, -127, pa.float64()),  # FLOAT
        ("DB_TYPE_BINARY_FLOAT", 0, 0, pa.float64()),
        ("DB_TYPE_BOOLEAN", 0, 0, pa.bool_()),
        ("DB_TYPE_NVARCHAR", 0, 0, pa.string()),
        ("DB_TYPE_CLOB", 0, 0, pa.string()),
        ("DB_TYPE_BLOB", 0, 0, pa.binary()),
        ("DB_TYPE_RAW", 0, 0, pa.binary()),
        ("DB_TYPE_DATE", 0, 0, pa.timestamp("us")),
    ],
)
def test_each_oracle_type_is_asked_of_the_driver_as_a_plain_arrow_type(
    db_type: str, precision: int, scale: int, fetched: pa.DataType
) -> None:
    column = _column("AMOUNT", db_type, precision, scale, SUBJECT)
    assert column.select == '"AMOUNT"'
    assert column.fetched == fetched
    assert column.field == pa.field("amount", fetched)


def test_zoned_timestamps_json_and_rowids_are_computed_in_the_query() -> None:
    zoned = _column("AT", "DB_TYPE_TIMESTAMP_TZ", 0, 6, SUBJECT)
    local = _column("AT", "DB_TYPE_TIMESTAMP_LTZ", 0, 6, SUBJECT)
    assert zoned.select == local.select == 'SYS_EXTRACT_UTC("AT")'
    assert zoned.field.type == pa.timestamp("us", tz="UTC")
    doc = _column("Doc", "DB_TYPE_JSON", 0, 0, SUBJECT)
    assert doc.select == 'JSON_SERIALIZE("Doc" RETURNING CLOB)'
    assert doc.field == pa.field("Doc", pa.string(), metadata=JSON_TEXT)
    assert _column("R", "DB_TYPE_ROWID", 0, 0, SUBJECT).select == 'ROWIDTOCHAR("R")'
    assert _column("I", "DB_TYPE_INTERVAL_DS", 0, 0, SUBJECT).select == 'TO_CHAR("I")'
    assert _read_query("SELECT 1", [zoned, _column("ID", "DB_TYPE_NUMBER", 19, 0, SUBJECT)]) == (
        'SELECT SYS_EXTRACT_UTC("AT") AS "AT", "ID" FROM (\nSELECT 1\n) m'
    )
    assert _read_query("SELECT 1", [_column("ID", "DB_TYPE_NUMBER", 19, 0, SUBJECT)]) == "SELECT 1"


def test_a_type_that_is_not_read_names_the_sql_that_reads_it() -> None:
    with pytest.raises(ModelError, match=r"column 'doc' is of Oracle type XMLTYPE.*XMLSERIALIZE\(CONTENT \"DOC\"\)"):
        _column("DOC", "DB_TYPE_XMLTYPE", 0, 0, SUBJECT)


def test_values_are_read_exactly(fake_oracle: FakeOracleServer) -> None:
    table = source(fake_oracle).preview(query("SELECT * FROM people WHERE id = 1"))
    assert table.to_pylist() == [
        {
            "id": 1,
            "name": "Ada",
            "balance": Decimal("12.34"),
            "score": 1.5,
            "active": True,
            "born": dt.datetime(2024, 1, 2),
            "updated_at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "attrs": '{"plan": "pro"}',
        }
    ]


def test_reads_stream_in_batches_of_the_size_asked(fake_oracle: FakeOracleServer) -> None:
    with source(fake_oracle).read(NUMBERS, batch_rows=700) as stream:
        sizes = [batch.num_rows for batch in stream]
    assert sum(sizes) == NUMBERS_ROWS
    assert sizes[:-1] == [700] * (len(sizes) - 1)


# ---------------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("stored", "shown"), [("EMAIL", "email"), ("firstName", "firstName"), ("A$B#1", "a$b#1"), ("_X", "_X")]
)
def test_a_name_shown_is_resolved_to_the_name_stored(stored: str, shown: str) -> None:
    assert shown_name(stored) == shown
    assert stored_name(shown) == stored


def test_tables_are_shown_as_models_name_them_without_oracles_own_schemas(fake_oracle: FakeOracleServer) -> None:
    assert source(fake_oracle).tables() == ["smartingest.numbers", "smartingest.people", "smartingest.people_view"]
    assert source(fake_oracle).preview(ModelConfig(source="ora", table="smartingest.people", primary_key="id")).num_rows
    assert 'SELECT * FROM "SMARTINGEST"."PEOPLE"' in fake_oracle.received[-1]


# ------------------------------------------------------------------------------------------------- settings


def test_one_database_name_and_tls_keys_only_with_tls() -> None:
    base = {"host": "db", "user": "u", "password": "p"}
    OracleSettings(**base, service_name="s")
    OracleSettings(**base, sid="x")
    for wrong, message in (
        ({}, "exactly one of service_name and sid"),
        ({"service_name": "s", "sid": "x"}, "exactly one"),
        ({"service_name": "s", "wallet_location": "/w"}, "need tls: true"),
    ):
        with pytest.raises(ValueError, match=message):
            OracleSettings(**base, **wrong)
    tunnel = {"ssh_host": "b", "ssh_user": "u", "ssh_private_key": "k"}
    with pytest.raises(ValueError, match="needs tls_server_cert_dn"):
        OracleSettings(**base, service_name="s", tls=True, **tunnel)
    OracleSettings(**base, service_name="s", tls=True, tls_server_cert_dn="CN=db", **tunnel)


def test_secrets_are_known_and_never_shown(fake_oracle: FakeOracleServer) -> None:
    assert {"password", "wallet_password"} <= secret_keys(SourceConfig(type="oracle"))
    assert ORACLE_PASSWORD not in repr(source(fake_oracle))


def test_tls_asks_for_tcps_and_the_certificates_name(fake_oracle: FakeOracleServer, tmp_path: Any) -> None:
    settings = OracleSettings(
        host="db.example.com",
        service_name="s",
        user="u",
        password="p",
        tls=True,
        wallet_location=str(tmp_path),
        wallet_password="w",
        tls_server_cert_dn="CN=db.example.com",
    )
    arguments = OracleSource(settings)._connect_arguments("db.example.com", 2484)
    oracledb.ConnectParams(**arguments)  # names and types python-oracledb accepts
    assert arguments["protocol"] == "tcps"
    assert arguments["ssl_server_dn_match"] is True
    assert arguments["ssl_server_cert_dn"] == "CN=db.example.com"
    assert arguments["wallet_location"] == str(tmp_path) and arguments["wallet_password"] == "w"


# ---------------------------------------------------------------------------------------------------- sessions


def test_each_session_is_utc_in_its_schema_and_read_only(fake_oracle: FakeOracleServer) -> None:
    source(fake_oracle).test_connection()
    assert fake_oracle.received == [
        "ALTER SESSION SET TIME_ZONE = 'UTC'",
        'ALTER SESSION SET CURRENT_SCHEMA = "SMARTINGEST"',
        "SET TRANSACTION READ ONLY",
        "SELECT 1 FROM DUAL",
    ]
    connect = fake_oracle.connects_seen[-1]
    assert connect["program"] == "smartingest" and connect["protocol"] == "tcp"
    assert connect["service_name"] == "FREEPDB1"


def test_a_write_reaching_oracle_is_refused_by_the_read_only_transaction(fake_oracle: FakeOracleServer) -> None:
    # sqlglot cannot read PL/SQL, so the base class lets it through: Oracle's read-only transaction refuses it.
    with (
        pytest.raises(ModelError, match="ORA-01456"),
        source(fake_oracle)._session() as conn,
        conn.cursor() as cursor,
    ):
        try:
            cursor.execute("DELETE FROM people")
        except oracledb.Error as exc:
            raise map_oracle_error(exc, source(fake_oracle).settings) from exc  # type: ignore[misc]


def test_a_query_over_its_timeout_is_stopped_and_says_which_setting(fake_oracle: FakeOracleServer) -> None:
    fake_oracle.statement_seconds = 2
    with pytest.raises(SourceError, match=r"ran longer than query_timeout_seconds \(1\).*DPY-4024") as err:
        source(fake_oracle, query_timeout_seconds=1).preview(PEOPLE)
    assert err.value.transient is False
    assert fake_oracle.released()


def test_a_read_through_an_ssh_tunnel(fake_oracle: FakeOracleServer, bastion: Bastion) -> None:
    through = source(fake_oracle, **tunnel_settings(bastion))
    with through.read(NUMBERS, batch_rows=1000) as stream:
        assert sum(batch.num_rows for batch in stream) == NUMBERS_ROWS
    assert fake_oracle.connects_seen[-1]["port"] != fake_oracle.port
    assert fake_oracle.released()


# ----------------------------------------------------------------------------------------------------- errors


def test_wrong_credentials_are_an_auth_error_that_does_not_show_them(fake_oracle: FakeOracleServer) -> None:
    with pytest.raises(SourceAuthError, match="ORA-01017") as err:
        source(fake_oracle, password="wrong-Pa55").test_connection()
    assert "check user and password" in str(err.value) and "wrong-Pa55" not in str(err.value)
    assert fake_oracle.released()


def test_an_unknown_service_or_sid_names_the_setting(fake_oracle: FakeOracleServer) -> None:
    with pytest.raises(SourceConnectionError, match=r"check service_name\): DPY-6001.*ORA-12514") as err:
        source(fake_oracle, service_name="NOSUCH").test_connection()
    assert err.value.transient is False
    with pytest.raises(SourceConnectionError, match=r"check sid\): DPY-6003"):
        source(fake_oracle, service_name=None, sid="NOSUCH").test_connection()


def test_an_unknown_schema_names_the_setting(fake_oracle: FakeOracleServer) -> None:
    with pytest.raises(SourceConnectionError, match=r"has no schema 'nosuch' \(check schema\): ORA-01435") as err:
        source(fake_oracle, schema="nosuch").test_connection()
    assert err.value.transient is False


def test_an_unreachable_listener_is_a_transient_connection_error(fake_oracle: FakeOracleServer) -> None:
    port = closed_port()
    with pytest.raises(SourceConnectionError, match=f"cannot reach Oracle service 'FREEPDB1' at 127.0.0.1:{port}"):
        source(fake_oracle, port=port).test_connection()


def test_a_table_missing_or_not_granted_says_both_and_the_grant(fake_oracle: FakeOracleServer) -> None:
    fake_oracle.denied.add("people")
    with pytest.raises(ModelError, match="ORA-00942") as err:
        source(fake_oracle).preview(PEOPLE)
    assert "does not exist, or user 'reader' may not read it (GRANT SELECT ON <schema>.<table> TO reader" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT no_such_column AS id FROM people", r'cannot be read: ORA-00904: "NO_SUCH_COLUMN": invalid identifier'),
        ("SELECT id FROM people WHERE", "has a syntax error: ORA-00900"),
    ],
)
def test_model_errors_carry_oracles_text_without_its_help_line(
    fake_oracle: FakeOracleServer, sql: str, message: str
) -> None:
    with pytest.raises(ModelError, match=message) as err, source(fake_oracle).read(query(sql)):
        pass
    assert "Help:" not in str(err.value) and f'model query "{sql}"' in str(err.value)


SETTINGS = OracleSettings(host="db", service_name="s", user="reader", password="s3cret")


@pytest.mark.parametrize(
    ("exc", "kind", "transient", "says"),
    [
        (ora(28000, "The account is locked."), SourceAuthError, False, "check user and password"),
        (ora(12541, "TNS:no listener"), SourceConnectionError, True, "cannot reach"),
        (ora(3113, "end-of-file on communication channel"), SourceConnectionError, True, "cannot reach"),
        (ora(1013, "user requested cancel of current operation"), SourceError, False, "query_timeout_seconds"),
        (ora(60, "deadlock detected while waiting for resource"), SourceError, True, "temporarily"),
        (ora(1555, "snapshot too old"), SourceError, True, "temporarily"),
        (ora(1031, "insufficient privileges"), SourceAuthError, False, "lacks a privilege"),
        (ora(933, "SQL command not properly ended"), ModelError, False, "syntax error"),
        (ora(1722, "invalid number"), ModelError, False, "cannot be read"),
        (dpy(ora_errors.ERR_CANNOT_CONVERT_TO_ARROW_INTEGER, value="1e30"), ModelError, False, "cannot be read"),
        (dpy(ora_errors.ERR_CONNECTION_CLOSED), SourceConnectionError, True, "cannot reach"),
    ],
)
def test_oracles_errors_map_to_what_fixes_them(
    exc: Exception, kind: type[SourceError], transient: bool, says: str
) -> None:
    mapped = map_oracle_error(exc, SETTINGS, PEOPLE)
    assert type(mapped) is kind
    assert mapped.transient is transient
    assert says in str(mapped)


def test_errors_not_the_drivers_are_left_alone_and_secrets_never_shown() -> None:
    assert map_oracle_error(ValueError("bug"), SETTINGS) is None
    assert "s3cret" not in str(map_oracle_error(ora(1017, "logon denied for s3cret"), SETTINGS))
