"""Google BigQuery specifics, against the fakes of ``bigquery_fixtures`` (BigQuery's REST API over loopback
HTTP and its Storage Read API over loopback gRPC, answered by FakeEngine): types, the jobs and read sessions
asked for, dry runs, the bytes-billed limit, the query timeout, credentials, and errors that name what to
fix."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from decimal import Decimal
from typing import Any

import google.api_core.exceptions as api_exceptions
import pyarrow as pa
import pytest

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ConfigError, ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources.bigquery import BigQuerySource
from smartingest.sources.registry import open_source

from .bigquery_fixtures import ANON, DATASET, MIN_BILLED, PROJECT, BigQueryFake, bigquery_settings

UTC = dt.UTC


def source(fake: BigQueryFake, **overrides: Any) -> BigQuerySource:
    return BigQuerySource(BigQuerySource.Settings(**bigquery_settings(fake, **overrides)))


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="bq", sql=sql, primary_key=pk)


def table(name: str) -> ModelConfig:
    return ModelConfig(source="bq", table=name, primary_key="id")


def posted_jobs(fake: BigQueryFake) -> list[dict[str, Any]]:
    return [body for method, path, body in fake.requests if method == "POST" and path.endswith("/jobs")]


TYPED = (
    "SELECT CAST(4 AS INT64) AS id, CAST(1.5 AS FLOAT64) AS f, CAST('12.345' AS NUMERIC) AS amount,"
    " CAST('1.5' AS BIGNUMERIC) AS big, 'Zoë' AS t, true AS flag, DATE '2024-01-02' AS day,"
    " DATETIME '2024-01-02 03:04:05.123456' AS local_at, TIMESTAMP '2024-01-02 03:04:05.123456+00' AS at,"
    " TIME '03:04:05' AS clock, JSON '{\"a\": [1, 2]}' AS doc, [1, 2] AS tags,"
    " STRUCT(1 AS x, 'one' AS label) AS point"
)


def test_each_column_type_is_planned_from_the_result_schema(bigquery_fake: BigQueryFake) -> None:
    src = source(bigquery_fake)
    preview = src.preview(query(TYPED))
    assert dict(zip(preview.schema.names, preview.schema.types, strict=True)) == {
        "id": pa.int64(),
        "f": pa.float64(),
        "amount": pa.decimal128(38, 9),  # NUMERIC
        "big": pa.float64(),  # BIGNUMERIC: beyond decimal128's 38 digits
        "t": pa.string(),
        "flag": pa.bool_(),
        "day": pa.date32(),
        "local_at": pa.timestamp("us"),  # DATETIME
        "at": pa.timestamp("us", tz="UTC"),  # TIMESTAMP
        "clock": pa.time64("us"),
        "doc": pa.string(),
        "tags": pa.list_(pa.int64()),
        "point": pa.struct([pa.field("x", pa.int64()), pa.field("label", pa.string())]),
    }
    assert preview.schema.field("doc").metadata == JSON_TEXT
    assert preview.schema.field("t").metadata is None
    row = preview.to_pylist()[0]
    assert (row["amount"], row["big"]) == (Decimal("12.345"), 1.5)
    assert row["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert row["local_at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert (row["clock"], row["tags"], row["point"]) == (dt.time(3, 4, 5), [1, 2], {"x": 1, "label": "one"})
    assert json.loads(row["doc"]) == {"a": [1, 2]}
    assert src.schema(query(TYPED)) == preview.schema


def test_a_type_without_a_plan_names_the_cast() -> None:
    from google.cloud import bigquery

    from smartingest.sources.bigquery import _plan

    with pytest.raises(ModelError, match=r"column 'span' holds BigQuery type RANGE.*CAST\(span AS STRING\)"):
        _plan([bigquery.SchemaField("span", "RANGE")], "model x")


def test_schema_is_a_dry_run(bigquery_fake: BigQueryFake) -> None:
    jobs = len(bigquery_fake.jobs)
    schema = source(bigquery_fake).schema(table("people"))
    assert schema.names == ["id", "name", "balance", "score", "active", "born", "updated_at", "attrs"]
    assert posted_jobs(bigquery_fake)[-1]["configuration"]["dryRun"] is True
    assert len(bigquery_fake.jobs) == jobs  # no job ran, nothing was billed


def test_the_job_carries_the_dataset_limits_and_timeout(bigquery_fake: BigQueryFake) -> None:
    src = source(bigquery_fake, maximum_bytes_billed=10**9, query_timeout_seconds=600)
    src.preview(table(f"{DATASET}.people"), limit=5)
    configuration = posted_jobs(bigquery_fake)[-1]["configuration"]
    assert configuration["query"]["query"] == f"SELECT * FROM (\nSELECT * FROM `{DATASET}`.`people`\n) m LIMIT 5"
    assert configuration["query"]["useLegacySql"] is False
    assert configuration["query"]["defaultDataset"] == {"projectId": PROJECT, "datasetId": DATASET}
    assert configuration["query"]["maximumBytesBilled"] == str(10**9)
    assert configuration["jobTimeoutMs"] == str(600_000)
    assert configuration["labels"] == {"client": "smartingest"}


def test_rows_come_through_a_storage_read_session_on_the_result_table(bigquery_fake: BigQueryFake) -> None:
    with source(bigquery_fake).read(table("numbers"), batch_rows=300) as stream:
        batches = list(stream)
    request = bigquery_fake.read_sessions[-1]
    job = list(bigquery_fake.jobs)[-1]
    assert request.parent == f"projects/{PROJECT}"
    assert request.read_session.table == f"projects/{PROJECT}/datasets/{ANON}/tables/anon{job}"
    assert request.read_session.data_format == request.read_session.data_format.ARROW
    assert request.max_stream_count == 1
    assert request.read_session.read_options.arrow_serialization_options.buffer_compression.name == "LZ4_FRAME"
    sizes = [b.num_rows for b in batches]
    # The fake streams responses of 1000 rows: each cut to batch_rows, never merged.
    assert max(sizes) <= 300 and sum(sizes) == 5000 and 1000 - 900 in sizes


def test_a_query_over_the_bytes_billed_limit_names_the_setting(bigquery_fake: BigQueryFake) -> None:
    src = source(bigquery_fake, maximum_bytes_billed=1000)
    with pytest.raises(SourceError, match=r"would bill more than maximum_bytes_billed \(1000\)") as err:
        src.preview(table("people"))
    assert err.value.transient is False
    assert f"{MIN_BILLED} or higher required" in str(err.value)
    assert not isinstance(err.value, ModelError | SourceAuthError)


def test_a_job_over_its_timeout_is_cancelled_and_names_the_setting(bigquery_fake: BigQueryFake) -> None:
    bigquery_fake.hold = True
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(1\)") as err:
        source(bigquery_fake, query_timeout_seconds=1).preview(table("people"))
    assert time.monotonic() - started < 5
    assert err.value.transient is False
    job = list(bigquery_fake.jobs.values())[-1]
    assert job.id in bigquery_fake.cancelled and job.state == "DONE"


def test_no_permission_to_run_jobs_names_the_roles(bigquery_fake: BigQueryFake) -> None:
    bigquery_fake.denied_jobs = True
    with pytest.raises(SourceAuthError, match=r"bigquery\.jobs\.create permission") as err:
        source(bigquery_fake).test_connection()
    assert "roles/bigquery.dataViewer, roles/bigquery.jobUser and roles/bigquery.readSessionUser" in str(err.value)


def test_no_permission_to_open_read_sessions_names_the_roles(bigquery_fake: BigQueryFake) -> None:
    bigquery_fake.denied_read_sessions = True
    with (
        pytest.raises(SourceAuthError, match=r"bigquery\.readsessions\.create") as err,
        source(bigquery_fake).read(table("people")),
    ):
        pass
    assert "roles/bigquery.readSessionUser" in str(err.value)


def test_a_key_the_token_endpoint_refuses_is_an_auth_error_that_does_not_show_it(bigquery_fake: BigQueryFake) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = json.loads(bigquery_fake.credentials_json()) | {"private_key": pem}
    src = source(bigquery_fake, credentials_json=json.dumps(key))
    with pytest.raises(SourceAuthError, match="the credentials cannot be used") as err:
        src.test_connection()
    assert "invalid_grant" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value) and "PRIVATE KEY" not in repr(src)


def test_a_closed_port_is_a_transient_connection_error(bigquery_fake: BigQueryFake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = source(bigquery_fake, api_endpoint=f"http://127.0.0.1:{port}", request_timeout_seconds=1)
    with pytest.raises(SourceConnectionError, match=f"cannot reach BigQuery project '{PROJECT}'") as err:
        src.test_connection()
    assert err.value.transient is True


def test_sql_errors_carry_bigquery_s_text(bigquery_fake: BigQueryFake) -> None:
    src = source(bigquery_fake)
    cases = {
        "SELEC id FROM people": "has a syntax error: Syntax error",
        "SELECT * FROM nosuch": f"Not found: Table {PROJECT}:{DATASET}.nosuch",
        "SELECT nosuch_column AS id FROM people": "Unrecognized name: nosuch_column",
    }
    for sql, text in cases.items():
        with pytest.raises(ModelError, match=text):
            src.preview(query(sql))


def test_error_mapping_of_reasons() -> None:
    src = BigQuerySource(BigQuerySource.Settings(project=PROJECT))
    model = query("SELECT 1 AS id")

    def error(cls: type[api_exceptions.GoogleAPICallError], reason: str, message: str) -> Any:
        return src._translate(cls(message, errors=[{"reason": reason, "message": message}]), model)

    limited = error(api_exceptions.Forbidden, "rateLimitExceeded", "Exceeded rate limits: too many table updates")
    assert type(limited) is SourceError and limited.transient is True
    backend = error(api_exceptions.InternalServerError, "backendError", "Backend error")
    assert type(backend) is SourceError and backend.transient is True
    timed_out = error(api_exceptions.BadRequest, "stopped", "Job execution was cancelled: Job timed out after 1s")
    assert type(timed_out) is SourceError and timed_out.transient is False
    assert "query_timeout_seconds" in str(timed_out)
    project = error(api_exceptions.NotFound, "notFound", "Not found: Project nosuch-project")
    assert isinstance(project, SourceConnectionError) and project.transient is False and "check project" in str(project)
    unauthorized = src._translate(api_exceptions.Unauthorized("Request had invalid authentication credentials."))
    assert isinstance(unauthorized, SourceAuthError)
    assert src._translate(ValueError("a bug"), model) is None


def test_settings(bigquery_fake: BigQueryFake) -> None:
    settings = BigQuerySource.Settings(project=PROJECT)
    assert (settings.dataset, settings.maximum_bytes_billed, settings.request_timeout_seconds) == (None, None, 60)

    def refused(message: str, **keys: Any) -> None:
        with pytest.raises(ConfigError, match=message):
            open_source("bq", SourceConfig(type="bigquery", **({"project": PROJECT} | keys)))

    refused("give at most one of credentials_json and credentials_path", credentials_json="{}", credentials_path="k")
    refused("credentials_json is not JSON", credentials_json="not json")
    refused("maximum_bytes_billed", maximum_bytes_billed=0)
    refused("project", project=None)


def test_a_dataset_in_another_project_is_the_default_as_written(bigquery_fake: BigQueryFake) -> None:
    src = source(bigquery_fake, dataset=f"{PROJECT}.{DATASET}")
    src.preview(table("people"))
    assert posted_jobs(bigquery_fake)[-1]["configuration"]["query"]["defaultDataset"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
    }
