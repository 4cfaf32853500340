"""ClickHouse specifics, against the real ClickHouse engine (chdb) behind the loopback HTTP interface of
``chdb_http``: how each column type is read, the read-only session, the query timeout, and errors that name
what to fix."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from clickhouse_connect.driver._backend.httpcommon import build_http_error
from clickhouse_connect.driver.exceptions import DatabaseError

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ConfigError, ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.clickhouse import ClickHouseSource
from smartingest.sources.registry import open_source

from .chdb_http import ClickHouseHttpShim, engine
from .clickhouse_fixtures import CLICKHOUSE_PASSWORD, clickhouse_settings, make_tls

UTC = dt.UTC


def source(server: ClickHouseHttpShim, database: str, **overrides: Any) -> ClickHouseSource:
    return ClickHouseSource(ClickHouseSource.Settings(**clickhouse_settings(server, database, **overrides)))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="ch", sql=sql, primary_key=pk)


def typed_model() -> ModelConfig:
    return ModelConfig(source="ch", table="typed", primary_key="id")


# Every kind of column the connector reads in its own way; row 2 holds each nullable column's NULL.
TYPED_COLUMNS = (
    "id UInt64, small Int8, amount Nullable(Decimal(12, 2)), wide Decimal(50, 10), ratio Float32,"
    " score Nullable(Float64), name Nullable(String), code FixedString(3), plan LowCardinality(Nullable(String)),"
    " flag Nullable(Bool), state Enum8('new' = 1, 'it''s done' = -2), day Date, old_day Date32,"
    " at DateTime('Europe/Berlin'), at_ms Nullable(DateTime64(3, 'Asia/Tokyo')), at_ns DateTime64(9),"
    " uid Nullable(UUID), tags Array(Nullable(Int32)), visits Map(String, Array(Date)),"
    " point Tuple(x Int32, label Nullable(String)), states Array(Enum16('a' = 1000, 'b' = 2000)),"
    " doc JSON, ip IPv4, ips Array(IPv6), big Int128"
)
TYPED_ROWS = (
    "(18446744073709551615, -128, -12.34, '12345678901234567890123456789012345678.0123456789', 1.5, nan,"
    " 'Zoë', 'ab', 'pro', true, 'it''s done', '2024-01-02', '1900-01-01', '2024-01-02 04:04:05',"
    " '2024-01-02 12:04:05.123', '2024-01-02 03:04:05.123456789', '61f0c404-5cb3-11e7-907b-a6006ad3dba0',"
    " [1, NULL, 3], {'home': ['2024-01-01', '2024-01-02']}, (7, 'seven'), ['b', 'a'], '{\"a\": [1, 2]}',"
    " '10.0.0.1', ['::1'], -170141183460469231731687303715884105728),"
    " (1, 0, NULL, '0', 0, NULL, NULL, '', NULL, NULL, 'new', '1970-01-01', '1970-01-01', 0, NULL, 0, NULL,"
    " [], {}, (0, NULL), [], '{}', '0.0.0.0', [], 0)"
)
TYPED_SCHEMA = {
    "id": pa.uint64(),
    "small": pa.int8(),
    "amount": pa.decimal128(12, 2),
    "wide": pa.float64(),  # beyond decimal128's 38 digits: float64, as for every source
    "ratio": pa.float32(),
    "score": pa.float64(),
    "name": pa.string(),
    "code": pa.string(),
    "plan": pa.string(),
    "flag": pa.bool_(),
    "state": pa.string(),
    "day": pa.date32(),
    "old_day": pa.date32(),
    "at": pa.timestamp("us", tz="UTC"),
    "at_ms": pa.timestamp("us", tz="UTC"),
    "at_ns": pa.timestamp("us", tz="UTC"),
    "uid": pa.string(),
    "tags": pa.list_(pa.field("item", pa.int32())),
    "visits": pa.map_(
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.list_(pa.field("item", pa.date32(), nullable=False)), nullable=False),
    ),
    "point": pa.struct([pa.field("x", pa.int32(), nullable=False), pa.field("label", pa.string())]),
    "states": pa.list_(pa.field("item", pa.string(), nullable=False)),
    "doc": pa.string(),
    "ip": pa.string(),
    "ips": pa.string(),  # an Array of a type Arrow has no plain form of: its JSON text
    "big": pa.float64(),
}
TYPED_VALUES = {
    "id": 18446744073709551615,
    "small": -128,
    "amount": Decimal("-12.34"),
    "wide": pytest.approx(1.2345678901234568e37),
    "ratio": 1.5,
    "name": "Zoë",
    "code": "ab",  # FixedString(3) pads with a zero byte: the text without it
    "plan": "pro",
    "flag": True,
    "state": "it's done",
    "day": dt.date(2024, 1, 2),
    "old_day": dt.date(1900, 1, 1),
    "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),  # Berlin's 04:04:05 is 03:04:05 UTC
    "at_ms": dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),  # Tokyo's 12:04:05.123
    "at_ns": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),  # nanoseconds cut to microseconds
    "uid": "61f0c404-5cb3-11e7-907b-a6006ad3dba0",
    "tags": [1, None, 3],
    "visits": [("home", [dt.date(2024, 1, 1), dt.date(2024, 1, 2)])],
    "point": {"x": 7, "label": "seven"},
    "states": ["b", "a"],
    "ip": "10.0.0.1",
    "ips": '["::1"]',
    "big": float(-(2**127)),
}


@pytest.fixture(scope="module")
def typed(clickhouse_database: str) -> str:
    ch = engine()
    ch.query(f"CREATE TABLE {clickhouse_database}.typed ({TYPED_COLUMNS}) ENGINE = MergeTree ORDER BY id")
    ch.query(f"INSERT INTO {clickhouse_database}.typed VALUES {TYPED_ROWS}")
    return clickhouse_database


def read_rows(src: ClickHouseSource, model: ModelConfig) -> tuple[pa.Schema, list[dict[str, Any]]]:
    with src.read(model) as stream:
        schema: pa.Schema = stream.schema  # type: ignore[attr-defined]
        rows = pa.Table.from_batches(list(stream), schema=schema).to_pylist()
    return schema, sorted(rows, key=lambda r: r["id"])


def assert_typed(schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
    assert dict(zip(schema.names, schema.types, strict=True)) == TYPED_SCHEMA
    assert schema.field("doc").metadata == JSON_TEXT
    assert schema.field("ips").metadata == JSON_TEXT
    assert schema.field("name").metadata is None
    empty, full = rows
    assert math.isnan(full.pop("score"))  # NaN stays a float NaN (the mapping reports it per row)
    assert full | {"doc": None} == TYPED_VALUES | {"doc": None, "id": full["id"]}
    assert full["doc"].replace(" ", "") == '{"a":[1,2]}'
    nulls = {name: empty[name] for name in ("amount", "score", "name", "plan", "flag", "at_ms", "uid")}
    assert nulls == dict.fromkeys(nulls)
    assert (empty["code"], empty["tags"], empty["visits"], empty["point"]) == ("", [], [], {"x": 0, "label": None})
    assert empty["at"] == dt.datetime(1970, 1, 1, tzinfo=UTC)


def test_each_column_type_is_read_as_its_values_are(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    src = source(clickhouse_server, typed)
    schema, rows = read_rows(src, typed_model())
    assert_typed(schema, rows)
    assert src.schema(typed_model()) == schema


def with_client_settings(src: ClickHouseSource, **settings: str) -> ClickHouseSource:
    """``src``, its sessions' requests carrying these settings too (what a server or a user profile with
    other defaults sends)."""
    plain_session = src._session

    @contextlib.contextmanager
    def session() -> Iterator[Any]:
        with plain_session() as client:
            for name, value in settings.items():
                client.set_client_setting(name, value)
            yield client

    src._session = session  # type: ignore[method-assign]
    return src


def test_the_other_arrow_forms_of_strings_uuids_and_low_cardinality_read_the_same(
    clickhouse_server: ClickHouseHttpShim, typed: str
) -> None:
    # As older servers send them by default: String as bytes, LowCardinality as dictionaries, UUID as 16 bytes.
    src = with_client_settings(
        source(clickhouse_server, typed),
        output_format_arrow_string_as_string="0",
        output_format_arrow_low_cardinality_as_dictionary="1",
        output_format_arrow_uuid_as_fixed_byte_array="1",
    )
    schema, rows = read_rows(src, typed_model())
    sent = clickhouse_server.requests[-1]
    assert (sent["output_format_arrow_string_as_string"], sent["output_format_arrow_uuid_as_fixed_byte_array"]) == (
        "0",
        "1",
    )
    assert_typed(schema, rows)


def test_dates_sent_as_uint16_days_read_as_dates(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    # (Constants: this engine sends a MergeTree table's Date column as 0 days under this setting.)
    src = with_client_settings(source(clickhouse_server, typed), output_format_arrow_date_as_uint16="1")
    model = query("SELECT 1 AS id, toDate('2024-01-02') AS day, [toNullable(toDate('1970-01-02')), NULL] AS days")
    schema, rows = read_rows(src, model)
    assert schema.field("day").type == pa.date32()
    assert rows == [{"id": 1, "day": dt.date(2024, 1, 2), "days": [dt.date(1970, 1, 2), None]}]


def test_a_string_that_is_not_utf8_names_the_fix(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    with pytest.raises(ModelError, match=r"column 'raw' holds bytes that are not UTF-8 text.*hex\(raw\)"):
        source(clickhouse_server, typed).preview(query("SELECT 1 AS id, unhex('ff00') AS raw"))


def test_sessions_are_read_only_at_the_server(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    src = source(clickhouse_server, typed)
    with src._session() as client, pytest.raises(DatabaseError) as err:
        client.command("CREATE TABLE intruder (i Int8) ENGINE = Memory")
    assert err.value.code == 164  # READONLY: refused by the server, not by our parser
    assert clickhouse_server.requests[-1]["readonly"] == "2"
    mapped = src._translate(err.value, query("SELECT 1 AS id"))
    assert isinstance(mapped, ModelError) and "would write" in str(mapped)
    # The session still sets its queries' own settings (readonly=1 would refuse them).
    assert src.preview(query("SELECT 1 AS id SETTINGS max_threads = 1")).num_rows == 1


def test_a_query_over_its_timeout_is_stopped_and_says_which_setting(
    clickhouse_server: ClickHouseHttpShim, typed: str
) -> None:
    src = source(clickhouse_server, typed, query_timeout_seconds=0.5)
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(0.5\)") as err:
        src.preview(query("SELECT sleep(2) AS id"))
    assert err.value.transient is False
    assert "TIMEOUT_EXCEEDED" in str(err.value)
    assert clickhouse_server.requests[-1]["max_execution_time"] == "0.5"


def test_a_wrong_port_is_a_transient_connection_error(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceConnectionError, match=f"cannot reach ClickHouse at 127.0.0.1:{port}") as err:
        source(clickhouse_server, typed, port=port).test_connection()
    assert err.value.transient is True


def test_a_wrong_password_is_an_auth_error_that_does_not_show_it(
    clickhouse_server: ClickHouseHttpShim, typed: str
) -> None:
    src = source(clickhouse_server, typed, password="n0t-the-Pa55word")
    with pytest.raises(SourceAuthError, match="refused user 'reader' \\(check user and password\\)") as err:
        src.test_connection()
    assert err.value.transient is False
    assert "AUTHENTICATION_FAILED" in str(err.value)
    assert "n0t-the-Pa55word" not in str(err.value) and "n0t-the-Pa55word" not in repr(src)
    assert CLICKHOUSE_PASSWORD not in repr(source(clickhouse_server, typed))


def test_an_unknown_database_says_so(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    with pytest.raises(SourceConnectionError, match="has no database 'no_such_db' \\(check database\\)") as err:
        source(clickhouse_server, "no_such_db").test_connection()
    assert err.value.transient is False


def test_unknown_tables_columns_and_syntax_are_model_errors_with_the_server_text(
    clickhouse_server: ClickHouseHttpShim, typed: str
) -> None:
    src = source(clickhouse_server, typed)
    cases = {
        "SELECT * FROM nosuch": "UNKNOWN_TABLE",
        "SELECT nosuch_column AS id FROM typed": "UNKNOWN_IDENTIFIER",
        "SELECT id FROM typed WHERE": "SYNTAX_ERROR",
    }
    for sql, name in cases.items():
        with pytest.raises(ModelError, match=name):
            src.preview(query(sql))


def test_a_missing_privilege_names_the_grant_that_fixes_it(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    # The embedded engine has no users to deny: the error is the driver's own, built by its response handler
    # from the body and code header ClickHouse sends with a 403.
    src = source(clickhouse_server, typed)
    body = (
        "Code: 497. DB::Exception: reader: Not enough privileges. To execute this query, it's necessary to have"
        " the grant SELECT(id) ON db.numbers. (ACCESS_DENIED) (version 25.8.1.1)"
    )
    error = build_http_error(403, "497", body, True, "http://127.0.0.1:8123", False)
    mapped = src._translate(error, ModelConfig(source="ch", table="numbers", primary_key="id"))
    assert isinstance(mapped, SourceAuthError)
    assert f"GRANT SELECT ON {typed}.* TO reader" in str(mapped)
    assert 'table "numbers"' in str(mapped) and "Not enough privileges" in str(mapped)
    assert "(version" not in str(mapped) and "for url" not in str(mapped)


def test_tables_are_database_dot_name_without_system_ones(clickhouse_server: ClickHouseHttpShim, typed: str) -> None:
    listed = source(clickhouse_server, typed).tables()
    assert {f"{typed}.people", f"{typed}.people_view", f"{typed}.typed"} <= set(listed)
    assert not any(name.split(".")[0] in ("system", "INFORMATION_SCHEMA", "information_schema") for name in listed)


def test_settings_defaults_and_port_by_tls(clickhouse_server: ClickHouseHttpShim) -> None:
    settings = ClickHouseSource.Settings(database="analytics")
    assert (settings.user, settings.secure, settings.verify, settings.port) == ("default", False, True, None)
    assert "port=8123" in repr(ClickHouseSource(settings))
    assert "port=8443" in repr(ClickHouseSource(ClickHouseSource.Settings(database="a", secure=True)))
    with pytest.raises(ConfigError, match=r"sources\.ch: .*query_timeout"):
        open_source("ch", SourceConfig(type="clickhouse", database="a", query_timeout=3))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[ClickHouseHttpShim, Path]]:
    tls = make_tls(tmp_path)
    server = ClickHouseHttpShim({"default": ""}, tls=tls.server)
    try:
        yield server, tls.ca_cert
    finally:
        server.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # verify: false, on purpose
def test_tls_checks_the_certificate_against_ca_cert(tls_server: tuple[ClickHouseHttpShim, Path], typed: str) -> None:
    server, ca_cert = tls_server

    def over_tls(**settings: Any) -> ClickHouseSource:
        return ClickHouseSource(ClickHouseSource.Settings(port=server.port, database=typed, secure=True, **settings))

    assert (
        over_tls(ca_cert=str(ca_cert)).preview(ModelConfig(source="ch", table="people", primary_key="id")).num_rows == 3
    )
    with pytest.raises(SourceConnectionError, match="not trusted \\(set ca_cert, or verify: false\\)") as err:
        over_tls().test_connection()  # the system's CAs did not sign it
    assert err.value.transient is False
    over_tls(verify=False).test_connection()
    with pytest.raises(SourceConnectionError, match="cannot reach ClickHouse") as plain:
        ClickHouseSource(ClickHouseSource.Settings(port=server.port, database=typed)).test_connection()
    assert plain.value.transient is True
