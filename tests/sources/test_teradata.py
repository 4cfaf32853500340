"""Teradata specifics, on the fake of teradatasql at the driver boundary (``teradata_fixtures``): how each
Teradata type's text becomes Arrow, batch by batch; FastExport for reads only; the connection parameters the
driver's own parser accepts; the SQL written (no ``TOP 0``); and errors that name what to fix."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
import teradatasql

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.registry import secret_keys
from smartingest.sources.teradata import (
    FASTEXPORT,
    TeradataSettings,
    TeradataSource,
    _batches,
    _column,
    _plan,
    map_teradata_error,
)

from .conftest import NUMBERS_ROWS, tunnel_settings
from .driver_fakes import closed_port
from .sshd import Bastion
from .teradata_fixtures import (
    TERADATA_PASSWORD,
    FakeTeradataServer,
    database_error,
    driver_error,
    parse_parameters,
    teradata_settings,
)

PEOPLE = ModelConfig(source="td", table="people", primary_key="id")
NUMBERS = ModelConfig(source="td", table="numbers", primary_key="id")


def source(server: FakeTeradataServer, **overrides: Any) -> TeradataSource:
    return TeradataSource(TeradataSettings(**teradata_settings(server, **overrides)))


def query(sql: str) -> ModelConfig:
    return ModelConfig(source="td", sql=sql, primary_key="id")


# ------------------------------------------------------------------------------------------------- the types

# Each Teradata type, its description (type name, precision, scale), what teradatasql gives with
# teradata_values=false, and what is read.
TYPED = [
    ("b", "BYTEINT", 3, 0, [-128, None], pa.int64(), [-128, None]),
    ("i", "INTEGER", 10, 0, [2147483647, None], pa.int64(), [2147483647, None]),
    ("big", "BIGINT", 19, 0, [-(2**63), None], pa.int64(), [-(2**63), None]),
    ("d", "DECIMAL", 38, 10, ["-1234567890123456789012345678.0123456789", None], pa.decimal128(38, 10),
     [Decimal("-1234567890123456789012345678.0123456789"), None]),
    ("n", "NUMBER", 12, 2, ["-.50", None], pa.decimal128(12, 2), [Decimal("-0.50"), None]),
    ("free", "NUMBER", 40, 0, ["1.5E+40", None], pa.float64(), [1.5e40, None]),  # NUMBER(*): no precision
    ("f", "FLOAT", 15, 0, [2.25, None], pa.float64(), [2.25, None]),
    ("day", "DATE", 10, 0, ["1999-12-31", None], pa.date32(), [dt.date(1999, 12, 31), None]),
    ("at", "TIMESTAMP", 26, 6, ["2024-01-02 03:04:05.123456", None], pa.timestamp("us"),
     [dt.datetime(2024, 1, 2, 3, 4, 5, 123456), None]),
    ("at_tz", "TIMESTAMP WITH TIME ZONE", 32, 6, ["2023-06-01 14:00:00.000000+02:00", None],
     pa.timestamp("us", tz="UTC"), [dt.datetime(2023, 6, 1, 12, tzinfo=dt.UTC), None]),
    ("clock", "TIME", 15, 6, ["01:02:03.000000", None], pa.string(), ["01:02:03.000000", None]),
    ("code", "CHAR", 6, 0, ["ab    ", None], pa.string(), ["ab", None]),
    ("name", "VARCHAR", 100, 0, ["Zoë  ", None], pa.string(), ["Zoë  ", None]),
    ("doc", "JSON", 0, 0, ['{"a": 1}', None], pa.string(), ['{"a": 1}', None]),
    ("raw", "VARBYTE", 10, 0, [b"\x00\xff", None], pa.binary(), [b"\x00\xff", None]),
    ("span", "PERIOD(DATE)", 0, 0, ["('2024-01-01', '2024-02-01')", None], pa.string(),
     ["('2024-01-01', '2024-02-01')", None]),
]  # fmt: skip


def test_each_teradata_type_is_read_from_the_drivers_values_column_by_column() -> None:
    cursor = SimpleNamespace(
        description=[[name, str, None, 0, p, s, True] for name, _, p, s, *_ in TYPED],
        columntypename=[kind for _, kind, *_ in TYPED],
        rows=list(zip(*[given for *_, given, _, _ in TYPED], strict=True)),
    )
    cursor.fetchmany = lambda size: [cursor.rows.pop(0) for _ in range(min(size, len(cursor.rows)))]
    columns = _plan(cursor, "model x")
    (batch,) = list(_batches(cursor, columns, 10, "model x"))
    assert [(f.name, f.type) for f in batch.schema] == [(name, typ) for name, *_, typ, _ in TYPED]
    assert batch.schema.field("doc").metadata == JSON_TEXT
    assert batch.to_pydict() == {name: read for name, *_, read in TYPED}


def test_a_text_that_does_not_fit_its_type_names_the_model() -> None:
    cursor = SimpleNamespace(fetchmany=lambda size: [("not a number",)])
    with pytest.raises(ModelError, match="model x: a value does not fit its column's type"):
        next(_batches(cursor, [_column("n", "DECIMAL", 5, 2)], 10, "model x"))


def test_reads_are_fetched_one_batch_at_a_time(fake_teradata: FakeTeradataServer) -> None:
    with source(fake_teradata).read(NUMBERS, batch_rows=700) as stream:
        sizes = [batch.num_rows for batch in stream]
    assert sum(sizes) == NUMBERS_ROWS
    assert sizes[:-1] == [700] * (len(sizes) - 1)


# ------------------------------------------------------------------------------------------ FastExport and SQL


def test_a_models_read_asks_for_fastexport_and_nothing_else_does(fake_teradata: FakeTeradataServer) -> None:
    source_ = source(fake_teradata)
    with source_.read(PEOPLE) as stream:
        list(stream)
    source_.preview(PEOPLE, 2)
    source_.schema(PEOPLE)
    source_.tables()
    assert fake_teradata.received[0] == FASTEXPORT + 'SELECT * FROM "people"'
    assert not any(FASTEXPORT in s for s in fake_teradata.received[1:])
    fake_teradata.received.clear()
    with source(fake_teradata, fastexport=False).read(PEOPLE) as stream:
        list(stream)
    assert fake_teradata.received == ['SELECT * FROM "people"']


def test_the_sql_written_is_teradatas_without_top_zero(fake_teradata: FakeTeradataServer) -> None:
    source_ = source(fake_teradata)
    assert source_.schema(query("SELECT id FROM people")).names == ["id"]
    assert fake_teradata.received[-1] == "SELECT * FROM (\nSELECT id FROM people\n) m WHERE 1 = 0"
    source_.preview(PEOPLE, 2)
    assert fake_teradata.received[-1] == 'SELECT TOP 2 * FROM (\nSELECT * FROM "people"\n) m'
    assert source_.tables() == ["smartingest.numbers", "smartingest.people", "smartingest.people_view"]
    assert fake_teradata.received[-1].startswith("SELECT TOP 2000 TRIM(DatabaseName) || '.' || TRIM(TableName)")


def test_top_zero_the_wrapper_other_dialects_use_would_be_refused(fake_teradata: FakeTeradataServer) -> None:
    source_ = source(fake_teradata)
    with pytest.raises(ModelError, match=r"syntax error: \[Error 3706\]"), source_._session() as conn:
        try:
            source_._rows(conn, "SELECT TOP 0 * FROM (\nSELECT id FROM people\n) m")
        except teradatasql.Error as exc:
            raise source_._translate(exc, PEOPLE) from exc  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------- settings


def test_the_connection_parameters_are_ones_the_driver_accepts() -> None:
    settings = TeradataSettings(
        host="td.example.com",
        user="u",
        password="p",
        logmech="LDAP",
        database="sales",
        sslmode="verify-full",
        sslca="/ca.pem",
        query_timeout_seconds=90,
        connect_timeout_seconds=5,
    )
    parameters = TeradataSource(settings)._connect_parameters("td.example.com", 1025)
    parse_parameters(parameters)  # the driver's own parser
    assert parameters | {"password": "p"} == {
        "host": "td.example.com",
        "dbs_port": "1025",
        "user": "u",
        "password": "p",
        "logmech": "LDAP",
        "database": "sales",
        "encryptdata": "true",
        "sslmode": "VERIFY-FULL",
        "sslca": "/ca.pem",
        "https_port": "443",
        "connect_timeout": "5000",
        "request_timeout": "90",
        "teradata_values": "false",
    }


def test_tls_through_an_ssh_tunnel_is_refused_and_secrets_are_known() -> None:
    tunnel = {"ssh_host": "b", "ssh_user": "u", "ssh_private_key": "k"}
    with pytest.raises(ValueError, match="sslmode: disable"):
        TeradataSettings(host="td", user="u", **tunnel)
    TeradataSettings(host="td", user="u", sslmode="disable", **tunnel)
    assert "password" in secret_keys(SourceConfig(type="teradata"))


def test_the_password_is_never_shown(fake_teradata: FakeTeradataServer) -> None:
    assert TERADATA_PASSWORD not in repr(source(fake_teradata))


def test_a_read_through_an_ssh_tunnel(fake_teradata: FakeTeradataServer, bastion: Bastion) -> None:
    through = source(fake_teradata, **tunnel_settings(bastion))
    with through.read(NUMBERS, batch_rows=1000) as stream:
        assert sum(batch.num_rows for batch in stream) == NUMBERS_ROWS
    assert fake_teradata.parameters_seen[-1]["dbs_port"] != str(fake_teradata.port)
    assert fake_teradata.released()


# ----------------------------------------------------------------------------------------------------- errors


def test_wrong_credentials_are_an_auth_error_that_does_not_show_them(fake_teradata: FakeTeradataServer) -> None:
    with pytest.raises(SourceAuthError, match=r"\[Error 8017\]") as err:
        source(fake_teradata, password="wrong-Pa55").test_connection()
    assert "check user and password" in str(err.value) and "wrong-Pa55" not in str(err.value)
    assert "gosqldriver" not in str(err.value)  # the driver's Go stack is left out


def test_an_unknown_default_database_is_named(fake_teradata: FakeTeradataServer) -> None:
    with pytest.raises(SourceConnectionError, match=r"has no database 'nosuch' \(check database\)") as err:
        source(fake_teradata, database="nosuch").test_connection()
    assert err.value.transient is False


def test_an_unreachable_database_is_a_transient_connection_error(fake_teradata: FakeTeradataServer) -> None:
    port = closed_port()
    with pytest.raises(SourceConnectionError, match=f"cannot reach Teradata at 127.0.0.1:{port}") as err:
        source(fake_teradata, port=port).test_connection()
    assert err.value.transient is True


def test_a_missing_privilege_names_the_grant_that_fixes_it(fake_teradata: FakeTeradataServer) -> None:
    fake_teradata.denied.add("people")
    with pytest.raises(SourceAuthError, match="GRANT SELECT ON smartingest TO reader") as err:
        source(fake_teradata).preview(PEOPLE)
    assert "[Error 3523]" in str(err.value)


def test_a_request_over_its_timeout_is_aborted_and_says_which_setting(fake_teradata: FakeTeradataServer) -> None:
    fake_teradata.statement_seconds = 2
    with pytest.raises(SourceError, match=r"longer than query_timeout_seconds \(1\)") as err:
        source(fake_teradata, query_timeout_seconds=1).preview(PEOPLE)
    assert err.value.transient is False
    assert fake_teradata.parameters_seen[-1]["request_timeout"] == "1"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT id FROM nosuch_table", r"cannot be read: \[Error 3807\].*Object 'nosuch_table' does not exist"),
        ("SELECT no_such_column AS id FROM people", r"cannot be read: \[Error 3810\].*'no_such_column'"),
        ("SELECT id FROM people WHERE", r"has a syntax error: \[Error 3706\]"),
    ],
)
def test_model_errors_carry_teradatas_text(fake_teradata: FakeTeradataServer, sql: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as err, source(fake_teradata).read(query(sql)):
        pass
    assert f'model query "{sql}"' in str(err.value)


SETTINGS = TeradataSettings(host="td", user="reader", password="s3cret", database="sales")


@pytest.mark.parametrize(
    ("exc", "kind", "transient", "says"),
    [
        (database_error(3110, "25000", "The transaction was aborted by the user."), SourceError, True, "aborted"),
        (database_error(2631, "40001", "Transaction ABORTed due to deadlock."), SourceError, True, "temporarily"),
        (database_error(3523, "42000", "The user does not have DELETE access to sales.t."), ModelError, False, "write"),
        (database_error(3802, "42S02", "Database 'other' does not exist."), ModelError, False, "cannot be read"),
        (driver_error(444, "08001", "Failed to connect to td"), SourceConnectionError, True, "cannot reach"),
        (
            teradatasql.OperationalError("[Version 20.0.0.72] [Session 0] [Teradata Security] [Error 0x1] bad LDAP"),
            SourceAuthError,
            False,
            "refused the TD2 logon",
        ),
        (driver_error(169, "08000", "Unable to parse JSON connection parameters"), SourceConnectionError, True, ""),
    ],
)
def test_teradatas_errors_map_to_what_fixes_them(
    exc: Exception, kind: type[SourceError], transient: bool, says: str
) -> None:
    mapped = map_teradata_error(exc, SETTINGS, PEOPLE)
    assert type(mapped) is kind
    assert mapped.transient is transient
    assert says in str(mapped)


def test_errors_not_the_drivers_are_left_alone_and_the_password_is_never_shown() -> None:
    assert map_teradata_error(ValueError("bug"), SETTINGS) is None
    leaked = database_error(8017, "28000", "The UserId, Password or Account is invalid: s3cret")
    assert "s3cret" not in str(map_teradata_error(leaked, SETTINGS, connecting=True))
