"""The Firebolt connector: Firebolt's JSON values as Arrow, settings, what the engine is sent, errors,
the statement timeout, streaming in bounded chunks."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.firebolt import FireboltSource, chunk_batch, plan_column

from .conftest import NUMBERS_ROWS
from .firebolt_fixtures import firebolt_api_for, firebolt_released, firebolt_settings
from .firebolt_http import FireboltApi, structured

NUMBERS = ModelConfig(source="src", table="numbers", primary_key="id")
PEOPLE = ModelConfig(source="src", table="people", primary_key="id")


@pytest.fixture
def api(firebolt_network: None) -> Iterator[FireboltApi]:
    fake = firebolt_api_for(chunk_rows=400)
    try:
        yield fake
    finally:
        fake.close()


def source(api: FireboltApi, **overrides: Any) -> FireboltSource:
    return FireboltSource(FireboltSource.Settings(**firebolt_settings(api, **overrides)))


def test_every_firebolt_type_becomes_plain_arrow() -> None:
    # Values as the connector reads them: JSON with floats kept as their text.
    cases = [
        ("i", "integer null", [7, None], pa.int32(), [7, None]),
        ("l", "bigint", ["9007199254740993", None], pa.int64(), [9007199254740993, None]),
        ("r", "real null", ["1.5", None], pa.float32(), [1.5, None]),
        ("d", "double precision null", ["nan", "2.25"], pa.float64(), [math.nan, 2.25]),
        (
            "m",
            "numeric(38, 9) null",
            ["12345678901234567890.123456789", 5],
            pa.decimal128(38, 9),
            [Decimal("12345678901234567890.123456789"), Decimal(5)],
        ),
        ("wide", "numeric(40, 2) null", ["1.25", None], pa.float64(), [1.25, None]),
        ("b", "boolean null", [True, None], pa.bool_(), [True, None]),
        ("t", "text null", ["Zoë", None], pa.string(), ["Zoë", None]),
        ("day", "pgdate null", ["1999-12-31", None], pa.date32(), [dt.date(1999, 12, 31), None]),
        (
            "ts",
            "timestampntz null",
            ["2024-01-02 03:04:05.123456", None],
            pa.timestamp("us"),
            [dt.datetime(2024, 1, 2, 3, 4, 5, 123456), None],
        ),
        (
            "tz",
            "timestamptz null",
            ["2024-01-02 03:04:05+05:30", "2024-01-02 03:04:05.5+00"],
            pa.timestamp("us", tz="UTC"),
            [
                dt.datetime(2024, 1, 1, 21, 34, 5, tzinfo=dt.UTC),
                dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC),
            ],
        ),
        ("by", "bytea null", ["\\x0001ff", None], pa.binary(), [b"\x00\x01\xff", None]),
        ("g", "geography null", ["POINT(1 2)", None], pa.string(), ["POINT(1 2)", None]),
    ]
    planned = [plan_column(n, t) for n, t, _, _, _ in cases]
    schema = pa.schema([c.field for c in planned])
    batch = chunk_batch([[c[2][i] for c in cases] for i in range(2)], planned, schema)
    assert batch.schema == pa.schema([pa.field(n, t) for n, _, _, t, _ in cases])
    for name, _, _, _, expected in cases:
        got = batch.column(name).to_pylist()
        if name == "d":
            assert math.isnan(got[0]) and got[1] == expected[1]
        else:
            assert got == expected, name


def test_arrays_and_structs_are_json_text() -> None:
    planned = [plan_column("a", "array(integer null) null"), plan_column("s", "struct(x int, y text) null")]
    batch = chunk_batch([[[1, None], {"x": 1, "y": "a"}]], planned, pa.schema([c.field for c in planned]))
    assert all(f.metadata == JSON_TEXT for f in batch.schema)
    assert [json.loads(v) for v in batch.to_pylist()[0].values()] == [[1, None], {"x": 1, "y": "a"}]


def test_settings_are_checked_and_the_secret_never_shown() -> None:
    with pytest.raises(ValidationError):
        FireboltSource.Settings(client_id="a", client_secret="b", account_name="c", database="d")  # no engine
    settings = FireboltSource.Settings(
        client_id="a", client_secret="sh-secret", account_name="c", database="d", engine_name="e"
    )
    assert settings.api_endpoint == "api.app.firebolt.io"
    assert "sh-secret" not in repr(FireboltSource(settings))


def test_what_the_engine_is_sent(api: FireboltApi) -> None:
    src = source(api, query_timeout_seconds=1.5)
    assert src.preview(PEOPLE, limit=2).num_rows == 2
    sql, params = api.statements[-1]
    assert sql == 'SELECT * FROM (\nSELECT * FROM "people"\n) m LIMIT 2'
    assert params["output_format"] == "JSONLines_Compact"
    assert (params["database"], params["engine"], params["statement_timeout"]) == ("analytics", "reader_engine", "1500")


def test_read_streams_chunks_as_bounded_batches(api: FireboltApi) -> None:
    with source(api).read(NUMBERS, batch_rows=300) as stream:
        sizes = [b.num_rows for b in stream]
    assert max(sizes) <= 300 and sum(sizes) == NUMBERS_ROWS
    assert len(sizes) > NUMBERS_ROWS // 400  # chunks of 400 re-cut to 300
    assert firebolt_released(api)


def test_bad_credentials_are_an_auth_error(api: FireboltApi) -> None:
    with pytest.raises(SourceAuthError, match="check client_id and client_secret") as err:
        source(api, client_secret="wrong-secret").test_connection()
    assert "wrong-secret" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"account_name": "nosuch"}, "account_name"),
        ({"database": "nosuch"}, "database"),
        ({"engine_name": "nosuch"}, "engine_name"),
    ],
)
def test_an_unknown_account_database_or_engine_names_the_setting(
    api: FireboltApi, override: dict[str, str], setting: str
) -> None:
    with pytest.raises(SourceConnectionError, match=f"check {setting}") as err:
        source(api, **override).test_connection()
    assert err.value.transient is False


def test_permission_denied_names_the_grants(api: FireboltApi) -> None:
    api.fail_next.append(structured("42501", "permission denied for table people"))
    with pytest.raises(SourceAuthError, match="GRANT SELECT ON TABLE") as err, source(api).read(PEOPLE):
        pass
    assert "permission denied for table people" in str(err.value)


def test_the_statement_timeout_ends_the_query(api: FireboltApi) -> None:
    api.execution_seconds = 2.0
    with (
        pytest.raises(SourceError, match=r"query_timeout_seconds \(0.3\)") as err,
        source(api, query_timeout_seconds=0.3).read(NUMBERS) as stream,
    ):
        list(stream)
    assert err.value.transient is False
    assert not isinstance(err.value, ModelError)


def test_a_closed_port_is_a_transient_connection_error(api: FireboltApi) -> None:
    settings = firebolt_settings(api)
    api.close()
    with pytest.raises(SourceConnectionError, match="cannot reach Firebolt account 'acme'") as err:
        FireboltSource(FireboltSource.Settings(**settings)).test_connection()
    assert err.value.transient is True
