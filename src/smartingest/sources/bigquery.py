"""Google BigQuery connector: queries run as jobs by google-cloud-bigquery, their results read as Arrow record
batches through the BigQuery Storage Read API (gRPC).

A read:

1. the model's query runs as a query job (``jobs.insert``) with the default dataset, ``maximum_bytes_billed``
   and, from ``query_timeout_seconds``, the job's own timeout; the client waits for it (``getQueryResults``)
   and cancels it when it runs past that long;
2. the job's result schema (its BigQuery types) plans each column's plain Arrow type (``_plan``), before the
   first row, so an empty result has its types and every batch reads the same;
3. the rows are read from the job's result table through the Storage Read API: a read session of one
   stream, whose responses are serialized Arrow record batches (their buffers LZ4-compressed), each read as
   it arrives; memory holds one response, never the whole result. (google-cloud-bigquery's own
   ``to_arrow_iterable`` does the same with a thread per stream, but that path is deprecated in favour of
   pandas-gbq, and its threads outlive a read left early.)

``schema`` is a dry run (BigQuery plans the query and bills nothing); ``tables`` lists the project's
datasets and tables through the API (free, where a query of INFORMATION_SCHEMA is billed).

BigQuery has no read-only session: the base class refuses a model that would write, and the service account
should hold only the roles docs/sources.md lists. Credentials: a service account's JSON key (the text, e.g.
from ``${GOOGLE_CREDENTIALS}``, or a file), else Application Default Credentials.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import google.api_core.exceptions as api_exceptions
import google.auth
import google.auth.exceptions
import grpc
import pyarrow as pa
import requests
import requests.adapters
import requests.exceptions
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.transport.requests import AuthorizedSession
from google.cloud import bigquery, bigquery_storage_v1
from google.cloud.bigquery.retry import DEFAULT_RETRY
from google.cloud.bigquery_storage_v1 import types as storage_types
from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport
from google.oauth2 import service_account
from pydantic import Field, SecretStr, model_validator

from smartingest.config.models import ModelConfig, Strict
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    close_quietly,
    one_line,
    rebatch,
    scrub_secrets,
    source_error,
    translate_errors,
)
from smartingest.sources._result_plan import ResultColumn, conformed, planned_schema
from smartingest.sources.base import MAX_TABLES, describe_model
from smartingest.sources.sql import SqlConnector, loading_statements, sql_literal

_SCOPES = ("https://www.googleapis.com/auth/bigquery",)
_UTC_US = pa.timestamp("us", tz="UTC")
_LOAD_ROWS = 2000  # rows per INSERT of the Lightning engine's loads
_LZ4 = storage_types.ArrowSerializationOptions.CompressionCodec.LZ4_FRAME  # Arrow buffers compressed on the wire
_ROLES = "roles/bigquery.dataViewer, roles/bigquery.jobUser and roles/bigquery.readSessionUser"


class BigQuerySettings(Strict):
    """Connection settings of a BigQuery source (the keys of ``sources.NAME`` besides type and engine)."""

    project: str = Field(description="Project the query jobs run (and are billed) in.")
    dataset: str | None = Field(
        None, description="Default dataset of unqualified table names (dataset, or project.dataset)."
    )
    location: str | None = Field(None, description="Location of the datasets (US, EU, europe-west1...).")
    credentials_json: SecretStr | None = Field(
        None,
        description="A service account's JSON key, as text (e.g. ${GOOGLE_CREDENTIALS}); exclusive with "
        "credentials_path. Neither: Application Default Credentials.",
    )
    credentials_path: str | None = Field(None, description="A file holding a service account's JSON key.")
    maximum_bytes_billed: int | None = Field(
        None, ge=1, description="Fail a query that would bill more bytes than this, before it runs (unset: no limit)."
    )
    query_timeout_seconds: int | None = Field(
        None, ge=1, description="Cancel a query job that runs longer than this (no limit when unset)."
    )
    request_timeout_seconds: int = Field(
        60, ge=1, le=3600, description="Seconds to keep trying one request to BigQuery's API, its retries included."
    )
    api_endpoint: str | None = Field(
        None, description="BigQuery API endpoint to use instead of Google's (Private Service Connect, an emulator)."
    )
    storage_api_endpoint: str | None = Field(
        None,
        description="Storage Read API endpoint (host:port) to use instead of Google's; http://host:port for a "
        "local emulator without TLS.",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if self.credentials_json is not None and self.credentials_path is not None:
            raise ValueError("give at most one of credentials_json and credentials_path")
        if self.credentials_json is not None:
            try:
                json.loads(self.credentials_json.get_secret_value())
            except ValueError:
                raise ValueError("credentials_json is not JSON: give the key file's text") from None
        return self


@dataclass
class BigQueryClients:
    """One call's clients: the BigQuery API's (jobs, tables) and the Storage Read API's (rows)."""

    api: bigquery.Client
    storage: bigquery_storage_v1.BigQueryReadClient


# ------------------------------------------------------------------------------------------------- credentials


def _credentials(s: BigQuerySettings) -> Any:
    # Service account keys only, loaded as such: a credential configuration of another type (an external
    # account's, which names URLs and commands) is for Application Default Credentials to load.
    if s.credentials_json is not None:
        info = json.loads(s.credentials_json.get_secret_value())
        return service_account.Credentials.from_service_account_info(info, scopes=_SCOPES)
    if s.credentials_path is not None:
        return service_account.Credentials.from_service_account_file(s.credentials_path, scopes=_SCOPES)
    credentials, _ = google.auth.default(scopes=_SCOPES)
    return credentials


def _storage_client(s: BigQuerySettings, credentials: Any) -> bigquery_storage_v1.BigQueryReadClient:
    endpoint = s.storage_api_endpoint
    if endpoint is not None and endpoint.startswith("http://"):
        # A local emulator: gRPC without TLS, which gRPC allows for the credentials only on a local address.
        transport = BigQueryReadGrpcTransport(
            host=endpoint.removeprefix("http://"),
            credentials=credentials,
            ssl_channel_credentials=grpc.local_channel_credentials(),
        )
        return bigquery_storage_v1.BigQueryReadClient(transport=transport)
    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    return bigquery_storage_v1.BigQueryReadClient(credentials=credentials, client_options=options)


# ------------------------------------------------------------------------------------------------- the plan

_PLAIN_TYPES: dict[str, pa.DataType] = {
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "BIGNUMERIC": pa.float64(),  # up to 76 digits: the project's rule for decimals beyond decimal128's 38
    "BIGDECIMAL": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"),
    "TIME": pa.time64("us"),
    "TIMESTAMP": _UTC_US,
    "GEOGRAPHY": pa.string(),  # WKT
    "INTERVAL": pa.string(),
}


def _arrow_type(field: bigquery.SchemaField, subject: str, top: str) -> tuple[pa.DataType, bool]:
    """A field's plain Arrow type, and whether it holds JSON text."""
    kind = str(field.field_type).upper()
    json_text = False
    typ: pa.DataType
    if kind in ("NUMERIC", "DECIMAL"):
        typ = pa.decimal128(int(field.precision or 38), int(field.scale if field.scale is not None else 9))
    elif kind in ("RECORD", "STRUCT"):
        children = [pa.field(f.name, _arrow_type(f, subject, top)[0]) for f in field.fields]
        typ = pa.struct(children)
    elif kind == "JSON":
        typ, json_text = pa.string(), True
    elif kind in _PLAIN_TYPES:
        typ = _PLAIN_TYPES[kind]
    else:
        raise ModelError(
            f"{subject}: column {top!r} holds BigQuery type {kind}, which is not read as such: cast it in the "
            f"model's SQL, e.g. CAST({top} AS STRING)"
        )
    if field.mode == "REPEATED":
        return pa.list_(typ), False  # JSON inside an array stays text of its own
    return typ, json_text


def _plan(schema: list[bigquery.SchemaField] | None, subject: str) -> list[ResultColumn]:
    if not schema:
        raise ModelError(f"{subject} is not a query that returns rows")
    columns = []
    for field in schema:
        typ, json_text = _arrow_type(field, subject, field.name)
        columns.append(ResultColumn(field.name, typ, json=json_text))
    return columns


def _cast_hint(column: str) -> str:
    return f"CAST(`{column}` AS STRING)"


# ------------------------------------------------------------------------------------------------ the connector


class BigQuerySource(SqlConnector[BigQuerySettings, BigQueryClients]):
    """A BigQuery project; see the module docstring for how it is read."""

    Settings = BigQuerySettings
    DIALECT = "bigquery"

    def __repr__(self) -> str:  # never show the key
        s = self.settings
        return f"BigQuerySource(project={s.project!r}, dataset={s.dataset!r}, location={s.location!r})"

    def schema(self, model: ModelConfig) -> pa.Schema:
        """The model's columns and types, from a dry run: BigQuery plans the query and bills nothing."""
        subject = f"model {describe_model(model)}"
        query = self.model_sql(model)
        with self._session() as clients, translate_errors(lambda exc: self._translate(exc, model)):
            config = self._job_config(dry_run=True)
            job = clients.api.query(
                query, job_config=config, retry=self._retry(), timeout=self._request_timeout(), job_retry=None
            )
            return planned_schema(_plan(job.schema, subject))

    def tables(self, limit: int = MAX_TABLES) -> list[str]:
        """The project's tables and views as ``dataset.name``, sorted: listed through the API."""
        with self._session() as clients, translate_errors(self._translate):
            names: list[str] = []
            api, retry = clients.api, self._retry()
            for dataset in api.list_datasets(self.settings.project, retry=retry, timeout=self._request_timeout()):
                listed = api.list_tables(dataset.reference, retry=retry, timeout=self._request_timeout())
                names.extend(f"{t.dataset_id}.{t.table_id}" for t in listed)
            return sorted(names)[: int(limit)]

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[BigQueryClients]:
        s = self.settings
        with translate_errors(self._translate):
            credentials = _credentials(s)
            options = ClientOptions(api_endpoint=s.api_endpoint) if s.api_endpoint else None
            http = AuthorizedSession(credentials)
            api = bigquery.Client(
                project=s.project, credentials=credentials, location=s.location, client_options=options, _http=http
            )
            try:
                storage = _storage_client(s, credentials)
            except BaseException:
                close_quietly(lambda: _close_http(http))
                raise
        try:
            yield BigQueryClients(api, storage)
        finally:
            close_quietly(lambda: _close_http(http))
            close_quietly(storage.transport.close)  # ends the gRPC channel and any stream still open on it

    def _stream(self, conn: BigQueryClients, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        subject = f"model {describe_model(model)}"
        with translate_errors(translate):
            result = self._run(conn, query)
            columns = _plan(result.schema, subject)
            arrow = self._read_session(conn, result)
        batches = rebatch(conformed(arrow, columns, subject, _cast_hint), batch_rows)
        return BatchStream(planned_schema(columns), batches, translate)

    def _planner_session(self) -> contextlib.AbstractContextManager[BigQueryClients]:
        return self._session()  # nothing makes the session read-only

    def _execute(self, conn: BigQueryClients, sql: str) -> None:
        self._run(conn, sql)

    def _schema_exists(self, conn: BigQueryClients, name: str) -> bool | None:
        # INFORMATION_SCHEMA.SCHEMATA answers for one region only (the US unless qualified): the API knows.
        try:
            reference = f"{self.settings.project}.{name}"
            conn.api.get_dataset(reference, retry=self._retry(), timeout=self._request_timeout())
        except api_exceptions.NotFound:
            return False
        return True

    def _create_schema(self, quoted: str) -> str | None:
        # In the models' location: a query cannot read datasets of two locations.
        location = self.settings.location
        options = f" OPTIONS (location = {sql_literal(location, self.DIALECT)})" if location else ""
        return f"CREATE SCHEMA IF NOT EXISTS {quoted}{options}"

    def _load(self, conn: BigQueryClients, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        # Multi-row INSERTs of literals, each within BigQuery's 1 MB limit on a query's text (a load job
        # would need the rows staged as a file first).
        for statement in loading_statements(self, schema, table, data, _LOAD_ROWS):
            self._run(conn, statement)

    def _rows(self, conn: BigQueryClients, query: str) -> list[tuple[Any, ...]]:
        batches = self._read_session(conn, self._run(conn, query))
        return [tuple(row.values()) for batch in batches for row in batch.to_pylist()]

    def _tables_sql(self, limit: int) -> str:
        raise NotImplementedError("tables() asks BigQuery's API")

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_bigquery_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _retry(self) -> Retry:
        return DEFAULT_RETRY.with_timeout(float(self.settings.request_timeout_seconds))

    def _request_timeout(self) -> float:
        return float(self.settings.request_timeout_seconds)

    def _job_config(self, *, dry_run: bool = False) -> bigquery.QueryJobConfig:
        s = self.settings
        config = bigquery.QueryJobConfig(use_legacy_sql=False, dry_run=dry_run, labels={"client": "smartingest"})
        if s.dataset is not None:
            config.default_dataset = s.dataset if "." in s.dataset else f"{s.project}.{s.dataset}"
        if s.maximum_bytes_billed is not None:
            config.maximum_bytes_billed = s.maximum_bytes_billed
        if s.query_timeout_seconds is not None:
            config.job_timeout_ms = s.query_timeout_seconds * 1000  # BigQuery stops the job itself, too
        return config

    def _run(self, conn: BigQueryClients, query: str) -> _Result:
        """Run ``query`` as a job and wait for it. A job past query_timeout_seconds is cancelled and a permanent
        SourceError names the setting."""
        s = self.settings
        started = time.monotonic()
        job = conn.api.query(
            query, job_config=self._job_config(), retry=self._retry(), timeout=self._request_timeout(), job_retry=None
        )
        try:
            rows = job.result(retry=self._retry(), timeout=s.query_timeout_seconds, job_retry=None, max_results=0)
        except concurrent.futures.TimeoutError:
            with contextlib.suppress(Exception):  # the timeout is the error to report
                job.cancel(retry=self._retry(), timeout=self._request_timeout())
            raise source_error(
                SourceError,
                f"query job {job.job_id} ran longer than query_timeout_seconds ({s.query_timeout_seconds}) and was "
                f"cancelled after {time.monotonic() - started:.0f} s; raise it or make the query faster",
                transient=False,
            ) from None
        return _Result(list(rows.schema), job.destination.to_bqstorage() if job.destination else None)

    def _read_session(self, conn: BigQueryClients, result: _Result) -> Iterator[pa.RecordBatch]:
        """Open a Storage Read API session on the job's result table and return its record batches, read one
        response at a time (the session is opened now, so a refusal is raised before the first batch)."""
        if result.table is None:
            return iter(())
        requested = storage_types.ReadSession(table=result.table, data_format=storage_types.DataFormat.ARROW)
        requested.read_options.arrow_serialization_options.buffer_compression = _LZ4  # type: ignore[assignment]
        session = conn.storage.create_read_session(
            parent=f"projects/{self.settings.project}",
            read_session=requested,
            max_stream_count=1,  # one stream: the rows in the query's order, one response in memory
            timeout=self._request_timeout(),
        )
        return _session_batches(conn.storage, session)


def _close_http(session: requests.Session) -> None:
    """Close the session and its connections now: urllib3 2 leaves its pools' connections to the garbage
    collector, so one an error's response still refers to would stay open as long as the error is kept."""
    for adapter in session.adapters.values():
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            pools = adapter.poolmanager.pools
            for key in pools.keys():  # noqa: SIM118 - the container refuses to be iterated
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
    session.close()


@dataclass(frozen=True)
class _Result:
    """A finished query job: its result's schema, and its result table as the Storage Read API names it."""

    schema: list[bigquery.SchemaField]
    table: str | None


def _session_batches(
    storage: bigquery_storage_v1.BigQueryReadClient, session: storage_types.ReadSession
) -> Iterator[pa.RecordBatch]:
    if not session.streams:  # an empty result has no stream
        return
    schema = pa.ipc.read_schema(pa.py_buffer(session.arrow_schema.serialized_schema))
    for stream in session.streams:
        # read_rows resumes a stream broken by a transient error at the offset it reached.
        for response in storage.read_rows(stream.name):
            serialized = response.arrow_record_batch.serialized_record_batch
            yield pa.ipc.read_record_batch(pa.py_buffer(serialized), schema)


# ---------------------------------------------------------------------------------------------- error mapping

_TRANSIENT_REASONS = frozenset(
    {
        "backendError",
        "internalError",
        "rateLimitExceeded",
        "jobRateLimitExceeded",
        "quotaExceeded",
        "stopped",
        "tableUnavailable",
        "jobBackendError",
        "jobInternalError",
    }
)
# Retries spent on refused connections or timeouts, the Storage Read API unavailable or past its deadline.
_UNREACHABLE = (
    api_exceptions.RetryError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
)
_SYNTAX = re.compile(r"\bsyntax error\b", re.I)
_TIMED_OUT = re.compile(r"timed out|timeout|exceeded the maximum execution time", re.I)


def map_bigquery_error(
    exc: BaseException, settings: BigQuerySettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a google-cloud-bigquery (or Storage Read API, or google-auth) error into the error tree (None
    for exceptions not theirs).

    The one place that decides transient vs permanent for BigQuery, on the error's ``reason``:

    * cannot reach the API (refused, unknown host, timeouts, retries spent) -> SourceConnectionError
      (transient);
    * credentials that cannot be loaded or are refused (a bad key, 401, a failed token refresh) ->
      SourceAuthError naming the credential settings;
    * ``accessDenied`` (403), a Storage Read API PermissionDenied -> SourceAuthError naming the IAM roles;
    * ``bytesBilledLimitExceeded`` -> SourceError (permanent) naming maximum_bytes_billed;
    * a job that timed out -> SourceError (permanent) naming query_timeout_seconds;
    * ``invalidQuery``: a syntax error -> ModelError "has a syntax error", anything else wrong in the SQL (an
      unknown column) -> ModelError with BigQuery's text; ``notFound`` (a table or dataset) -> ModelError,
      a project not found -> SourceConnectionError (permanent) naming project;
    * rate limits, quotas, backend errors, 5xx, a stopped job -> SourceError (transient).
    """
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    where = f"BigQuery project {settings.project!r}"
    mapped: SourceError
    if isinstance(exc, google.auth.exceptions.GoogleAuthError | FileNotFoundError):
        mapped = SourceAuthError(
            f"{where}: the credentials cannot be used (check credentials_json or credentials_path, or the "
            f"Application Default Credentials): {one_line(str(exc))}"
        )
    elif isinstance(exc, _UNREACHABLE):
        mapped = SourceConnectionError(f"cannot reach {where}: {one_line(str(exc))}")
    elif isinstance(exc, api_exceptions.GoogleAPICallError):
        mapped = _api_error(exc, settings, where, subject)
    elif isinstance(exc, pa.ArrowInvalid):
        mapped = SourceConnectionError(f"the result of {subject} from {where} broke off: {one_line(str(exc))}")
    else:
        return None
    return _scrub(mapped, settings)


def _api_error(
    exc: api_exceptions.GoogleAPICallError, settings: BigQuerySettings, where: str, subject: str
) -> SourceError:
    reasons = [str(e.get("reason") or "") for e in (exc.errors or []) if isinstance(e, dict)]
    reason = reasons[0] if reasons else ""
    detail = one_line(str(exc.message or exc))
    code = exc.code if isinstance(exc.code, int) else 0
    if reason == "bytesBilledLimitExceeded":
        return source_error(
            SourceError,
            f"{subject} would bill more than maximum_bytes_billed ({settings.maximum_bytes_billed}): {detail}; raise "
            "it, or read less (select fewer columns, filter on the partitioning column)",
            transient=False,
        )
    if reason in _TRANSIENT_REASONS or code in (429, 500, 502, 503, 504):
        if reason == "stopped" and _TIMED_OUT.search(detail):
            return _timed_out(subject, settings, detail)
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    if isinstance(exc, api_exceptions.Unauthorized) or code == 401:
        return SourceAuthError(f"{where} refused the credentials (check credentials_json, credentials_path): {detail}")
    if reason == "accessDenied" or isinstance(exc, api_exceptions.Forbidden | api_exceptions.PermissionDenied):
        return SourceAuthError(f"the service account may not read {subject}: {detail}; grant it {_ROLES}")
    if _TIMED_OUT.search(detail) and reason in ("timeout", "jobTimeout", ""):
        return _timed_out(subject, settings, detail)
    if reason == "invalidQuery" and _SYNTAX.search(detail):
        return ModelError(f"{subject} has a syntax error: {detail}")
    if reason == "notFound" and re.search(r"Not found: Project", detail):
        return source_error(SourceConnectionError, f"{where} does not exist (check project): {detail}", transient=False)
    if reason in ("invalidQuery", "notFound", "invalid", "resourcesExceeded", "responseTooLarge") or code == 400:
        return ModelError(f"{subject} cannot be read: {detail}")
    return source_error(SourceError, f"{where} failed: {detail}", transient=code >= 500)


def _timed_out(subject: str, settings: BigQuerySettings, detail: str) -> SourceError:
    return source_error(
        SourceError,
        f"{subject} ran longer than query_timeout_seconds ({settings.query_timeout_seconds}): {detail}; raise it or "
        "make the query faster",
        transient=False,
    )


def _scrub(error: SourceError, settings: BigQuerySettings) -> SourceError:
    """Belt and braces: no secret of the settings reaches a message, nor the private key inside the service
    account's JSON (a message would quote the key, not the whole document)."""
    error = scrub_secrets(error, settings)
    if settings.credentials_json is None:
        return error
    message = str(error)
    try:
        key = str(json.loads(settings.credentials_json.get_secret_value()).get("private_key") or "")
    except (ValueError, AttributeError):
        key = ""
    if not key or key not in message:
        return error
    return source_error(type(error), message.replace(key, "***"), transient=error.transient)


__all__ = ["BigQuerySettings", "BigQuerySource", "map_bigquery_error"]
