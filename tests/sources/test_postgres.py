"""PostgreSQL-specific behaviour: connection and auth errors, URI encoding, type normalisation, bounded memory."""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import psutil
import psycopg
import pyarrow as pa
import pytest

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.postgres import BATCH_SIZE_HINT_OPTION, PostgresSource, numeric_type

from .conftest import PG_DSN, pg_settings


def source(schema: str, **overrides: object) -> PostgresSource:
    return PostgresSource(PostgresSource.Settings(**pg_settings(schema, **overrides)))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="pg", sql=sql, primary_key=pk)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_port_is_a_transient_connection_error(pg_schema: str) -> None:
    port = free_port()
    with pytest.raises(SourceConnectionError) as err:
        source(pg_schema, port=port).test_connection()
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in str(err.value)
    assert "refused" in str(err.value).lower()
    assert err.value.transient is True
    with pytest.raises(SourceConnectionError), source(pg_schema, port=port).read(query("SELECT 1 AS id")):
        pass


def test_unknown_host_is_a_connection_error(pg_schema: str) -> None:
    with pytest.raises(SourceConnectionError, match=r"nosuchhost\.invalid"):
        source(pg_schema, host="nosuchhost.invalid").test_connection()


def test_unknown_role_is_an_auth_error_without_the_password(pg_schema: str) -> None:
    # Trust auth accepts any password for existing roles, so a role that does not exist stands for bad credentials.
    src = source(pg_schema, user="nosuch_role", password="s3cret-Pa55")
    with pytest.raises(SourceAuthError) as err:
        src.test_connection()
    message = str(err.value)
    assert "'nosuch_role'" in message and 'role "nosuch_role" does not exist' in message
    assert err.value.transient is False
    assert "s3cret-Pa55" not in message
    assert "s3cret-Pa55" not in repr(src) and "s3cret-Pa55" not in repr(src.settings)


def test_unknown_database_is_an_auth_error(pg_schema: str) -> None:
    with pytest.raises(SourceAuthError) as err:
        source(pg_schema, database="nosuch_db").test_connection()
    assert "'nosuch_db'" in str(err.value)
    assert 'database "nosuch_db" does not exist' in str(err.value)


def test_uri_values_are_percent_encoded(pg_schema: str) -> None:
    # Characters that mean something in a URI reach the server intact (the role name comes back verbatim).
    odd = "we ird@:/?&=+%#"
    with pytest.raises(SourceAuthError) as err:
        source(pg_schema, user=odd, password="p@ss:w/rd?&#").test_connection()
    assert f'role "{odd}" does not exist' in str(err.value)


def test_search_path_setting_resolves_unqualified_tables(pg_schema: str) -> None:
    without = PostgresSource(PostgresSource.Settings(database="test", user="postgres"))
    with pytest.raises(ModelError, match='relation "people" does not exist'):
        without.schema(ModelConfig(source="pg", table="people", primary_key="id"))
    assert source(pg_schema).schema(ModelConfig(source="pg", table="people", primary_key="id")).names[0] == "id"
    as_text = PostgresSource(
        PostgresSource.Settings(database="test", user="postgres", search_path=f"{pg_schema}, public")
    )
    assert as_text.settings.search_path == [pg_schema, "public"]


def test_sessions_are_read_only(pg_schema: str) -> None:
    # A write the SQL check cannot see (a function that writes): the session refuses it.
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SEQUENCE IF NOT EXISTS "{pg_schema}".ids')
    model = query(f"SELECT nextval('{pg_schema}.ids') AS id")
    with pytest.raises(ModelError, match="read-only"), source(pg_schema).read(model) as stream:
        list(stream)


def test_numeric_precision_is_kept() -> None:
    src = PostgresSource(PostgresSource.Settings(database="test", user="postgres"))
    table = src.preview(
        query(
            "SELECT 1 AS id,"
            " 1234567890123456789012345678.1234567890::numeric(38,10) AS wide,"
            " 12.34::numeric(12,2) AS money2,"
            " 1.5::numeric AS free,"
            " 12345678901234567890123456789012345678901.5::numeric(50,5) AS too_wide,"
            " 'NaN'::numeric(10,2) AS nan_dec,"
            " 'NaN'::numeric AS nan_free,"
            " NULL::numeric(10,2) AS null_dec"
        )
    )
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int32(),
        "wide": pa.decimal128(38, 10),
        "money2": pa.decimal128(12, 2),
        "free": pa.float64(),
        "too_wide": pa.float64(),
        "nan_dec": pa.decimal128(10, 2),
        "nan_free": pa.float64(),
        "null_dec": pa.decimal128(10, 2),
    }
    row = table.to_pylist()[0]
    assert row["wide"] == Decimal("1234567890123456789012345678.1234567890")
    assert row["money2"] == Decimal("12.34")
    assert row["free"] == 1.5
    assert row["too_wide"] == pytest.approx(1.2345678901234568e40)
    assert row["nan_dec"] is None  # a decimal (and JSON) cannot hold NaN
    assert row["nan_free"] != row["nan_free"]  # float NaN
    assert row["null_dec"] is None


def test_numeric_typmod_decoding() -> None:
    def typmod(precision: int, scale: int) -> int:
        return ((precision << 16) | (scale & 0x7FF)) + 4

    assert numeric_type(-1) == pa.float64()
    assert numeric_type(typmod(12, 2)) == pa.decimal128(12, 2)
    assert numeric_type(typmod(38, 0)) == pa.decimal128(38, 0)
    assert numeric_type(typmod(39, 2)) == pa.float64()
    assert numeric_type(typmod(2, -3)) == pa.decimal128(5, 0)  # PostgreSQL 15 negative scale
    assert numeric_type(typmod(3, 5)) == pa.decimal128(5, 5)


def test_other_types_are_normalised_to_plain_types() -> None:
    src = PostgresSource(PostgresSource.Settings(database="test", user="postgres"))
    table = src.preview(
        query(
            "SELECT 1::bigint AS id,"
            " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,"
            " NULL::uuid AS u_null,"
            " '{\"a\": [1, 2]}'::jsonb AS jb,"
            " '{\"b\":1}'::json AS j,"
            " '10.1.2.3/32'::inet AS ip,"
            " '12.50'::money AS price,"
            " ARRAY[1.25::numeric(6,2), NULL] AS nums,"
            " now() AS ts,"
            " 'x'::varchar(3) AS v"
        )
    )
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int64(),
        "u": pa.string(),
        "u_null": pa.string(),
        "jb": pa.string(),
        "j": pa.string(),
        "ip": pa.string(),
        "price": pa.float64(),
        "nums": pa.string(),  # arrays are read as jsonb, to keep their nesting
        "ts": pa.timestamp("us", tz="UTC"),
        "v": pa.string(),
    }
    assert {f.name for f in table.schema if f.metadata == JSON_TEXT} == {"jb", "j", "nums"}
    row = table.to_pylist()[0]
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["u_null"] is None
    assert row["jb"] == '{"a": [1, 2]}'
    assert row["ip"] == "10.1.2.3/32"
    assert row["price"] == 12.5
    assert row["nums"] == "[1.25, null]"


def test_error_while_streaming_is_a_model_error(pg_schema: str) -> None:
    model = query("SELECT 1 / (g - 30000) AS id FROM generate_series(1, 60000) g")
    with pytest.raises(ModelError, match="division by zero"), source(pg_schema).read(model, 1000) as stream:
        list(stream)


def test_batch_size_hint_option_is_the_drivers() -> None:
    assert BATCH_SIZE_HINT_OPTION == "adbc.postgresql.batch_size_hint_bytes"


@pytest.mark.timeout(30)
def test_streaming_memory_stays_bounded(pg_schema: str) -> None:
    rows = 2_000_000
    model = query(
        f"SELECT g::bigint AS id, 'customer-' || g AS name, g * 1.5::float8 AS score FROM generate_series(1, {rows}) g"
    )
    proc = psutil.Process()
    started = time.monotonic()
    baseline = proc.memory_info().rss
    peak = 0
    seen = nbytes = batches = 0
    with source(pg_schema).read(model, batch_rows=20_000) as stream:
        for batch in stream:
            assert batch.num_rows <= 20_000
            seen += batch.num_rows
            nbytes += batch.nbytes
            batches += 1
            peak = max(peak, proc.memory_info().rss - baseline)
    elapsed = time.monotonic() - started
    print(
        f"\n{rows} rows, {nbytes / 1e6:.0f} MB of Arrow data, {batches} batches, RSS growth peak "
        f"{peak / 1e6:.1f} MB, {elapsed:.1f} s"
    )
    assert seen == rows
    assert nbytes > 50e6
    assert peak < nbytes / 5, f"RSS grew {peak / 1e6:.1f} MB reading {nbytes / 1e6:.1f} MB: the result was materialised"
    assert elapsed < 10


def test_query_timeout_stops_the_query_and_names_the_setting(pg_schema: str) -> None:
    slow = query("SELECT count(*) AS id FROM generate_series(1, 200000000)")
    limited = source(pg_schema, query_timeout_seconds=0.2)
    with pytest.raises(SourceError, match="query_timeout_seconds") as err, limited.read(slow) as stream:
        list(stream)
    assert err.value.transient is False
