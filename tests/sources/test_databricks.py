"""Databricks specifics, against the fake workspace of ``databricks_fixtures`` (Databricks' Statement Execution
API over loopback HTTP, answered by FakeEngine): types, the statements sent, chunks streamed one at a time,
the query timeout, OAuth, and errors that name what to fix."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ConfigError, ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.databricks import DatabricksSource, StatementFailed
from smartingest.sources.registry import open_source

from .databricks_fixtures import CLIENT_ID, CLIENT_SECRET, SCHEMA, TOKEN, WAREHOUSE, DatabricksFake, databricks_settings

UTC = dt.UTC


def source(fake: DatabricksFake, **overrides: Any) -> DatabricksSource:
    return DatabricksSource(DatabricksSource.Settings(**databricks_settings(fake, **overrides)))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="dbx", sql=sql, primary_key=pk)


def table(name: str) -> ModelConfig:
    return ModelConfig(source="dbx", table=name, primary_key="id")


TYPED = (
    "SELECT CAST(4 AS BIGINT) AS id, CAST(1 AS TINYINT) AS b, CAST(2 AS SMALLINT) AS s, CAST(3 AS INT) AS i,"
    " CAST(1.5 AS FLOAT) AS f, CAST(2.5 AS DOUBLE) AS d, CAST('12.3456' AS DECIMAL(20,4)) AS amount, 'Zoë' AS t,"
    " true AS flag, DATE'2024-01-02' AS day, TIMESTAMP'2024-01-02 03:04:05.123456' AS at,"
    " CAST('2024-01-02 03:04:05' AS TIMESTAMP_NTZ) AS local_at, X'00ff' AS raw, ARRAY(1, 2) AS tags,"
    " NAMED_STRUCT('x', 1, 'label', 'one') AS point, MAP('a', 1) AS m, NULL AS nothing"
)


def test_each_column_type_is_planned_from_the_manifest(databricks_fake: DatabricksFake) -> None:
    src = source(databricks_fake)
    preview = src.preview(query(TYPED))
    assert dict(zip(preview.schema.names, preview.schema.types, strict=True)) == {
        "id": pa.int64(),
        "b": pa.int8(),
        "s": pa.int16(),
        "i": pa.int32(),
        "f": pa.float32(),
        "d": pa.float64(),
        "amount": pa.decimal128(20, 4),
        "t": pa.string(),
        "flag": pa.bool_(),
        "day": pa.date32(),
        "at": pa.timestamp("us", tz="UTC"),  # sent in the session's zone (Etc/UTC): the instant
        "local_at": pa.timestamp("us"),
        "raw": pa.binary(),
        "tags": pa.string(),
        "point": pa.string(),
        "m": pa.string(),
        "nothing": pa.string(),
    }
    for name in ("tags", "point", "m"):  # nested values travel as JSON text, sent on parsed
        assert preview.schema.field(name).metadata == JSON_TEXT
    assert preview.schema.field("t").metadata is None
    row = preview.to_pylist()[0]
    assert row["amount"] == Decimal("12.3456")
    assert row["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert row["local_at"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert row["raw"] == b"\x00\xff"
    assert (json.loads(row["tags"]), json.loads(row["point"]), json.loads(row["m"])) == (
        [1, 2],
        {"x": 1, "label": "one"},
        {"a": 1},
    )
    assert src.schema(query(TYPED)) == preview.schema


def test_a_type_without_a_plan_names_the_cast() -> None:
    from smartingest.sources.databricks import _plan

    answer = {"manifest": {"schema": {"columns": [{"name": "g", "position": 0, "type_name": "GEOGRAPHY"}]}}}
    with pytest.raises(ModelError, match=r"column 'g' is of Databricks type GEOGRAPHY.*CAST\(g AS STRING\)"):
        _plan(answer, "model x")


def test_statements_ask_for_arrow_links_on_the_warehouse_with_catalog_and_schema(
    databricks_fake: DatabricksFake,
) -> None:
    src = source(databricks_fake)
    src.preview(table(f"{SCHEMA}.people"), limit=5)
    method, path, body = databricks_fake.requests[-1]
    assert (method, path) == ("POST", "/api/2.0/sql/statements")
    assert body["statement"] == f"SELECT * FROM (\nSELECT * FROM `{SCHEMA}`.`people`\n) m LIMIT 5"
    assert body["warehouse_id"] == WAREHOUSE
    assert (body["format"], body["disposition"]) == ("ARROW_STREAM", "EXTERNAL_LINKS")
    assert (body["catalog"], body["schema"]) == ("main", SCHEMA)
    assert body["on_wait_timeout"] == "CONTINUE"


def test_chunks_are_fetched_one_at_a_time_as_the_read_goes(databricks_fake: DatabricksFake) -> None:
    src = source(databricks_fake)
    before = len(databricks_fake.downloads)
    with src.read(table("numbers"), batch_rows=300) as stream:
        first = next(stream)
        statement = list(databricks_fake.statements)[-1]
        # One chunk of the three fetched so far: the next is asked for when the read gets there.
        assert databricks_fake.downloads[before:] == [f"{statement}/0"]
        rest = list(stream)
    assert databricks_fake.downloads[before:] == [f"{statement}/{i}" for i in range(3)]
    sizes = [b.num_rows for b in [first, *rest]]
    assert max(sizes) <= 300 and sum(sizes) == 5000
    # The fake sends chunks of 2000 rows in wire batches of 512: each cut to batch_rows, never merged.
    assert 512 - 300 in sizes


def test_an_expired_link_is_asked_for_again(databricks_fake: DatabricksFake) -> None:
    databricks_fake.expire_links = True
    rows = source(databricks_fake).preview(table("numbers"), limit=5000)
    assert rows.num_rows == 5000
    assert rows.column("id").to_pylist() == list(range(1, 5001))


def test_a_link_refused_again_is_a_transient_connection_error(databricks_fake: DatabricksFake) -> None:
    databricks_fake.refuse_links = True
    with pytest.raises(SourceConnectionError, match=r"chunk 0 of the result could not be fetched .*HTTP 403") as err:
        source(databricks_fake).preview(table("people"))
    assert err.value.transient is True
    assert not isinstance(err.value, SourceAuthError)  # the object store's refusal, not the workspace's


def test_a_statement_over_its_timeout_is_cancelled_and_names_the_setting(databricks_fake: DatabricksFake) -> None:
    databricks_fake.hold = True
    src = source(databricks_fake, query_timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(1\)") as err:
        src.preview(table("people"))
    assert time.monotonic() - started < 4
    assert err.value.transient is False
    submitted = [s for s in databricks_fake.statements.values() if "people" in s.sql][-1]
    assert submitted.id in databricks_fake.cancelled
    assert submitted.state == "CANCELED"
    posted = [b for m, p, b in databricks_fake.requests if p == "/api/2.0/sql/statements"][-1]
    assert posted["wait_timeout"] == "0s"  # below 5 s the first answer does not wait: polling keeps the limit


def test_oauth_machine_to_machine(databricks_fake: DatabricksFake) -> None:
    issued = databricks_fake.tokens_issued
    src = source(databricks_fake, access_token=None, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert src.preview(table("people")).num_rows == 3
    assert databricks_fake.tokens_issued == issued + 1  # one token for the call, not one per request
    wrong = source(databricks_fake, access_token=None, client_id=CLIENT_ID, client_secret="n0t-the-secret")
    with pytest.raises(SourceAuthError, match="check client_id and client_secret") as err:
        wrong.test_connection()
    assert "invalid_client" in str(err.value)
    assert "n0t-the-secret" not in str(err.value) and "n0t-the-secret" not in repr(wrong)


def test_a_wrong_token_is_an_auth_error_that_does_not_show_it(databricks_fake: DatabricksFake) -> None:
    src = source(databricks_fake, access_token="dapi-wrong-0000")
    with pytest.raises(SourceAuthError, match=r"refused the credentials \(check access_token\)") as err:
        src.test_connection()
    assert "Invalid access token" in str(err.value)
    assert "dapi-wrong-0000" not in str(err.value) and TOKEN not in repr(source(databricks_fake))


def test_an_unknown_warehouse_names_http_path(databricks_fake: DatabricksFake) -> None:
    src = source(databricks_fake, http_path="/sql/1.0/warehouses/nosuch0warehouse")
    with pytest.raises(SourceConnectionError, match="no SQL warehouse 'nosuch0warehouse' \\(check http_path") as err:
        src.test_connection()
    assert err.value.transient is False


def test_no_permission_on_the_warehouse_names_can_use(databricks_fake: DatabricksFake) -> None:
    databricks_fake.no_warehouse_permission = True
    with pytest.raises(SourceAuthError, match=f"CAN USE permission on SQL warehouse {WAREHOUSE}"):
        source(databricks_fake).test_connection()


def test_no_privilege_on_a_table_names_the_grants(databricks_fake: DatabricksFake) -> None:
    databricks_fake.denied_tables = {"people"}
    with pytest.raises(SourceAuthError) as err, source(databricks_fake).read(table("people")):
        pass
    assert "INSUFFICIENT_PERMISSIONS" in str(err.value)
    assert f"GRANT SELECT ON SCHEMA main.{SCHEMA} TO `<principal>`" in str(err.value)
    assert "GRANT USE CATALOG ON CATALOG main" in str(err.value)


def test_sql_errors_carry_the_error_class(databricks_fake: DatabricksFake) -> None:
    src = source(databricks_fake)
    cases = {
        "SELEC id FROM people": "PARSE_SYNTAX_ERROR",
        "SELECT * FROM nosuch": "TABLE_OR_VIEW_NOT_FOUND",
        "SELECT nosuch_column AS id FROM people": "UNRESOLVED_COLUMN",
    }
    for sql, error_class in cases.items():
        with pytest.raises(ModelError, match=error_class):
            src.preview(query(sql))


def test_a_closed_port_is_a_transient_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = DatabricksSource(
        DatabricksSource.Settings(host=f"http://127.0.0.1:{port}", warehouse_id=WAREHOUSE, access_token=TOKEN)
    )
    with pytest.raises(SourceConnectionError, match=f"cannot reach Databricks workspace http://127.0.0.1:{port}") as e:
        src.test_connection()
    assert e.value.transient is True


def test_error_mapping_of_statement_states() -> None:
    settings = DatabricksSource.Settings(host="dbc-1.cloud.databricks.com", warehouse_id=WAREHOUSE, access_token=TOKEN)
    src = DatabricksSource(settings)
    model = query("SELECT 1 AS id")
    cancelled = src._translate(StatementFailed("CANCELED", "", "", "the statement ended CANCELED"), model)
    assert type(cancelled) is SourceError and cancelled.transient is True
    deadline = src._translate(StatementFailed("FAILED", "DEADLINE_EXCEEDED", "", "timed out"), model)
    assert deadline is not None and deadline.transient is False and "query_timeout_seconds" in str(deadline)
    division = src._translate(StatementFailed("FAILED", "BAD_REQUEST", "22012", "[DIVIDE_BY_ZERO] ..."), model)
    assert isinstance(division, ModelError)
    busy = src._translate(StatementFailed("FAILED", "TEMPORARILY_UNAVAILABLE", "", "warehouse stopping"), model)
    assert type(busy) is SourceError and busy.transient is True
    assert src._translate(ValueError("a bug"), model) is None


def test_settings() -> None:
    settings = DatabricksSource.Settings(
        host="adb-1234.5.azuredatabricks.net/", http_path="/sql/1.0/warehouses/abc123", access_token="t"
    )
    assert (settings.host, settings.warehouse_id) == ("https://adb-1234.5.azuredatabricks.net", "abc123")
    assert settings.query_timeout_seconds is None and settings.connect_timeout_seconds == 10

    def refused(message: str, **keys: Any) -> None:
        keys = {"host": "dbc-1.cloud.databricks.com", "warehouse_id": "abc"} | keys
        with pytest.raises(ConfigError, match=message):
            open_source("dbx", SourceConfig(type="databricks", **keys))

    refused("give exactly one of access_token and client_id", access_token="t", client_id="c", client_secret="s")
    refused("give exactly one of access_token and client_id")
    refused("needs both client_id and client_secret", client_id="c")
    refused("give the SQL warehouse", warehouse_id=None, access_token="t")
    refused("is not a SQL warehouse's", warehouse_id=None, http_path="/sql/protocolv1/o/1/0123-abc", access_token="t")
    refused("name different warehouses", http_path="/sql/1.0/warehouses/other", access_token="t")
    refused("would send the token in clear", host="http://dbc-1.cloud.databricks.com", access_token="t")
