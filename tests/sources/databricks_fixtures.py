"""Databricks fixtures: a loopback HTTP server speaking the part of Databricks' SQL Statement Execution API the
connector uses, its answers computed by FakeEngine(dialect="databricks") over the contract dataset.

What it serves, as the API documents it:

* ``POST /api/2.0/sql/statements`` (``format: ARROW_STREAM``, ``disposition: EXTERNAL_LINKS``) runs the
  statement and answers with its status, the result's manifest (each column's ``type_name``, ``type_text``,
  precision and scale) and the first chunk's external link; ``GET /api/2.0/sql/statements/{id}`` polls it,
  ``GET .../result/chunks/{n}`` gives chunk n's link, ``POST .../cancel`` cancels it;
* the external links are pre-signed URLs on the same server: Arrow IPC stream bytes, one chunk each, made of
  record batches of ``wire_batch_rows`` (``numbers`` spans several chunks, so the connector follows
  ``next_chunk_index``); like a cloud object store, a link refuses a request that carries the workspace's
  token;
* a failed statement is ``state: FAILED`` with ``sql_state`` and an error whose message starts with Spark's
  error class (``[PARSE_SYNTAX_ERROR]``, ``[TABLE_OR_VIEW_NOT_FOUND]``, ``[UNRESOLVED_COLUMN...]``);
* request errors are ``{"error_code", "message"}`` with Databricks' HTTP status: a wrong token is 403
  "Invalid access token", a warehouse that does not exist 404 ``RESOURCE_DOES_NOT_EXIST``;
* OAuth machine-to-machine: ``POST /oidc/v1/token`` exchanges the client id and secret for a token.

Injectable: ``hold`` keeps every statement RUNNING until cancelled (a slow query), ``denied_tables``
refuses reading those tables as Unity Catalog does (INSUFFICIENT_PERMISSIONS), ``no_warehouse_permission``
refuses the warehouse (403 PERMISSION_DENIED), ``expire_links`` makes each link's first fetch answer 403
as an expired pre-signed URL does,
``refuse_links`` makes every fetch answer so. ``statements``, ``cancelled``, ``downloads`` and ``open_connections``
let the tests see what the connector did.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pytest

from .loopback import CountingHandler, released

if TYPE_CHECKING:  # imported when a fake starts: fake_engine reads the dataset from conftest, which loads this
    from .fake_engine import EngineError

TOKEN = "dapi-test-token-0123456789"
CLIENT_ID, CLIENT_SECRET = "sp-client-id", "sp-Secret-5678"
WAREHOUSE = "abc123def456"
SCHEMA = "smartingest"

_STATEMENT_PATH = re.compile(r"^/api/2\.0/sql/statements/([^/]+)(?:/(cancel|result/chunks/(\d+)))?$")
_CHUNK_PATH = re.compile(r"^/presigned/([^/]+)/(\d+)$")


@dataclass
class Statement:
    id: str
    sql: str
    state: str = "PENDING"
    chunks: list[pa.Table] = field(default_factory=list)
    schema: pa.Schema | None = None
    error: dict[str, Any] | None = None
    sql_state: str = ""
    manifest: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


class DatabricksFake:
    """The fake workspace, in a thread on a free loopback port."""

    def __init__(self, chunk_rows: int = 2000, wire_batch_rows: int = 512, writable: bool = False) -> None:
        from .fake_engine import FakeEngine

        self.engine = FakeEngine("databricks", SCHEMA, writable)
        self.chunk_rows = chunk_rows
        self.wire_batch_rows = wire_batch_rows
        self.hold = False
        self.denied_tables: set[str] = set()
        self.no_warehouse_permission = False
        self.expire_links = False
        self.refuse_links = False
        self.statements: dict[str, Statement] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, JSON body)
        self.cancelled: list[str] = []
        self.downloads: list[str] = []
        self.tokens_issued = 0
        self._fetched: set[str] = set()
        self._open = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="databricks-fake", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def running(self) -> list[str]:
        """Statements not yet in a terminal state."""
        return [s.id for s in list(self.statements.values()) if s.state in ("PENDING", "RUNNING")]

    def reset(self) -> None:
        self.hold = False
        self.denied_tables = set()
        self.no_warehouse_permission = False
        self.expire_links = False
        self.refuse_links = False

    def _opened(self, delta: int) -> None:
        with self._lock:
            self._open += delta

    # ------------------------------------------------------------------------------------------- the statements

    def submit(self, body: dict[str, Any]) -> Statement:
        statement = Statement(f"01ef-{secrets.token_hex(8)}", str(body.get("statement", "")), parameters=body)
        self.statements[statement.id] = statement
        if self.hold:
            statement.state = "RUNNING"
            return statement
        self._run(statement)
        return statement

    def _run(self, statement: Statement) -> None:
        from .fake_engine import EngineError

        named = {t.lower() for t in re.findall(r"[`\w]+", statement.sql)}
        denied = {t for t in self.denied_tables if t in named or f"`{t}`" in named}
        if denied:
            table = sorted(denied)[0]
            self._fail(
                statement,
                "42501",
                f"[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table "
                f"'main.{SCHEMA}.{table}'. SQLSTATE: 42501",
            )
            return
        try:
            table = self.engine.execute(statement.sql)
        except EngineError as exc:
            self._fail(statement, *_spark_error(exc))
            return
        table, statement.manifest = _wire(table)
        statement.schema = table.schema
        statement.chunks = [table.slice(i, self.chunk_rows) for i in range(0, table.num_rows, self.chunk_rows)]
        statement.state = "SUCCEEDED"

    def _fail(self, statement: Statement, sql_state: str, message: str) -> None:
        statement.state, statement.sql_state = "FAILED", sql_state
        statement.error = {"error_code": "BAD_REQUEST", "message": message}

    def answer(self, statement: Statement) -> dict[str, Any]:
        status: dict[str, Any] = {"state": statement.state}
        if statement.error is not None:
            status["error"] = statement.error
            status["sql_state"] = statement.sql_state
        body: dict[str, Any] = {"statement_id": statement.id, "status": status}
        if statement.state != "SUCCEEDED" or statement.schema is None:
            return body
        rows = [c.num_rows for c in statement.chunks]
        body["manifest"] = {
            "format": "ARROW_STREAM",
            "schema": {"column_count": len(statement.schema), "columns": statement.manifest},
            "total_chunk_count": len(statement.chunks),
            "total_row_count": sum(rows),
            "chunks": [{"chunk_index": i, "row_offset": sum(rows[:i]), "row_count": n} for i, n in enumerate(rows)],
            "truncated": False,
        }
        if statement.chunks:
            body["result"] = {"external_links": [self.link(statement, 0)]}
        return body

    def link(self, statement: Statement, index: int) -> dict[str, Any]:
        rows = [c.num_rows for c in statement.chunks]
        link: dict[str, Any] = {
            "chunk_index": index,
            "row_offset": sum(rows[:index]),
            "row_count": rows[index],
            "external_link": f"{self.url}/presigned/{statement.id}/{index}?X-Amz-Signature={secrets.token_hex(8)}",
            "expiration": "2099-01-01T00:00:00.000Z",
        }
        if index + 1 < len(statement.chunks):
            link["next_chunk_index"] = index + 1
            link["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{statement.id}/result/chunks/{index + 1}"
        return link

    def chunk_bytes(self, statement: Statement, index: int) -> bytes:
        sink = pa.BufferOutputStream()
        chunk = statement.chunks[index]
        with pa.ipc.new_stream(sink, chunk.schema) as writer:
            for batch in chunk.to_batches(max_chunksize=self.wire_batch_rows):
                writer.write_batch(batch)
        return sink.getvalue().to_pybytes()


def _spark_error(exc: EngineError) -> tuple[str, str]:
    """An engine refusal as Databricks reports it: (SQLSTATE, message starting with Spark's error class)."""
    if exc.kind == "syntax":
        return "42601", f"[PARSE_SYNTAX_ERROR] {exc.message}. SQLSTATE: 42601 (line 1, pos 0)"
    if exc.kind == "missing_table":
        return "42P01", (
            f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{exc.name}` cannot be found. Verify the spelling and "
            "correctness of the schema and catalog. SQLSTATE: 42P01; line 1 pos 14"
        )
    if exc.kind == "missing_column":
        return "42703", (
            f"[UNRESOLVED_COLUMN.WITHOUT_SUGGESTION] A column, variable, or function parameter with name "
            f"`{exc.name}` cannot be resolved. SQLSTATE: 42703; line 1 pos 7"
        )
    if exc.kind == "write":
        return "42501", f"[INSUFFICIENT_PERMISSIONS] Insufficient privileges: {exc.message}. SQLSTATE: 42501"
    return "22000", f"[INVALID_ARGUMENT] {exc.message}. SQLSTATE: 22000"


def _wire(table: pa.Table) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The engine's result as Databricks sends it, and its manifest's columns: timestamps in the session's zone
    (Etc/UTC), JSON as STRING (Databricks has no JSON type), ARRAY, STRUCT and MAP values as their JSON text
    (what the Statement Execution API's Arrow results carry)."""
    columns, fields, manifest = [], [], []
    for position, (column, f) in enumerate(zip(table.columns, table.schema, strict=True)):
        typ = f.type
        if isinstance(typ, pa.BaseExtensionType):
            column, typ = column.cast(typ.storage_type), typ.storage_type
        meta = {"name": f.name, "position": position} | _manifest_type(typ)
        if pa.types.is_nested(typ):
            column = pa.array([None if v is None else json.dumps(_plain(v)) for v in column.to_pylist()], pa.string())
            typ = pa.string()
        elif pa.types.is_timestamp(typ) and typ.tz is not None:
            typ = pa.timestamp("us", tz="Etc/UTC")
            column = column.cast(typ)
        elif pa.types.is_null(typ):
            column, typ = column.cast(pa.string()), pa.string()
        columns.append(column)
        fields.append(pa.field(f.name, typ))
        manifest.append(meta)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields)), manifest


def _plain(value: Any) -> Any:
    """A nested value as JSON holds it (a map's (key, value) pairs as an object)."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {str(k): _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_TYPE_NAMES = {
    pa.int8(): ("BYTE", "TINYINT"),
    pa.int16(): ("SHORT", "SMALLINT"),
    pa.int32(): ("INT", "INT"),
    pa.int64(): ("LONG", "BIGINT"),
    pa.float32(): ("FLOAT", "FLOAT"),
    pa.float64(): ("DOUBLE", "DOUBLE"),
    pa.bool_(): ("BOOLEAN", "BOOLEAN"),
    pa.string(): ("STRING", "STRING"),
    pa.binary(): ("BINARY", "BINARY"),
    pa.date32(): ("DATE", "DATE"),
    pa.null(): ("NULL", "VOID"),
}


def _manifest_type(typ: pa.DataType) -> dict[str, Any]:
    """A column's type as the manifest describes it (type_name, type_text, precision and scale)."""
    if pa.types.is_decimal(typ):
        text = f"DECIMAL({typ.precision},{typ.scale})"
        return {"type_name": "DECIMAL", "type_text": text, "type_precision": typ.precision, "type_scale": typ.scale}
    if pa.types.is_timestamp(typ):
        name = "TIMESTAMP" if typ.tz else "TIMESTAMP_NTZ"
        return {"type_name": name, "type_text": name}
    if pa.types.is_map(typ):
        return {"type_name": "MAP", "type_text": "MAP<STRING,STRING>"}
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return {"type_name": "ARRAY", "type_text": "ARRAY<STRING>"}
    if pa.types.is_struct(typ):
        return {"type_name": "STRUCT", "type_text": "STRUCT<>"}
    name, text = _TYPE_NAMES.get(typ, ("STRING", "STRING"))
    return {"type_name": name, "type_text": text}


class _Handler(CountingHandler):
    @property
    def fake(self) -> DatabricksFake:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def count(self, delta: int) -> None:
        self.fake._opened(delta)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/oidc/v1/token":
            self._token(dict(parse_qsl(raw.decode())))
            return
        chunk = _CHUNK_PATH.match(path)
        if chunk is not None:
            self._download(chunk[1], int(chunk[2]))
            return
        body = json.loads(raw) if raw else {}
        self.fake.requests.append((method, path, body))
        if not self._authorised():
            return
        if method == "POST" and path == "/api/2.0/sql/statements":
            self._submit(body)
            return
        found = _STATEMENT_PATH.match(path)
        statement = self.fake.statements.get(found[1]) if found else None
        if found is None or statement is None:
            self._json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No statement at {path}"})
        elif found[2] == "cancel":
            self.fake.cancelled.append(statement.id)
            if statement.state in ("PENDING", "RUNNING"):
                statement.state = "CANCELED"
            self._json(200, {})
        elif found[3] is not None:
            self._json(200, {"external_links": [self.fake.link(statement, int(found[3]))]})
        else:
            self._json(200, self.fake.answer(statement))

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            message = "Credential was not sent or was of an unsupported type"
            self._json(401, {"error_code": "UNAUTHENTICATED", "message": message})
            return False
        if header[7:] != TOKEN and not header[7:].startswith("oauth-"):
            self._json(403, {"error_code": "403", "message": "Invalid access token."})
            return False
        return True

    def _submit(self, body: dict[str, Any]) -> None:
        if body.get("warehouse_id") != WAREHOUSE:
            message = f"Warehouse {body.get('warehouse_id')} does not exist."
            self._json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message})
            return
        if self.fake.no_warehouse_permission:
            message = f"User does not have permission to use warehouse {WAREHOUSE}: CAN_USE is required."
            self._json(403, {"error_code": "PERMISSION_DENIED", "message": message})
            return
        if (body.get("format"), body.get("disposition")) != ("ARROW_STREAM", "EXTERNAL_LINKS"):
            self._json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "this fake serves Arrow links only"})
            return
        self._json(200, self.fake.answer(self.fake.submit(body)))

    def _token(self, form: dict[str, str]) -> None:
        auth = self.headers.get("Authorization", "")
        given = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        if given != f"{CLIENT_ID}:{CLIENT_SECRET}" or form.get("grant_type") != "client_credentials":
            self._json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
            return
        self.fake.tokens_issued += 1
        self._json(200, {"access_token": f"oauth-{secrets.token_hex(8)}", "token_type": "Bearer", "expires_in": 3600})

    def _download(self, statement_id: str, index: int) -> None:
        statement = self.fake.statements.get(statement_id)
        if "Authorization" in self.headers:  # as S3 answers a pre-signed URL sent with another credential
            self._text(400, "InvalidArgument: Only one auth mechanism allowed")
            return
        key = f"{statement_id}/{index}"
        if statement is None or index >= len(statement.chunks):
            self._text(404, "NoSuchKey")
            return
        if self.fake.refuse_links or (self.fake.expire_links and key not in self.fake._fetched):
            self.fake._fetched.add(key)
            self._text(403, "AccessDenied: Request has expired")
            return
        self.fake.downloads.append(key)
        payload = self.fake.chunk_bytes(statement, index)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.apache.arrow.stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            for start in range(0, len(payload), 16384):  # sent in pieces, as a network would
                self.wfile.write(payload[start : start + 16384])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@pytest.fixture(scope="session")
def databricks_server() -> Iterator[DatabricksFake]:
    fake = DatabricksFake()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def databricks_fake(databricks_server: DatabricksFake) -> Iterator[DatabricksFake]:
    """The session's fake workspace, its injected failures cleared after the test."""
    yield databricks_server
    databricks_server.reset()


def databricks_settings(fake: DatabricksFake, **overrides: Any) -> dict[str, Any]:
    return {
        "host": fake.url,
        "http_path": f"/sql/1.0/warehouses/{WAREHOUSE}",
        "access_token": TOKEN,
        "catalog": "main",
        "schema": SCHEMA,
    } | overrides


def databricks_released(fake: DatabricksFake, wait: float = 2.0) -> bool:
    """No connection of the source's is open and none of its statements still runs."""
    return released(lambda: fake.open_connections() or fake.running(), wait)


@pytest.fixture
def databricks_case(databricks_fake: DatabricksFake) -> Any:
    from smartingest.sources.databricks import DatabricksSource

    from .conftest import Case, _expected_rows

    settings = databricks_settings(databricks_fake)
    return Case(
        name="databricks",
        source=DatabricksSource(DatabricksSource.Settings(**settings)),
        schema_name=SCHEMA,
        types={
            "id": pa.int64(),  # BIGINT
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),  # TIMESTAMP: an instant
            "attrs": pa.string(),  # JSON text in a STRING column: Databricks has no JSON type to say so
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: databricks_released(databricks_fake, wait),
        settings=settings,
        released_means=(
            "no HTTP connection of the source's to the fake workspace is open and none of its statements still"
            " runs (the Statement Execution API has no sessions to count)"
        ),
    )
