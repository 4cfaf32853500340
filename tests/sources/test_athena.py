"""Amazon Athena specifics, against the fake Athena of ``athena_fixtures`` (Athena's API over loopback HTTP,
answered by FakeEngine, its result files in moto's S3 server): types, the queries sent, the result file
streamed, work groups and output locations, the query timeout, credentials and roles, and errors that name
what to fix."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import time
from decimal import Decimal
from typing import Any

import botocore.exceptions
import pyarrow as pa
import pytest

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ConfigError, ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources import athena
from smartingest.sources.athena import AthenaSource, QueryFailed
from smartingest.sources.registry import open_source

from .athena_fixtures import ACCESS_KEY, DATABASE, SECRET_KEY, AthenaFake, athena_settings

UTC = dt.UTC


def source(fake: AthenaFake, **overrides: Any) -> AthenaSource:
    return AthenaSource(AthenaSource.Settings(**athena_settings(fake, **overrides)))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="athena", sql=sql, primary_key=pk)


def table(name: str) -> ModelConfig:
    return ModelConfig(source="athena", table=name, primary_key="id")


TYPED = (
    "SELECT CAST(4 AS BIGINT) AS id, CAST(1 AS TINYINT) AS b, CAST(2 AS SMALLINT) AS s, CAST(3 AS INTEGER) AS i,"
    " CAST(1.5 AS REAL) AS f, CAST(2.5 AS DOUBLE) AS d, CAST('12.3456' AS DECIMAL(20,4)) AS amount, 'Zoë' AS t,"
    " '' AS empty, CAST(NULL AS VARCHAR) AS nothing, true AS flag, DATE '2024-01-02' AS day,"
    " TIMESTAMP '2024-01-02 03:04:05.123' AS local_at,"
    " CAST(TIMESTAMP '2024-01-02 03:04:05.123' AS TIMESTAMP WITH TIME ZONE) AS at,"
    " CAST('{\"a\": [1, 2]}' AS JSON) AS doc"
)


def test_each_column_type_is_planned_from_athena_s_description(athena_fake: AthenaFake) -> None:
    src = source(athena_fake)
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
        "empty": pa.string(),
        "nothing": pa.string(),
        "flag": pa.bool_(),
        "day": pa.date32(),
        "local_at": pa.timestamp("us"),
        "at": pa.timestamp("us", tz="UTC"),
        "doc": pa.string(),
    }
    assert preview.schema.field("doc").metadata == JSON_TEXT
    row = preview.to_pylist()[0]
    assert row["amount"] == Decimal("12.3456")
    assert (row["t"], row["empty"], row["nothing"]) == ("Zoë", "", None)  # "" quoted, NULL an empty field
    assert row["local_at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123000)
    assert row["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert json.loads(row["doc"]) == {"a": [1, 2]}
    assert src.schema(query(TYPED)) == preview.schema


@pytest.mark.parametrize(
    ("sql", "cast"),
    [
        ("SELECT 1 AS id, ARRAY[1, 2] AS tags", r"CAST\(tags AS JSON\)"),
        ("SELECT 1 AS id, MAP(ARRAY['a'], ARRAY[1]) AS m", r"CAST\(m AS JSON\)"),
        ("SELECT 1 AS id, from_hex('00ff') AS raw", r"to_hex\(raw\)"),
    ],
)
def test_a_type_athena_writes_as_its_own_text_names_the_cast(athena_fake: AthenaFake, sql: str, cast: str) -> None:
    with pytest.raises(ModelError, match=f"is of Athena type .*, which is not read as such: select {cast}"):
        source(athena_fake).preview(query(sql))


def test_timestamps_with_a_zone_are_read_as_the_instant() -> None:
    values = pa.array(
        [
            "2024-01-02 03:04:05.000 UTC",
            "2024-07-01 12:00:00.500 Europe/Berlin",
            "2024-01-02 03:04:05.000 +05:30",
            None,
        ]
    )
    instants = athena._zoned_instants(values, "at", "model x").to_pylist()
    assert instants == [
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        dt.datetime(2024, 7, 1, 10, 0, 0, 500000, tzinfo=UTC),  # Berlin in summer: UTC+2
        dt.datetime(2024, 1, 1, 21, 34, 5, tzinfo=UTC),
        None,
    ]
    with pytest.raises(ModelError, match="column 'at' holds a timestamp that is not read as one"):
        athena._zoned_instants(pa.array(["yesterday"]), "at", "model x")


def test_the_result_file_is_parsed_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "\n".join(f'"{i}","n{i}"' for i in range(1, 200_001))
    data = f'"id","label"\n{rows}\n'.encode()

    class Body(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            self.read_so_far = self.tell()
            return chunk

    body = Body(data)
    monkeypatch.setattr(athena, "_CSV_BLOCK_BYTES", 16 * 1024)
    planned = athena._plan(
        {"ColumnInfo": [{"Name": "id", "Type": "integer"}, {"Name": "label", "Type": "varchar"}]}, "model x"
    )
    batches = athena._csv_batches(body, planned, "model x")
    first = next(batches)
    assert 0 < first.num_rows < 200_000
    # pyarrow reads a bounded number of blocks ahead; the rest is read as the consumer asks for it.
    assert body.read_so_far < len(data) / 2
    assert first.num_rows + sum(b.num_rows for b in batches) == 200_000


def test_the_query_runs_in_the_work_group_with_catalog_database_and_output(athena_fake: AthenaFake) -> None:
    source(athena_fake).preview(table(f"{DATABASE}.people"), limit=5)
    _, body = [r for r in athena_fake.requests if r[0] == "StartQueryExecution"][-1]
    assert body["QueryString"] == f'SELECT * FROM (\nSELECT * FROM "{DATABASE}"."people"\n) m LIMIT 5'
    assert body["QueryExecutionContext"] == {"Catalog": "AwsDataCatalog", "Database": DATABASE}
    assert body["WorkGroup"] == "primary"
    assert body["ResultConfiguration"] == {"OutputLocation": "s3://athena-results/results/"}


def test_the_work_group_s_own_output_location_serves_when_no_staging_dir_is_set(athena_fake: AthenaFake) -> None:
    assert source(athena_fake, s3_staging_dir=None, work_group="analytics").preview(table("people")).num_rows == 3
    with pytest.raises(SourceConnectionError, match="check s3_staging_dir") as err:
        source(athena_fake, s3_staging_dir=None).test_connection()  # primary has none
    assert err.value.transient is False
    assert "No output location provided" in str(err.value)


def test_an_unknown_work_group_names_the_setting(athena_fake: AthenaFake) -> None:
    with pytest.raises(SourceConnectionError, match="check work_group") as err:
        source(athena_fake, work_group="nosuch").test_connection()
    assert err.value.transient is False


def test_a_query_over_its_timeout_is_stopped_and_names_the_setting(athena_fake: AthenaFake) -> None:
    athena_fake.hold = True
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(1\)") as err:
        source(athena_fake, query_timeout_seconds=1).preview(table("people"))
    assert time.monotonic() - started < 4
    assert err.value.transient is False
    last = list(athena_fake.queries.values())[-1]
    assert last.id in athena_fake.stopped and last.state == "CANCELLED"


def test_a_wrong_access_key_is_an_auth_error_that_does_not_show_the_secret(athena_fake: AthenaFake) -> None:
    src = source(athena_fake, aws_access_key_id="AKIDNOTKNOWN0000", aws_secret_access_key="wr0ng-Secret-value")
    with pytest.raises(SourceAuthError, match="refused the credentials") as err:
        src.test_connection()
    assert "UnrecognizedClientException" in str(err.value)
    assert "wr0ng-Secret-value" not in str(err.value) and "wr0ng-Secret-value" not in repr(src)
    assert SECRET_KEY not in repr(source(athena_fake))


def test_a_role_is_assumed_through_sts(athena_fake: AthenaFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", athena_fake.s3_url)  # moto's server answers STS too
    src = source(athena_fake, role_arn="arn:aws:iam::123456789012:role/smartingest-reader", external_id="x-1")
    assert src.preview(table("people")).num_rows == 3
    assert athena_fake.access_keys[-1].startswith("ASIA")  # the role's temporary key, not ACCESS_KEY
    assert athena_fake.access_keys[-1] != ACCESS_KEY


def test_a_denied_action_names_the_iam_policy(athena_fake: AthenaFake) -> None:
    athena_fake.denied_actions = {"StartQueryExecution"}
    with pytest.raises(SourceAuthError, match="athena:StartQueryExecution") as err:
        source(athena_fake).test_connection()
    assert "the IAM policy needs athena:StartQueryExecution" in str(err.value)


def test_a_table_denied_by_the_catalog_names_the_iam_policy(athena_fake: AthenaFake) -> None:
    athena_fake.denied_tables = {"people"}
    with pytest.raises(SourceAuthError, match="glue:GetTable") as err, source(athena_fake).read(table("people")):
        pass
    assert "glue:GetDatabase(s), GetTable(s)" in str(err.value)


def test_sql_errors_carry_athena_s_reason(athena_fake: AthenaFake) -> None:
    src = source(athena_fake)
    cases = {
        "SELEC id FROM people": "has a syntax error: SYNTAX_ERROR",
        "SELECT * FROM nosuch": "TABLE_NOT_FOUND: .*nosuch",
        "SELECT nosuch_column AS id FROM people": "COLUMN_NOT_FOUND: .*nosuch_column",
    }
    for sql, reason in cases.items():
        with pytest.raises(ModelError, match=reason):
            src.preview(query(sql))


def test_a_closed_port_is_a_transient_connection_error(athena_fake: AthenaFake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceConnectionError, match="cannot reach Athena in us-east-1") as err:
        source(athena_fake, endpoint_url=f"http://127.0.0.1:{port}").test_connection()
    assert err.value.transient is True


def test_error_mapping_of_query_states_and_client_errors() -> None:
    src = AthenaSource(AthenaSource.Settings(region="eu-west-1"))
    model = query("SELECT 1 AS id")
    cancelled = src._translate(QueryFailed("CANCELLED", "Query cancelled by user", {}), model)
    assert type(cancelled) is SourceError and cancelled.transient is True
    timed_out = src._translate(QueryFailed("FAILED", "Query timeout", {"ErrorCategory": 1}), model)
    assert type(timed_out) is SourceError and timed_out.transient is False
    assert "work group 'primary'" in str(timed_out)
    retryable = src._translate(QueryFailed("FAILED", "Query exhausted resources", {"Retryable": True}), model)
    assert type(retryable) is SourceError and retryable.transient is True
    user = src._translate(QueryFailed("FAILED", "DIVISION_BY_ZERO: Division by zero", {"ErrorCategory": 2}), model)
    assert isinstance(user, ModelError)
    throttled = botocore.exceptions.ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "StartQueryExecution"
    )
    mapped = src._translate(throttled, model)
    assert type(mapped) is SourceError and mapped.transient is True
    no_bucket = botocore.exceptions.ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "GetObject")
    assert isinstance(src._translate(no_bucket, model), SourceConnectionError)
    missing = src._translate(botocore.exceptions.NoCredentialsError(), model)
    assert isinstance(missing, SourceAuthError) and "default chain" in str(missing)
    assert src._translate(ValueError("a bug"), model) is None


def test_settings() -> None:
    settings = AthenaSource.Settings(region="eu-west-1", s3_staging_dir="s3://bucket/athena")
    assert settings.s3_staging_dir == "s3://bucket/athena/"
    assert (settings.work_group, settings.catalog, settings.database) == ("primary", "AwsDataCatalog", "default")

    def refused(message: str, **keys: Any) -> None:
        with pytest.raises(ConfigError, match=message):
            open_source("athena", SourceConfig(type="athena", **({"region": "eu-west-1"} | keys)))

    refused("is not an S3 location", s3_staging_dir="bucket/athena")
    refused("give aws_access_key_id and aws_secret_access_key together", aws_access_key_id="AKID")
    refused("aws_session_token is given without aws_access_key_id", aws_session_token="t")
    refused("external_id is given without role_arn", external_id="x")
    refused("region", region=None)
