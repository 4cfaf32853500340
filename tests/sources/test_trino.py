"""The Trino connector: Trino's JSON values as Arrow, settings, what the coordinator is sent, errors by
errorName, the time limit, streaming in bounded batches, the spooling protocol, TLS, the SSH tunnel."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.trino import TrinoSource, page_batch, plan_column

from .clickhouse_fixtures import make_tls
from .conftest import NUMBERS_ROWS, Case, tunnelled
from .sshd import Bastion
from .trino_fixtures import TRINO_USER, trino_coordinator_for, trino_released, trino_settings
from .trino_http import TrinoCoordinator, trino_error

NUMBERS = ModelConfig(source="src", table="numbers", primary_key="id")
PEOPLE = ModelConfig(source="src", table="people", primary_key="id")
UTC = dt.UTC


@pytest.fixture
def coordinator() -> Iterator[TrinoCoordinator]:
    """A coordinator of the test's own, free to be told to fail."""
    fake = trino_coordinator_for(page_rows=300)
    try:
        yield fake
    finally:
        fake.close()


def source(coordinator: TrinoCoordinator, **overrides: Any) -> TrinoSource:
    return TrinoSource(TrinoSource.Settings(**trino_settings(coordinator, **overrides)))


def read_all(src: TrinoSource, model: ModelConfig, batch_rows: int = 1000) -> pa.Table:
    with src.read(model, batch_rows) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema)


# --------------------------------------------------------------------------------------------------- types


def sig(raw: str, *args: Any) -> dict[str, Any]:
    return {"rawType": raw, "arguments": list(args)}


def long(value: int) -> dict[str, Any]:
    return {"kind": "LONG", "value": value}


def of(signature: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "TYPE", "value": signature}


def named(name: str | None, signature: dict[str, Any]) -> dict[str, Any]:
    field_name = None if name is None else {"name": name, "delimited": False}
    return {"kind": "NAMED_TYPE", "value": {"fieldName": field_name, "typeSignature": signature}}


# Each Trino type, two values as Trino's JSON carries them (the second a null), and what Arrow must hold.
CASES: list[tuple[str, dict[str, Any], list[Any], pa.DataType, list[Any]]] = [
    ("b", sig("boolean"), [True, None], pa.bool_(), [True, None]),
    ("t", sig("tinyint"), [-5, None], pa.int8(), [-5, None]),
    ("s", sig("smallint"), [300, None], pa.int16(), [300, None]),
    ("i", sig("integer"), [70000, None], pa.int32(), [70000, None]),
    ("l", sig("bigint"), [2**62, None], pa.int64(), [2**62, None]),
    ("r", sig("real"), [1.5, "NaN"], pa.float32(), [1.5, math.nan]),
    ("d", sig("double"), ["Infinity", "-Infinity"], pa.float64(), [math.inf, -math.inf]),
    (
        "m",
        sig(
            "decimal",
            long(
                38,
            ),
            long(9),
        ),
        ["12345678901234567890.123456789", None],
        pa.decimal128(38, 9),
        [Decimal("12345678901234567890.123456789"), None],
    ),
    ("v", sig("varchar", long(10)), ["Zoë", None], pa.string(), ["Zoë", None]),
    ("c", sig("char", long(3)), ["ab ", None], pa.string(), ["ab ", None]),
    ("day", sig("date"), ["1999-12-31", None], pa.date32(), [dt.date(1999, 12, 31), None]),
    (
        "ts",
        sig("timestamp", long(9)),
        ["2024-01-02 03:04:05.123456789", None],
        pa.timestamp("us"),
        [dt.datetime(2024, 1, 2, 3, 4, 5, 123456), None],
    ),
    ("tod", sig("time", long(3)), ["03:04:05.120", None], pa.time64("us"), [dt.time(3, 4, 5, 120000), None]),
    ("bin", sig("varbinary"), ["AAH/", None], pa.binary(), [b"\x00\x01\xff", None]),
    (
        "u",
        sig("uuid"),
        ["61f0c404-5cb3-11e7-907b-a6006ad3dba0", None],
        pa.string(),
        ["61f0c404-5cb3-11e7-907b-a6006ad3dba0", None],
    ),
    ("iv", sig("interval day to second"), ["1 02:03:04.000", None], pa.string(), ["1 02:03:04.000", None]),
    ("nothing", sig("unknown"), [None, None], pa.null(), [None, None]),
]


def test_every_trino_type_becomes_plain_arrow() -> None:
    columns = [{"name": n, "type": s["rawType"], "typeSignature": s} for n, s, _, _, _ in CASES]
    planned = [plan_column(c) for c in columns]
    schema = pa.schema([c.field for c in planned])
    rows = [[values[i] for _, _, values, _, _ in CASES] for i in range(2)]
    batch = page_batch(rows, planned, schema)
    assert batch.schema == pa.schema([pa.field(n, t) for n, _, _, t, _ in CASES])
    for name, _, _, _, expected in CASES:
        got = batch.column(name).to_pylist()
        if name in ("r", "d"):
            assert [g if not math.isnan(g) else "nan" for g in got] == [
                e if not math.isnan(e) else "nan" for e in expected
            ]
        else:
            assert got == expected, name


def test_timestamps_with_a_zone_are_the_utc_instant_whatever_the_zone() -> None:
    column = plan_column({"name": "at", "typeSignature": sig("timestamp with time zone", long(3))})
    values = [
        "2024-01-02 03:04:05.123 UTC",
        "2024-07-01 12:00:00.000 Europe/Berlin",  # summer time: UTC+2
        "2024-01-01 12:00:00.000 Europe/Berlin",  # winter time: UTC+1
        "2024-01-02 03:04:05.000 +05:30",
        None,
    ]
    batch = page_batch([[v] for v in values], [column], pa.schema([column.field]))
    assert batch.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert batch.column(0).to_pylist() == [
        dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
        dt.datetime(2024, 7, 1, 10, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 11, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 21, 34, 5, tzinfo=UTC),
        None,
    ]


def test_json_and_nested_values_are_json_text_with_row_fields_named() -> None:
    row = sig("row", named("plan", sig("varchar")), named(None, sig("array", of(sig("integer")))))
    columns = [
        {"name": "j", "typeSignature": sig("json")},
        {"name": "a", "typeSignature": sig("array", of(row))},
        {"name": "m", "typeSignature": sig("map", of(sig("varchar")), of(sig("decimal", long(5), long(2))))},
    ]
    planned = [plan_column(c) for c in columns]
    schema = pa.schema([c.field for c in planned])
    batch = page_batch([['{"x": 1}', [["pro", [1, 2]], None], {"k": "1.50"}], [None, None, None]], planned, schema)
    assert all(f.type == pa.string() and f.metadata == JSON_TEXT for f in batch.schema)
    first = batch.to_pylist()[0]
    assert json.loads(first["j"]) == {"x": 1}
    assert json.loads(first["a"]) == [{"plan": "pro", "field1": [1, 2]}, None]
    assert json.loads(first["m"]) == {"k": "1.50"}
    assert batch.to_pylist()[1] == {"j": None, "a": None, "m": None}


def test_an_empty_page_is_an_empty_batch_of_the_columns() -> None:
    column = plan_column({"name": "x", "typeSignature": sig("bigint")})
    batch = page_batch([], [column], pa.schema([column.field]))
    assert batch.num_rows == 0 and batch.schema.names == ["x"]


# ------------------------------------------------------------------------------------------------ settings


def test_settings_defaults_and_checks(coordinator: TrinoCoordinator) -> None:
    plain = TrinoSource.Settings(host="h", user="u", catalog="c")
    assert TrinoSource(plain)._port() == 8080
    assert TrinoSource(TrinoSource.Settings(host="h", user="u", catalog="c", http_scheme="https"))._port() == 443
    with pytest.raises(ValidationError, match="only over TLS"):
        TrinoSource.Settings(host="h", user="u", catalog="c", password="secret")
    with pytest.raises(ValidationError, match="give the time limit once"):
        TrinoSource.Settings(
            host="h",
            user="u",
            catalog="c",
            query_timeout_seconds=5,
            session_properties={"query_max_execution_time": "1m"},
        )
    with pytest.raises(ValidationError, match="not a session property name"):
        TrinoSource.Settings(host="h", user="u", catalog="c", session_properties={"a=b": "1"})
    with pytest.raises(ValidationError):
        TrinoSource.Settings(host="h", user="u")  # catalog is required
    assert "secret" not in repr(
        TrinoSource(TrinoSource.Settings(host="h", user="u", catalog="c", http_scheme="https", password="secret"))
    )


# ------------------------------------------------------------------------------- what the coordinator is sent


def test_the_session_and_the_sql_sent(coordinator: TrinoCoordinator) -> None:
    src = source(
        coordinator, query_timeout_seconds=2.5, session_properties={"query_max_memory": "1GB"}, source="nightly"
    )
    assert src.preview(PEOPLE, limit=2).num_rows == 2
    posted = coordinator.posted[-1]
    assert posted.sql == 'SELECT * FROM (\nSELECT * FROM "people"\n) m LIMIT 2'
    headers = posted.headers
    assert headers["X-Trino-User"] == TRINO_USER
    assert (headers["X-Trino-Catalog"], headers["X-Trino-Schema"], headers["X-Trino-Source"]) == (
        "memory",
        "sales",
        "nightly",
    )
    assert headers["X-Trino-Time-Zone"] == "UTC"
    assert posted.properties == {"query_max_memory": "1GB", "query_max_execution_time": "2500ms"}
    assert "json+zstd" in posted.encodings  # the spooling protocol is asked for
    assert "Authorization" not in headers  # no password: no credentials sent


def test_read_streams_pages_as_bounded_batches_without_fetching_ahead(coordinator: TrinoCoordinator) -> None:
    src = source(coordinator)
    with src.read(NUMBERS, batch_rows=250) as stream:
        first = next(stream)
        query = coordinator.posted[-1]
        assert first.num_rows == 250
        assert len(query.pages) == math.ceil(NUMBERS_ROWS / 300)
        assert query.state == "RUNNING", "the whole result was fetched before the first batch was used"
        rest = list(stream)
    sizes = [first.num_rows, *(b.num_rows for b in rest)]
    assert max(sizes) <= 250 and sum(sizes) == NUMBERS_ROWS
    assert query.state == "FINISHED"
    assert trino_released(coordinator)


def test_a_read_left_early_cancels_the_query(coordinator: TrinoCoordinator) -> None:
    with source(coordinator).read(NUMBERS, batch_rows=100) as stream:
        next(stream)
    assert coordinator.posted[-1].state == "CANCELED"
    assert trino_released(coordinator)


def test_the_spooling_protocol_reads_the_same() -> None:
    fake = trino_coordinator_for(page_rows=700, spooling=True)
    try:
        plain = read_all(source(fake, port=fake.port), NUMBERS)
        assert plain.num_rows == NUMBERS_ROWS
        assert sorted(plain.column("id").to_pylist()) == list(range(1, NUMBERS_ROWS + 1))
        assert len(fake.acknowledged) == math.ceil(NUMBERS_ROWS / 700) // 2  # every spooled segment
        people = read_all(source(fake), PEOPLE)
        assert people.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
        assert trino_released(fake)
    finally:
        fake.close()


def test_tables_are_listed_as_schema_dot_name(trino_case: Case) -> None:
    assert trino_case.source.tables() == ["sales.numbers", "sales.people", "sales.people_view"]


# --------------------------------------------------------------------------------------------------- errors


def test_access_denied_names_the_rule_to_add(coordinator: TrinoCoordinator) -> None:
    coordinator.fail_next.append(
        trino_error("PERMISSION_DENIED", "Access Denied: Cannot select from table memory.sales.people")
    )
    with pytest.raises(SourceAuthError) as err, source(coordinator).read(PEOPLE):
        pass
    message = str(err.value)
    assert "Cannot select from table memory.sales.people (PERMISSION_DENIED)" in message
    assert '"privileges": ["SELECT"]' in message and "GRANT SELECT ON memory." in message


def test_an_unknown_catalog_or_schema_names_the_setting(coordinator: TrinoCoordinator) -> None:
    with pytest.raises(SourceConnectionError, match=r"Catalog 'nosuch' not found .*check catalog") as err:
        source(coordinator, catalog="nosuch").test_connection()
    assert err.value.transient is False
    with pytest.raises(SourceConnectionError, match="has no schema 'nosuch' \\(check schema\\)") as err:
        source(coordinator, schema="nosuch").test_connection()
    assert err.value.transient is False
    source(coordinator, schema=None).test_connection()  # no schema: models name schema.table
    with pytest.raises(ModelError, match="Schema must be specified"):
        read_all(source(coordinator, schema=None), PEOPLE)
    assert read_all(source(coordinator, schema=None), ModelConfig(source="s", table="sales.people", primary_key="id"))


def test_an_unknown_session_property_names_session_properties(coordinator: TrinoCoordinator) -> None:
    with pytest.raises(SourceError, match="session_properties") as err:
        source(coordinator, session_properties={"no_such_property": "1"}).test_connection()
    assert err.value.transient is False
    assert not isinstance(err.value, ModelError)


def test_the_query_timeout_stops_the_query_on_the_coordinator(coordinator: TrinoCoordinator) -> None:
    coordinator.execution_seconds = 3.0
    with (
        pytest.raises(SourceError, match=r"query_timeout_seconds \(0.5\)") as err,
        source(coordinator, query_timeout_seconds=0.5).read(NUMBERS),
    ):
        pass
    assert err.value.transient is False
    assert "EXCEEDED_TIME_LIMIT" in str(err.value)
    assert coordinator.posted[-1].state == "FAILED"


def test_a_failure_of_the_cluster_is_transient(coordinator: TrinoCoordinator) -> None:
    coordinator.fail_next.append(trino_error("GENERIC_INTERNAL_ERROR", "worker gone"))
    with pytest.raises(SourceError, match="failed temporarily: worker gone") as err, source(coordinator).read(NUMBERS):
        pass
    assert err.value.transient is True


def test_an_error_on_the_data_is_a_model_error(coordinator: TrinoCoordinator) -> None:
    with (
        pytest.raises(ModelError, match="INVALID_CAST_ARGUMENT"),
        source(coordinator).read(
            ModelConfig(source="s", sql="SELECT id, CAST(label AS integer) AS x FROM numbers", primary_key="id")
        ),
    ):
        pass


def test_a_closed_port_is_a_transient_connection_error(coordinator: TrinoCoordinator) -> None:
    port = coordinator.port
    coordinator.close()
    with pytest.raises(SourceConnectionError, match=f"cannot reach Trino at 127.0.0.1:{port}") as err:
        source(coordinator, port=port).test_connection()
    assert err.value.transient is True


# ------------------------------------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_coordinator(tmp_path: Path) -> Iterator[tuple[TrinoCoordinator, Path]]:
    tls = make_tls(tmp_path)
    fake = trino_coordinator_for(users={TRINO_USER: "s3cret-Pa55"}, tls=tls.server)
    try:
        yield fake, tls.ca_cert
    finally:
        fake.close()


def test_a_password_over_tls(tls_coordinator: tuple[TrinoCoordinator, Path]) -> None:
    fake, ca = tls_coordinator
    good = source(fake, http_scheme="https", ca_cert=str(ca), password="s3cret-Pa55")
    good.test_connection()
    assert read_all(good, NUMBERS).num_rows == NUMBERS_ROWS
    with pytest.raises(SourceAuthError, match="refused user 'reader' \\(check user and password\\)") as err:
        source(fake, http_scheme="https", ca_cert=str(ca), password="wrong-Pa55").test_connection()
    assert "wrong-Pa55" not in str(err.value)
    with pytest.raises(SourceConnectionError, match="not trusted \\(set ca_cert") as err:
        source(fake, http_scheme="https", password="s3cret-Pa55").test_connection()
    assert err.value.transient is False
    assert trino_released(fake)


# ------------------------------------------------------------------------------------------------ SSH tunnel


def test_a_model_reads_the_same_through_an_ssh_tunnel(trino_case: Case, bastion: Bastion) -> None:
    through = tunnelled(trino_case, bastion)
    through.source.test_connection()
    assert read_all(through.source, NUMBERS).equals(read_all(trino_case.source, NUMBERS))  # type: ignore[arg-type]
    assert through.is_released()
