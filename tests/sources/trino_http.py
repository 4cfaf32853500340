"""A Trino coordinator on loopback, the part of Trino's client protocol the official client speaks, answering
from FakeEngine (statements parsed in sqlglot's ``trino`` dialect, run by DuckDB over the contract dataset).

What it does as a coordinator does (Trino's REST client protocol, docs/develop/client-protocol):

* ``POST /v1/statement`` takes the statement and the session from the ``X-Trino-*`` headers (user,
  catalog, schema, source, time zone, session properties, the spooling encodings the client reads) and
  answers QUEUED with a ``nextUri``; each ``GET`` of a ``nextUri`` answers the next state: the columns with
  their type signatures, then the rows page by page (``page_rows`` to a page, JSON values as Trino writes
  them: decimals, dates and timestamps as text, timestamps with their zone), each with the next ``nextUri``
  until the last; ``DELETE`` of a ``nextUri`` cancels the query;
* refusals are Trino's error objects (``errorName``, ``errorCode``, ``errorType``, a message worded as
  Trino words it): SYNTAX_ERROR, TABLE_NOT_FOUND, COLUMN_NOT_FOUND, CATALOG_NOT_FOUND, SCHEMA_NOT_FOUND,
  INVALID_SESSION_PROPERTY, EXCEEDED_TIME_LIMIT when ``query_max_execution_time`` is shorter than the
  ``execution_seconds`` a test gives, PERMISSION_DENIED for a write (the fake stands for a user with
  SELECT only); a wrong password is HTTP 401 (with ``users``, over TLS);
* with ``spooling``, a client that asks for the spooling protocol gets each page as a segment: inline
  (base64 JSON) and spooled (zstd-compressed, downloaded from ``/v1/spooled/download/...`` and acknowledged
  at ``/v1/spooled/ack/...``) in turn.

``fail_next`` queues error objects the next statements fail with (for what the engine cannot produce:
access denied, an internal error). ``running()`` counts queries neither finished nor cancelled and
``open_connections()`` the clients' TCP connections, so a test sees a source end what it started. What it
does not do: plan or distribute anything (a result is computed whole, then paged), resource groups,
access control beyond the above, Trino's own type system beyond what DuckDB holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import sqlglot
import zstandard
from sqlglot import exp

from .fake_engine import EngineError, FakeEngine
from .loopback import CountingHandler

KNOWN_PROPERTIES = frozenset(
    {"query_max_execution_time", "query_max_run_time", "query_max_memory", "join_distribution_type"}
)
_ERROR_CODES = {
    "SYNTAX_ERROR": (1, "USER_ERROR"),
    "PERMISSION_DENIED": (4, "USER_ERROR"),
    "DIVISION_BY_ZERO": (8, "USER_ERROR"),
    "INVALID_CAST_ARGUMENT": (9, "USER_ERROR"),
    "INVALID_SESSION_PROPERTY": (14, "USER_ERROR"),
    "CATALOG_NOT_FOUND": (44, "USER_ERROR"),
    "SCHEMA_NOT_FOUND": (45, "USER_ERROR"),
    "TABLE_NOT_FOUND": (46, "USER_ERROR"),
    "COLUMN_NOT_FOUND": (47, "USER_ERROR"),
    "MISSING_CATALOG_NAME": (56, "USER_ERROR"),
    "MISSING_SCHEMA_NAME": (57, "USER_ERROR"),
    "GENERIC_INTERNAL_ERROR": (65536, "INTERNAL_ERROR"),
    "EXCEEDED_TIME_LIMIT": (131075, "INSUFFICIENT_RESOURCES"),
}


def trino_error(name: str, message: str) -> dict[str, Any]:
    """An error object as the coordinator sends it (the client's TrinoQueryError reads these keys)."""
    code, kind = _ERROR_CODES[name]
    return {
        "message": message,
        "errorCode": code,
        "errorName": name,
        "errorType": kind,
        "failureInfo": {"type": "io.trino.spi.TrinoException", "message": message, "suppressed": [], "stack": []},
    }


class TrinoEngine(FakeEngine):
    """FakeEngine that also says each result column's DuckDB type (JSON is text in DuckDB's Arrow)."""

    def column_types(self, sql: str) -> list[str]:
        duck = self.translate(sql)
        with self._lock:
            return [str(row[1]) for row in self._db.execute(f"DESCRIBE ({duck})").fetchall()]


@dataclass
class _Query:
    id: str
    sql: str
    headers: dict[str, str]
    properties: dict[str, str]
    encodings: list[str]
    started: float = field(default_factory=time.monotonic)
    columns: list[dict[str, Any]] | None = None
    pages: list[list[list[Any]]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    state: str = "QUEUED"  # QUEUED, RUNNING, FINISHED, FAILED, CANCELED


class TrinoCoordinator:
    """The fake coordinator, serving in a thread on a free loopback port (HTTPS with ``tls``)."""

    def __init__(
        self,
        engine: TrinoEngine,
        catalog: str = "memory",
        *,
        users: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        page_rows: int = 1024,
        spooling: bool = False,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.users = users
        self.page_rows = page_rows
        self.spooling = spooling
        self.execution_seconds = 0.0
        self.fail_next: list[dict[str, Any]] = []
        self.posted: list[_Query] = []
        self.acknowledged: set[str] = set()
        self._segments: dict[str, bytes] = {}
        self._queries: dict[str, _Query] = {}
        self._open = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.coordinator = self  # type: ignore[attr-defined]
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="trino-fake", daemon=True)
        self._thread.start()

    def running(self) -> int:
        with self._lock:
            return sum(q.state in ("QUEUED", "RUNNING") for q in self._queries.values())

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # ------------------------------------------------------------------------------------------------ protocol

    def post(self, sql: str, headers: dict[str, str], base: str) -> dict[str, Any]:
        properties = dict(
            (name, unquote(value))
            for name, _, value in (p.partition("=") for p in _split(headers.get("X-Trino-Session")))
        )
        query = _Query(
            id=f"20240102_{secrets.token_hex(6)}",
            sql=sql,
            headers=headers,
            properties=properties,
            encodings=_split(headers.get("X-Trino-Query-Data-Encoding")),
        )
        with self._lock:
            self._queries[query.id] = query
            self.posted.append(query)
        return self._status(query, base, token=1)

    def advance(self, query_id: str, token: int, base: str) -> dict[str, Any] | None:
        query = self._queries.get(query_id)
        if query is None:
            return None
        if query.state == "QUEUED":
            query.state = "RUNNING"
            self._plan(query)
        if query.error is None and query.state == "RUNNING":
            self._wait(query)
        return self._status(query, base, token)

    def cancel(self, query_id: str) -> None:
        query = self._queries.get(query_id)
        if query is not None and query.state in ("QUEUED", "RUNNING"):
            query.state = "CANCELED"

    def segment(self, segment_id: str) -> bytes | None:
        return self._segments.get(segment_id)

    def acknowledge(self, segment_id: str) -> None:
        self.acknowledged.add(segment_id)
        self._segments.pop(segment_id, None)

    def _plan(self, query: _Query) -> None:
        """Run the statement (the whole result, then paged); a refusal becomes the query's error."""
        try:
            self._check_session(query)
            if self.fail_next:
                query.error = self.fail_next.pop(0)
                return
            self._check_names(query)
            table = self.engine.execute(query.sql)
            types = self.engine.column_types(query.sql)
        except EngineError as exc:
            query.error = _engine_error(exc, query, self.catalog)
            return
        except _Refused as refused:
            query.error = refused.error
            return
        columns = [_render(table.schema.field(i), types[i]) for i in range(table.num_columns)]
        query.columns = [c.column for c in columns]
        values = [c.values(table.column(i)) for i, c in enumerate(columns)]
        rows = [list(row) for row in zip(*values, strict=True)] if values else []
        query.pages = [rows[i : i + self.page_rows] for i in range(0, len(rows), self.page_rows)]

    def _check_session(self, query: _Query) -> None:
        for name in query.properties:
            if name not in KNOWN_PROPERTIES:
                raise _Refused(trino_error("INVALID_SESSION_PROPERTY", f"Session property '{name}' does not exist"))

    def _check_names(self, query: _Query) -> None:
        """Trino resolves a name against the session's catalog and schema: those must exist where used."""
        try:
            statement = sqlglot.parse_one(query.sql, read="trino")
        except sqlglot.errors.ParseError:
            return  # the engine reports it as the syntax error it is
        ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
        session_catalog = query.headers.get("X-Trino-Catalog")
        session_schema = query.headers.get("X-Trino-Schema")
        for table in statement.find_all(exp.Table):
            if not table.db and table.name in ctes:
                continue
            catalog = table.catalog or session_catalog
            if not catalog:
                raise _Refused(
                    trino_error(
                        "MISSING_CATALOG_NAME", "line 1:1: Catalog must be specified when session catalog is not set"
                    )
                )
            if catalog != self.catalog:
                raise _Refused(trino_error("CATALOG_NOT_FOUND", f"line 1:1: Catalog '{catalog}' not found"))
            schema = table.db or session_schema
            if not schema:
                message = "line 1:1: Schema must be specified when session schema is not set"
                raise _Refused(trino_error("MISSING_SCHEMA_NAME", message))
            if schema not in (self.engine.schema, "information_schema"):
                raise _Refused(trino_error("SCHEMA_NOT_FOUND", f"line 1:1: Schema '{schema}' does not exist"))

    def _wait(self, query: _Query) -> None:
        """Pretend the query executes for ``execution_seconds``; Trino kills it past its time limit."""
        limit = _seconds(query.properties.get("query_max_execution_time"))
        while (elapsed := time.monotonic() - query.started) < self.execution_seconds:
            if limit is not None and elapsed > limit:
                query.error = trino_error(
                    "EXCEEDED_TIME_LIMIT", f"Query exceeded the maximum execution time limit of {limit:.2f}s"
                )
                return
            if query.state != "RUNNING":
                return
            time.sleep(0.05)

    def _status(self, query: _Query, base: str, token: int) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": query.id,
            "infoUri": f"{base}/ui/query.html?{query.id}",
            "stats": {"state": query.state, "queued": query.state == "QUEUED", "scheduled": True},
            "warnings": [],
        }
        if query.error is not None:
            query.state = "FAILED"
            status["stats"]["state"] = "FAILED"
            status["error"] = query.error
            return status
        if query.state == "QUEUED":
            status["nextUri"] = f"{base}/v1/statement/queued/{query.id}/{token}"
            return status
        status["columns"] = query.columns
        page = token - 1  # the first GET (token 1) answers the columns and page 0
        if 0 <= page < len(query.pages):
            status["data"] = self._data(query, query.pages[page], page, base)
        if page + 1 < len(query.pages):
            status["nextUri"] = f"{base}/v1/statement/executing/{query.id}/{token + 1}"
        else:
            query.state = "FINISHED"
            status["stats"]["state"] = "FINISHED"
        return status

    def _data(self, query: _Query, rows: list[list[Any]], page: int, base: str) -> Any:
        if not (self.spooling and "json+zstd" in query.encodings):
            return rows
        raw = json.dumps(rows).encode()
        offset = page * self.page_rows
        if page % 2 == 0:
            segment = {"type": "inline", "data": base64.b64encode(raw).decode(), "metadata": _meta(offset, rows, raw)}
        else:
            packed = zstandard.ZstdCompressor().compress(raw)
            segment_id = secrets.token_hex(8)
            self._segments[segment_id] = packed
            meta = _meta(offset, rows, packed) | {"uncompressedSize": len(raw)}
            segment = {
                "type": "spooled",
                "uri": f"{base}/v1/spooled/download/{segment_id}",
                "ackUri": f"{base}/v1/spooled/ack/{segment_id}",
                "metadata": meta,
                "headers": {},
            }
        return {"encoding": "json+zstd", "segments": [segment]}

    def opened(self, delta: int) -> None:
        with self._lock:
            self._open += delta


class _Refused(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error


def _meta(offset: int, rows: list[list[Any]], payload: bytes) -> dict[str, Any]:
    return {"rowOffset": offset, "rowsCount": len(rows), "segmentSize": len(payload)}


def _split(header: str | None) -> list[str]:
    return [part.strip() for part in (header or "").split(",") if part.strip()]


def _seconds(duration: str | None) -> float | None:
    if not duration:
        return None
    for unit, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * scale
    return float(duration)


def _engine_error(exc: EngineError, query: _Query, catalog: str) -> dict[str, Any]:
    """The engine's refusal, worded and coded as Trino's analyzer words it."""
    schema = query.headers.get("X-Trino-Schema") or "default"
    match exc.kind:
        case "syntax":
            return trino_error("SYNTAX_ERROR", f"line 1:1: mismatched input. {exc.message}")
        case "missing_table":
            return trino_error("TABLE_NOT_FOUND", f"line 1:15: Table '{catalog}.{schema}.{exc.name}' does not exist")
        case "missing_column":
            return trino_error("COLUMN_NOT_FOUND", f"line 1:8: Column '{exc.name}' cannot be resolved")
        case "write":
            return trino_error("PERMISSION_DENIED", "Access Denied: Cannot write to a table of this catalog")
        case _:
            return trino_error("DIVISION_BY_ZERO" if "by zero" in exc.message else "INVALID_CAST_ARGUMENT", exc.message)


# ---------------------------------------------------------------------------------------------- Trino's types


@dataclass
class _Rendered:
    column: dict[str, Any]
    render: Any

    def values(self, column: pa.ChunkedArray) -> list[Any]:
        return [None if v is None else self.render(v) for v in column.to_pylist()]


def _signature(raw: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"rawType": raw, "arguments": list(args)}


def _long(value: int) -> dict[str, Any]:
    return {"kind": "LONG", "value": value}


def _type(name: str, signature: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "TYPE", "value": signature}


def _render(field_: pa.Field, duck_type: str) -> _Rendered:
    """A result column as Trino describes it (name, type, typeSignature) and how it writes a value in JSON."""
    signature, render = _typed(field_.type, duck_type)
    return _Rendered({"name": field_.name, "type": _type_text(signature), "typeSignature": signature}, render)


def _typed(typ: pa.DataType, duck_type: str = "") -> tuple[dict[str, Any], Any]:
    if duck_type == "JSON":
        return _signature("json"), str
    integers = {pa.int8(): "tinyint", pa.int16(): "smallint", pa.int32(): "integer", pa.int64(): "bigint"}
    if typ in integers:
        return _signature(integers[typ]), int
    if pa.types.is_boolean(typ):
        return _signature("boolean"), bool
    if pa.types.is_floating(typ):
        return _signature("real" if typ == pa.float32() else "double"), _float
    if pa.types.is_decimal(typ):
        return _signature("decimal", _long(typ.precision), _long(typ.scale)), lambda v: str(Decimal(v))
    if pa.types.is_date(typ):
        return _signature("date"), lambda v: v.isoformat()
    if pa.types.is_timestamp(typ) and typ.tz is not None:
        return _signature("timestamp with time zone", _long(6)), _instant
    if pa.types.is_timestamp(typ):
        return _signature("timestamp", _long(6)), lambda v: v.isoformat(sep=" ", timespec="microseconds")
    if pa.types.is_time(typ):
        return _signature("time", _long(6)), lambda v: v.isoformat(timespec="microseconds")
    if pa.types.is_binary(typ):
        return _signature("varbinary"), lambda v: base64.b64encode(v).decode()
    if pa.types.is_list(typ):
        item, render = _typed(typ.value_type)
        return _signature("array", _type("", item)), lambda v: [None if x is None else render(x) for x in v]
    if pa.types.is_struct(typ):
        parts = [(typ.field(i).name, *_typed(typ.field(i).type)) for i in range(typ.num_fields)]
        arguments = [
            {"kind": "NAMED_TYPE", "value": {"fieldName": {"name": n, "delimited": False}, "typeSignature": s}}
            for n, s, _ in parts
        ]
        return {"rawType": "row", "arguments": arguments}, lambda v: [
            None if v[n] is None else r(v[n]) for n, _, r in parts
        ]
    if pa.types.is_map(typ):
        key, render_key = _typed(typ.key_type)
        item, render_item = _typed(typ.item_type)
        return _signature("map", _type("", key), _type("", item)), lambda v: {
            str(render_key(k)): None if x is None else render_item(x) for k, x in v
        }
    if pa.types.is_null(typ):
        return _signature("unknown"), lambda v: None
    return _signature("varchar", _long(2147483647)), str


def _float(value: float) -> Any:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") + " UTC"


def _type_text(signature: dict[str, Any]) -> str:
    raw = signature["rawType"]
    args = signature.get("arguments", [])
    if not args:
        return raw
    inner = []
    for arg in args:
        value = arg["value"]
        if arg["kind"] == "LONG":
            inner.append(str(value))
        elif arg["kind"] == "NAMED_TYPE":
            inner.append(f"{value['fieldName']['name']} {_type_text(value['typeSignature'])}")
        else:
            inner.append(_type_text(value))
    if raw.endswith(" with time zone"):
        return f"{raw.removesuffix(' with time zone')}({', '.join(inner)}) with time zone"
    return f"{raw}({', '.join(inner)})"


# ----------------------------------------------------------------------------------------------- HTTP layer


class _Handler(CountingHandler):
    @property
    def coordinator(self) -> TrinoCoordinator:
        return self.server.coordinator  # type: ignore[attr-defined, no-any-return]

    def count(self, delta: int) -> None:
        self.coordinator.opened(delta)

    def _base(self) -> str:
        return f"{self.coordinator.scheme}://{self.headers.get('Host')}"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if urlsplit(self.path).path != "/v1/statement":
            self._json(404, {"message": "not found"})
            return
        if not self._authorised():
            return
        if not self.headers.get("X-Trino-User"):
            self._text(400, "User must be set")
            return
        self._json(200, self.coordinator.post(body, dict(self.headers.items()), self._base()))

    def do_GET(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[:2] == ["v1", "spooled"] and len(parts) == 4:
            self._spooled(parts[2], parts[3])
            return
        if parts[:2] != ["v1", "statement"] or len(parts) != 5:
            self._json(404, {"message": "not found"})
            return
        if not self._authorised():
            return
        status = self.coordinator.advance(parts[3], int(parts[4]), self._base())
        if status is None:
            self._json(404, {"message": f"Query not found: {parts[3]}"})
        else:
            self._json(200, status)

    def do_DELETE(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 5:
            self.coordinator.cancel(parts[3])
        self._send(204, b"", {})

    def _spooled(self, action: str, segment_id: str) -> None:
        if action == "ack":
            self.coordinator.acknowledge(segment_id)
            self._send(200, b"", {})
            return
        payload = self.coordinator.segment(segment_id)
        if payload is None:
            self._json(404, {"message": "segment not found"})
        else:
            self._send(200, payload, {"Content-Type": "application/octet-stream"})

    def _authorised(self) -> bool:
        users = self.coordinator.users
        if users is None:
            return True
        auth = self.headers.get("Authorization", "")
        user, _, password = (
            base64.b64decode(auth[6:]).decode().partition(":") if auth.startswith("Basic ") else ("", "", "")
        )
        if users.get(user) == password and user:
            return True
        self._send(401, b"Unauthorized", {"WWW-Authenticate": 'Basic realm="Trino"', "Content-Type": "text/plain"})
        return False

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), {"Content-Type": "text/plain"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
