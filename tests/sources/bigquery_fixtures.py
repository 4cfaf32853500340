"""BigQuery fixtures: loopback servers speaking the parts of BigQuery's REST API and of its Storage Read API
(gRPC) that google-cloud-bigquery and google-cloud-bigquery-storage use, their answers computed by
FakeEngine(dialect="bigquery") over the contract dataset.

The REST server (HTTP, ``client_options.api_endpoint``) serves, as the API reference documents them:

* ``jobs.insert`` of a query job (its default dataset, ``maximumBytesBilled``, ``dryRun``, ``jobTimeoutMs``),
  ``jobs.get``, ``jobs.cancel``, and ``jobs.getQueryResults``, which waits a moment while the job runs, as
  BigQuery's long poll does; a finished job names its anonymous result table (``destinationTable``) and its
  schema (``INTEGER``, ``NUMERIC``, ``TIMESTAMP``, ``JSON``...), a dry run its schema only;
* a failed job as BigQuery reports it: the error's ``reason`` (``invalidQuery`` for a syntax error or an
  unknown column, ``notFound`` for a table, ``bytesBilledLimitExceeded`` for a query that would bill more than
  ``maximumBytesBilled``: as BigQuery bills at least 10 MB for a query reading a table, any limit below that
  fails such a query) and its message;
* ``datasets.list``, ``datasets.get`` (404 ``notFound`` for a dataset the engine has no schema for) and
  ``tables.list``;
* the OAuth token endpoint a service account key names (``token_uri``): the JWT the client signs is checked
  against the key's public half, and every API call must carry a token it issued.

The Storage Read API server (gRPC, with local credentials so the token travels on loopback) serves
``CreateReadSession`` on a result table (split in up to two streams) and ``ReadRows``, which streams the rows
as serialized Arrow record batches of ``wire_batch_rows``, the Arrow schema in the first response, in
BigQuery's Arrow types (INT64 as int64, NUMERIC as decimal128(38, 9), TIMESTAMP as timestamp[us, UTC], JSON
as a string marked ``google:sqlType:json``).

Injectable: ``hold`` keeps jobs RUNNING until cancelled, ``denied_jobs`` refuses jobs.insert (accessDenied),
``denied_read_sessions`` refuses CreateReadSession (PERMISSION_DENIED). ``jobs``, ``cancelled``,
``read_sessions``, ``open_connections`` and ``active_reads`` let the tests see what the connector did.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from google.cloud.bigquery_storage_v1 import types

from .loopback import CountingHandler, released

PROJECT, DATASET = "acme-analytics", "marts"
ANON = "_smartingest_anon"
MIN_BILLED = 10 * 1024 * 1024  # BigQuery bills at least 10 MB for a query that reads a table
_JSON_META = {b"ARROW:extension:name": b"google:sqlType:json"}
_JOB_PATH = re.compile(r"^/bigquery/v2/projects/([^/]+)/(jobs|queries)(?:/([^/]+))?(/cancel)?$")
_DATASET_PATH = re.compile(r"^/bigquery/v2/projects/([^/]+)/datasets/([^/]+)$")
_LIST_PATH = re.compile(r"^/bigquery/v2/projects/([^/]+)/datasets(?:/([^/]+)/tables)?$")


@dataclass
class Job:
    id: str
    sql: str
    state: str = "RUNNING"
    error: dict[str, Any] | None = None
    table: pa.Table | None = None
    fields: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


class BigQueryFake:
    """The fake BigQuery: the REST server at ``url``, the Storage Read API at ``storage_endpoint``."""

    def __init__(self, wire_batch_rows: int = 1000, writable: bool = False) -> None:
        from .fake_engine import FakeEngine

        self.engine = FakeEngine("bigquery", DATASET, writable)
        self.wire_batch_rows = wire_batch_rows
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.hold = False
        self.denied_jobs = False
        self.denied_read_sessions = False
        self.jobs: dict[str, Job] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.cancelled: list[str] = []
        self.read_sessions: list[types.CreateReadSessionRequest] = []
        self.tokens: set[str] = set()
        self._streams: dict[str, pa.Table] = {}
        self._open = 0
        self._reads = 0
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="bigquery-fake", daemon=True)
        self._thread.start()
        # The token endpoint is a host of its own, as Google's is: its connections are google-auth's, not the
        # source's (google-auth leaves them to the garbage collector).
        self._oauth = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._oauth.daemon_threads = True
        self._oauth.fake = self  # type: ignore[attr-defined]
        self.token_uri = f"http://127.0.0.1:{self._oauth.server_address[1]}/token"
        self._oauth_thread = threading.Thread(target=self._oauth.serve_forever, name="oauth-fake", daemon=True)
        self._oauth_thread.start()
        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=8))
        self._grpc.add_generic_rpc_handlers((_storage_handler(self),))
        port = self._grpc.add_secure_port("127.0.0.1:0", grpc.local_server_credentials())
        self.storage_endpoint = f"http://127.0.0.1:{port}"
        self._grpc.start()

    def close(self) -> None:
        self._grpc.stop(grace=None)
        for server, thread in ((self._http, self._thread), (self._oauth, self._oauth_thread)):
            server.shutdown()
            server.server_close()
            thread.join(5)

    def reset(self) -> None:
        self.hold = False
        self.denied_jobs = False
        self.denied_read_sessions = False

    def credentials_json(self) -> str:
        """A service account key whose token endpoint is this fake's."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": f"smartingest@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "123456789012345678901",
                "token_uri": self.token_uri,
            }
        )

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def active_reads(self) -> int:
        with self._lock:
            return self._reads

    def running(self) -> list[str]:
        return [j.id for j in list(self.jobs.values()) if j.state != "DONE"]

    def _count(self, attribute: str, delta: int) -> None:
        with self._lock:
            setattr(self, attribute, getattr(self, attribute) + delta)

    # ------------------------------------------------------------------------------------------------------ jobs

    def insert(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        config = body.get("configuration") or {}
        query = config.get("query") or {}
        job = Job(
            (body.get("jobReference") or {}).get("jobId") or secrets.token_hex(8), str(query["query"]), config=config
        )
        if config.get("dryRun"):
            return self._dry_run(job)
        self.jobs[job.id] = job
        if self.hold:
            return 200, self.resource(job)
        self._run(job, query)
        return 200, self.resource(job)

    def _dry_run(self, job: Job) -> tuple[int, dict[str, Any]]:
        from .fake_engine import EngineError

        try:
            empty = self.engine.execute(f"SELECT * FROM ({job.sql}) LIMIT 0")
            described = self.engine.describe(job.sql)
        except EngineError as exc:
            return _failure(_bigquery_error(exc))
        fields = [_field(f, duck) for f, (_, duck) in zip(empty.schema, described, strict=True)]
        resource = self.resource(job) | {"statistics": {"query": {"schema": {"fields": fields}}}}
        resource["status"] = {"state": "DONE"}
        return 200, resource

    def _run(self, job: Job, query: dict[str, Any]) -> None:
        from .fake_engine import EngineError

        job.state = "DONE"
        limit = query.get("maximumBytesBilled")
        reads_a_table = any(name in job.sql for _, name in self.engine.tables())
        if limit is not None and int(limit) < MIN_BILLED and reads_a_table:
            message = f"Query exceeded limit for bytes billed: {limit}. {MIN_BILLED} or higher required."
            job.error = {"reason": "bytesBilledLimitExceeded", "message": message, "code": 400}
            return
        try:
            table = self.engine.execute(job.sql)
            # A query is described to type its JSON; DDL and DML (which describing would run again) answer none.
            described = self.engine.describe(job.sql) if self.engine.returns_rows(job.sql) else []
        except EngineError as exc:
            job.error = _bigquery_error(exc)
            return
        json_columns = {name for name, duck in described if duck == "JSON"}
        job.table = _wire(table, json_columns)
        job.fields = [_field(f, "JSON" if f.name in json_columns else "") for f in table.schema]

    def resource(self, job: Job) -> dict[str, Any]:
        status: dict[str, Any] = {"state": job.state}
        if job.error is not None:
            status["errorResult"] = {k: v for k, v in job.error.items() if k != "code"}
            status["errors"] = [status["errorResult"]]
        configuration = json.loads(json.dumps(job.config))
        configuration.setdefault("query", {})["destinationTable"] = self.destination(job)
        return {
            "kind": "bigquery#job",
            "id": f"{PROJECT}:US.{job.id}",
            "jobReference": {"projectId": PROJECT, "jobId": job.id, "location": "US"},
            "configuration": configuration,
            "status": status,
            "statistics": {"creationTime": str(int(time.time() * 1000)), "query": {"totalBytesProcessed": "0"}},
        }

    def destination(self, job: Job) -> dict[str, str]:
        return {"projectId": PROJECT, "datasetId": ANON, "tableId": f"anon{job.id}"}

    def query_results(self, job: Job, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if job.state != "DONE":
            time.sleep(min(int(params.get("timeoutMs", "10000")) / 1000, 0.1))  # BigQuery's long poll, shortened
        if job.state != "DONE":
            return 200, {
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": self._reference(job),
                "jobComplete": False,
            }
        if job.error is not None:
            return _failure(job.error)
        assert job.table is not None
        return 200, {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": self._reference(job),
            "schema": {"fields": job.fields},
            "totalRows": str(job.table.num_rows),
            "jobComplete": True,
            "cacheHit": False,
        }

    def cancel(self, job: Job) -> dict[str, Any]:
        self.cancelled.append(job.id)
        if job.state != "DONE":
            job.state = "DONE"
            job.error = {"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
        return {"kind": "bigquery#jobCancelResponse", "job": self.resource(job)}

    def _reference(self, job: Job) -> dict[str, str]:
        return {"projectId": PROJECT, "jobId": job.id, "location": "US"}

    # ----------------------------------------------------------------------------------------- Storage Read API

    def create_read_session(self, request: types.CreateReadSessionRequest, context: grpc.ServicerContext) -> Any:
        self._authorise(context)
        self.read_sessions.append(request)
        if self.denied_read_sessions:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission denied: the user does not have bigquery.readsessions.create on project {PROJECT}.",
            )
        table_id = request.read_session.table.rsplit("/", 1)[-1]
        job = next((j for j in self.jobs.values() if f"anon{j.id}" == table_id and j.table is not None), None)
        if job is None or job.table is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Not found: Table {request.read_session.table}")
        table = job.table
        name = f"projects/{PROJECT}/locations/us/sessions/{secrets.token_hex(6)}"
        count = min(request.max_stream_count or 2, 2) if table.num_rows else 0
        size = -(-table.num_rows // count) if count else 0
        streams = []
        for i in range(count):
            stream = f"{name}/streams/{i}"
            self._streams[stream] = table.slice(i * size, size)
            streams.append(types.ReadStream(name=stream))
        return types.ReadSession(
            name=name,
            table=request.read_session.table,
            data_format=types.DataFormat.ARROW,
            arrow_schema=types.ArrowSchema(serialized_schema=table.schema.serialize().to_pybytes()),
            streams=streams,
            estimated_row_count=table.num_rows,
        )

    def read_rows(self, request: types.ReadRowsRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        self._authorise(context)
        self._count("_reads", 1)
        context.add_callback(lambda: self._count("_reads", -1))  # when the call ends, however it ends
        table = self._streams[request.read_stream].slice(request.offset)
        schema = types.ArrowSchema(serialized_schema=table.schema.serialize().to_pybytes())
        for i, batch in enumerate(table.to_batches(max_chunksize=self.wire_batch_rows)):
            response = types.ReadRowsResponse(
                arrow_record_batch=types.ArrowRecordBatch(
                    serialized_record_batch=batch.serialize().to_pybytes(), row_count=batch.num_rows
                ),
                row_count=batch.num_rows,
            )
            if i == 0:
                response.arrow_schema = schema
            yield response

    def _authorise(self, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        token = str(metadata.get("authorization", "")).removeprefix("Bearer ")
        if token not in self.tokens:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials.")


def _storage_handler(fake: BigQueryFake) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "google.cloud.bigquery.storage.v1.BigQueryRead",
        {
            "CreateReadSession": grpc.unary_unary_rpc_method_handler(
                fake.create_read_session,
                request_deserializer=types.CreateReadSessionRequest.deserialize,
                response_serializer=types.ReadSession.serialize,
            ),
            "ReadRows": grpc.unary_stream_rpc_method_handler(
                fake.read_rows,
                request_deserializer=types.ReadRowsRequest.deserialize,
                response_serializer=types.ReadRowsResponse.serialize,
            ),
        },
    )


def _failure(error: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    code = int(error.get("code", 400))
    item = {"message": error["message"], "domain": "global", "reason": error["reason"]}
    return code, {"error": {"code": code, "message": error["message"], "errors": [item], "status": "INVALID_ARGUMENT"}}


def _bigquery_error(exc: Any) -> dict[str, Any]:
    """An engine refusal as BigQuery reports it: reason, message, HTTP status."""
    if exc.kind == "syntax":
        return {"reason": "invalidQuery", "message": f"Syntax error: {exc.message} at [1:1]", "code": 400}
    if exc.kind == "missing_table":
        message = f"Not found: Table {PROJECT}:{DATASET}.{exc.name} was not found in location US"
        return {"reason": "notFound", "message": message, "code": 404}
    if exc.kind == "missing_column":
        return {"reason": "invalidQuery", "message": f"Unrecognized name: {exc.name} at [1:8]", "code": 400}
    if exc.kind == "write":
        return {"reason": "accessDenied", "message": f"Access Denied: {exc.message}", "code": 403}
    return {"reason": "invalidQuery", "message": exc.message, "code": 400}


def _bq_type(typ: pa.DataType, json_text: bool) -> dict[str, Any]:
    """A schema field's type (and its children) as BigQuery's REST API names it."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _bq_type(typ.value_type, False) | {"mode": "REPEATED"}
    if pa.types.is_struct(typ):
        children = [{"name": typ.field(i).name} | _bq_type(typ.field(i).type, False) for i in range(typ.num_fields)]
        return {"type": "RECORD", "fields": children, "mode": "NULLABLE"}
    if json_text:
        name = "JSON"
    elif pa.types.is_integer(typ):
        name = "INTEGER"
    elif pa.types.is_floating(typ):
        name = "FLOAT"
    elif pa.types.is_decimal(typ):
        name = "NUMERIC" if typ.precision - typ.scale <= 29 and typ.scale <= 9 else "BIGNUMERIC"
    elif pa.types.is_boolean(typ):
        name = "BOOLEAN"
    elif pa.types.is_date(typ):
        name = "DATE"
    elif pa.types.is_timestamp(typ):
        name = "TIMESTAMP" if typ.tz else "DATETIME"
    elif pa.types.is_time(typ):
        name = "TIME"
    elif pa.types.is_binary(typ):
        name = "BYTES"
    else:
        name = "STRING"
    return {"type": name, "mode": "NULLABLE"}


def _field(f: pa.Field, duck: str) -> dict[str, Any]:
    return {"name": f.name} | _bq_type(f.type, duck == "JSON")


def _wire_type(typ: pa.DataType) -> pa.DataType:
    """BigQuery's Arrow type for a value of the engine's type (what the Storage Read API sends)."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(_wire_type(typ.value_type))
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(typ.field(i).name, _wire_type(typ.field(i).type)) for i in range(typ.num_fields)])
    if pa.types.is_integer(typ):
        return pa.int64()
    if pa.types.is_floating(typ):
        return pa.float64()
    if pa.types.is_decimal(typ):
        return pa.decimal128(38, 9) if typ.precision - typ.scale <= 29 and typ.scale <= 9 else pa.decimal256(76, 38)
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", tz="UTC" if typ.tz else None)
    if pa.types.is_time(typ):
        return pa.time64("us")
    if pa.types.is_null(typ):
        return pa.string()
    return typ


def _wire(table: pa.Table, json_columns: set[str]) -> pa.Table:
    fields, columns = [], []
    for f, column in zip(table.schema, table.columns, strict=True):
        typ = _wire_type(f.type)
        columns.append(column.cast(typ))
        fields.append(pa.field(f.name, typ, metadata=_JSON_META if f.name in json_columns else None))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


class _Handler(CountingHandler):
    @property
    def fake(self) -> BigQueryFake:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def count(self, delta: int) -> None:
        if self.server is self.fake._http:  # the REST API's connections; the token endpoint's are not the source's
            self.fake._count("_open", delta)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if parts.path == "/token":
            self._token(dict(parse_qsl(raw.decode())))
            return
        body = json.loads(raw) if raw and self.headers.get("Content-Type", "").startswith("application/json") else {}
        self.fake.requests.append((self.command, parts.path, body))
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in self.fake.tokens:
            self._error(401, "unauthorized", "Request had invalid authentication credentials.")
            return
        self._route(parts.path, params, body)

    def _route(self, path: str, params: dict[str, str], body: dict[str, Any]) -> None:
        fake = self.fake
        dataset = _DATASET_PATH.match(path)
        if dataset is not None and self.command == "GET":  # datasets.get
            if not fake.engine.has_schema(dataset[2]):
                self._error(404, "notFound", f"Not found: Dataset {PROJECT}:{dataset[2]}")
                return
            reference = {"projectId": PROJECT, "datasetId": dataset[2]}
            self._json(
                200,
                {
                    "kind": "bigquery#dataset",
                    "id": f"{PROJECT}:{dataset[2]}",
                    "datasetReference": reference,
                    "location": "US",
                },
            )
            return
        listing = _LIST_PATH.match(path)
        if listing is not None:
            self._json(200, _listing(fake, listing[2]))
            return
        found = _JOB_PATH.match(path)
        if found is None:
            self._error(404, "notFound", f"this fake does not serve {path}")
            return
        if found[2] == "jobs" and found[3] is None and self.command == "POST":
            if fake.denied_jobs:
                message = (
                    f"Access Denied: Project {PROJECT}: User does not have bigquery.jobs.create permission in project "
                    f"{PROJECT}."
                )
                self._error(403, "accessDenied", message)
                return
            self._json(*fake.insert(body))
            return
        job = fake.jobs.get(found[3] or "")
        if job is None:
            self._error(404, "notFound", f"Not found: Job {PROJECT}:{found[3]}")
        elif found[4]:
            self._json(200, fake.cancel(job))
        elif found[2] == "queries":
            self._json(*fake.query_results(job, params))
        else:
            self._json(200, fake.resource(job))

    def _token(self, form: dict[str, str]) -> None:
        public = self.fake.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            claims = jwt.decode(
                form.get("assertion", ""), certs=public, verify=True, audience="https://oauth2.googleapis.com/token"
            )
        except ValueError as exc:
            self._json(400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature: {exc}"})
            return
        token = f"ya29.{secrets.token_hex(12)}"
        self.fake.tokens.add(token)
        self._json(
            200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer", "scope": claims.get("scope")}
        )

    def _error(self, status: int, reason: str, message: str) -> None:
        item = {"message": message, "domain": "global", "reason": reason}
        self._json(status, {"error": {"code": status, "message": message, "errors": [item]}})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body, default=_jsonable).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _listing(fake: BigQueryFake, dataset: str | None) -> dict[str, Any]:
    if dataset is None:
        reference = {"projectId": PROJECT, "datasetId": DATASET}
        return {
            "kind": "bigquery#datasetList",
            "datasets": [{"id": f"{PROJECT}:{DATASET}", "datasetReference": reference}],
        }
    tables = [
        {
            "kind": "bigquery#table",
            "id": f"{PROJECT}:{dataset}.{name}",
            "tableReference": {"projectId": PROJECT, "datasetId": dataset, "tableId": name},
            "type": "VIEW" if name.endswith("_view") else "TABLE",
        }
        for schema, name in fake.engine.tables()
        if schema == dataset
    ]
    return {"kind": "bigquery#tableList", "tables": tables, "totalItems": len(tables)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(type(value))


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def bigquery_server() -> Iterator[BigQueryFake]:
    fake = BigQueryFake()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def bigquery_fake(bigquery_server: BigQueryFake) -> Iterator[BigQueryFake]:
    """The session's fake BigQuery, its injected failures cleared after the test."""
    yield bigquery_server
    bigquery_server.reset()


def bigquery_settings(fake: BigQueryFake, **overrides: Any) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "dataset": DATASET,
        "location": "US",
        "credentials_json": fake.credentials_json(),
        "api_endpoint": fake.url,
        "storage_api_endpoint": fake.storage_endpoint,
    } | overrides


def bigquery_released(fake: BigQueryFake, wait: float = 2.0) -> bool:
    """No REST connection of the source's is open, no ReadRows stream either, and none of its jobs runs."""

    def held() -> bool:
        return bool(fake.open_connections() or fake.active_reads() or fake.running())

    return released(held, wait)


@pytest.fixture
def bigquery_case(bigquery_fake: BigQueryFake) -> Any:
    from smartingest.sources.bigquery import BigQuerySource

    from .conftest import Case, _expected_rows

    settings = bigquery_settings(bigquery_fake)
    return Case(
        name="bigquery",
        source=BigQuerySource(BigQuerySource.Settings(**settings)),
        schema_name=DATASET,
        types={
            "id": pa.int64(),  # INT64
            "name": pa.string(),
            "balance": pa.decimal128(38, 9),  # NUMERIC: a query's result has no precision of its own
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),  # TIMESTAMP
            "attrs": pa.string(),  # JSON
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: bigquery_released(bigquery_fake, wait),
        settings=settings,
        released_means=(
            "no HTTP connection of the source's to the fake REST API is open, no Storage Read API stream is, and"
            " none of its query jobs still runs (BigQuery's APIs have no sessions to count)"
        ),
    )
