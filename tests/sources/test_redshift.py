"""Redshift's connector over PostgreSQL's protocol, against the real PostgreSQL on 127.0.0.1:5432: how each
column type is read, the session's settings (sent in the startup packet), the query timeout, and errors.
What only a Redshift cluster shows (SUPER, GEOMETRY, its system views) is listed in docs/sources.md."""

from __future__ import annotations

import socket
from decimal import Decimal

import pyarrow as pa
import pytest

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.redshift import RedshiftSource

LOCAL = {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres", "sslmode": "disable"}


def source(**overrides: object) -> RedshiftSource:
    return RedshiftSource(RedshiftSource.Settings(**{**LOCAL, **overrides}))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="rs", sql=sql, primary_key=pk)


def test_settings_default_to_redshift_endpoints_and_tls() -> None:
    settings = RedshiftSource.Settings(host="c.abc.us-east-1.redshift.amazonaws.com", user="loader")
    assert (settings.port, settings.database, settings.sslmode) == (5439, "dev", "require")


def test_each_column_type_is_read_as_its_values_are() -> None:
    sql = (
        "SELECT 1::bigint AS id, 12.34::numeric(12,2) AS amount, 'NaN'::numeric(10,2) AS not_a_number,"
        " 1.5::numeric(40,2) AS wide, 2::int2 AS small, 1.5::float4 AS single,"
        " '2024-01-02 03:04:05+02'::timestamptz AS at, '2024-01-02 03:04:05'::timestamp AS local,"
        " '12:30:00+02'::timetz AS zoned_time, '{\"a\": [1, 2]}'::jsonb AS doc,"
        " '1 day'::interval AS span, 'x'::varchar(3) AS label"
    )
    table = source().preview(query(sql))
    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == {
        "id": pa.int64(),
        "amount": pa.decimal128(12, 2),
        "not_a_number": pa.decimal128(10, 2),
        "wide": pa.float64(),  # beyond decimal128's 38 digits, as for PostgreSQL
        "small": pa.int16(),
        "single": pa.float32(),
        "at": pa.timestamp("us", tz="UTC"),
        "local": pa.timestamp("us"),
        "zoned_time": pa.string(),
        "doc": pa.string(),
        "span": pa.string(),
        "label": pa.string(),
    }
    row = table.to_pylist()[0]
    assert row["amount"] == Decimal("12.34") and row["not_a_number"] is None
    assert row["at"].isoformat() == "2024-01-02T01:04:05+00:00"
    assert row["zoned_time"] == "12:30:00+02" and row["span"] == "1 day"
    assert table.schema.field("doc").metadata  # JSON text, sent parsed


def test_search_path_with_a_space_reaches_the_session() -> None:
    rows = source(search_path=["odd name", "public"]).preview(
        query("SELECT 1 AS id, current_setting('search_path') AS path, current_setting('TimeZone') AS zone")
    )
    assert rows.to_pylist() == [{"id": 1, "path": '"odd name","public"', "zone": "UTC"}]


def test_query_timeout_stops_the_query_and_names_the_setting() -> None:
    slow = query("SELECT count(*) AS id FROM generate_series(1, 200000000)")
    limited = source(query_timeout_seconds=0.2)
    with pytest.raises(SourceError, match="query_timeout_seconds") as err, limited.read(slow) as stream:
        list(stream)
    assert err.value.transient is False


def test_wrong_port_is_a_transient_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceConnectionError, match=f"cannot reach Redshift at 127.0.0.1:{port}") as err:
        source(port=port).test_connection()
    assert err.value.transient is True


def test_unknown_user_is_an_auth_error_without_the_password() -> None:
    src = source(user="nosuch_role", password="s3cret-Pa55")
    with pytest.raises(SourceAuthError, match="'nosuch_role'") as err:
        src.test_connection()
    assert "s3cret-Pa55" not in str(err.value) and "s3cret-Pa55" not in repr(src)


def test_error_met_while_streaming_is_a_model_error() -> None:
    # Planning (no rows) passes; the division fails on the 3rd row, inside connectorx's stream.
    model = query("SELECT g AS id, 1 / (3 - g) AS x FROM generate_series(1, 5) g")
    with pytest.raises(ModelError, match="division by zero"), source().read(model) as stream:
        list(stream)


def test_a_writing_model_is_refused_before_it_runs() -> None:
    # Redshift has no read-only session: the refusal is the SQL check's.
    with pytest.raises(ModelError, match="would write"), source().read(query("DELETE FROM t RETURNING 1 AS id")):
        pass


def test_the_planner_loads_arrow_rows_in_chunks_of_bound_values() -> None:
    """The Lightning engine's tables: created from the Arrow types, filled by multi-row INSERTs (more rows
    than one INSERT takes), each value bound, not written into the SQL."""
    import datetime as dt
    import secrets

    schema = f"smartingest_load_{secrets.token_hex(4)}"
    rows = 2500
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "small": pa.array([i % 100 for i in range(rows)], pa.int16()),
            "amount": pa.array([Decimal(i) / 100 for i in range(rows)], pa.decimal128(12, 2)),
            "text": pa.array(["it's a \\ back'slash" if i == 1 else None if i == 2 else f"t{i}" for i in range(rows)]),
            "flag": pa.array([i % 2 == 0 for i in range(rows)]),
            "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)] * rows, pa.timestamp("us", tz="UTC")),
            "day": pa.array([dt.date(2024, 1, 2)] * rows, pa.date32()),
        }
    )
    with source().planner() as planner:
        planner.execute(f"CREATE SCHEMA {schema}")
        try:
            planner.load(schema, "loaded", table)
            planner.load(schema, "loaded", table.slice(0, 3))  # replaced
            planner.load(schema, "empty", table.slice(0, 0))
            assert planner.rows(f"SELECT count(*) FROM {schema}.loaded")[0][0] == 3
            assert planner.rows(f"SELECT count(*) FROM {schema}.empty")[0][0] == 0
            planner.load(schema, "loaded", table)
            found = planner.rows(f"SELECT * FROM {schema}.loaded ORDER BY id")
            assert len(found) == rows
            assert found[1][:5] == (1, 1, Decimal("0.01"), "it's a \\ back'slash", False)
            assert found[2][3] is None
            assert found[0][5:] == (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), dt.date(2024, 1, 2))
            types = planner.rows(
                "SELECT data_type FROM information_schema.columns "
                f"WHERE table_schema = '{schema}' AND table_name = 'loaded' ORDER BY ordinal_position"
            )
            assert [t[0] for t in types] == [
                "bigint",
                "smallint",
                "numeric",
                "character varying",
                "boolean",
                "timestamp with time zone",
                "date",
            ]
        finally:
            planner.execute(f"DROP SCHEMA {schema} CASCADE")
