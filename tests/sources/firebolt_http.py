"""Firebolt's HTTP API on loopback, the part the official SDK speaks, answering from FakeEngine (sqlglot has no
Firebolt dialect: statements are parsed as PostgreSQL's, whose SQL Firebolt's follows).

One server plays the three hosts the SDK talks to, told apart by the ``Host`` header (the tests resolve
``*.firebolt.test`` to 127.0.0.1; the SDK derives the identity host from ``api_endpoint``, so the names
matter):

* ``id.firebolt.test``: ``POST /oauth/token`` exchanges a service account's client id and secret for a
  bearer token (401 for others);
* ``api.firebolt.test``: ``GET /web/v3/account/<account>/engineUrl`` gives the account's system engine
  (404 for an unknown account);
* the system engine: ``USE DATABASE "db"`` and ``USE ENGINE "name"`` answer the headers that set the
  database and move the session to the engine's URL (an unknown one: "... does not exist or not
  authorized"); other statements run as on an engine;
* an engine: a statement posted as the body, the session's settings as URL parameters; answered in
  ``JSON_Compact`` or streamed in ``JSONLines_Compact`` (START with the columns and their Firebolt types,
  DATA records of ``chunk_rows`` rows, FINISH_SUCCESSFULLY, or FINISH_WITH_ERRORS).

Refusals are the structured errors the SDK reads (``errors: [{severity, name, code, description}]``):
HTTP 400 before a result starts, FINISH_WITH_ERRORS within one. Their codes and wording are PostgreSQL's
(``relation "x" does not exist``, ``column "x" does not exist``, ``syntax error at or near ...``), which a
real Firebolt may word otherwise. ``execution_seconds`` makes a statement take that long, and a
``statement_timeout`` shorter than it ends the statement with the timeout error; ``fail_next`` queues
errors for what the engine cannot produce (permission denied). ``running()`` and ``open_connections()`` let
a test see a source end what it started.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .fake_engine import EngineError, FakeEngine
from .loopback import CountingHandler

DOMAIN = "firebolt.test"
_USE = re.compile(r'^\s*USE\s+(DATABASE|ENGINE)\s+"?([^"\s;]+)"?\s*;?\s*$', re.IGNORECASE)
_CODES = {"syntax": "42601", "missing_table": "42P01", "missing_column": "42703", "write": "42501", "data": "22000"}


def structured(code: str, description: str, name: str = "QueryError") -> dict[str, Any]:
    return {"severity": "ERROR", "name": name, "code": code, "source": "User Error", "description": description}


class FireboltEngine(FakeEngine):
    """FakeEngine that also says each result column's DuckDB type and nullability."""

    def column_types(self, sql: str) -> list[str]:
        duck = self.translate(sql)
        with self._lock:
            return [str(row[1]) for row in self._db.execute(f"DESCRIBE ({duck})").fetchall()]


class FireboltApi:
    """The fake API, identity service and engines, serving in a thread on a free loopback port."""

    def __init__(
        self,
        engine: FireboltEngine,
        *,
        client_id: str,
        client_secret: str,
        account: str,
        database: str,
        engine_name: str,
        chunk_rows: int = 1000,
    ) -> None:
        self.engine = engine
        self.client_id, self.client_secret = client_id, client_secret
        self.account, self.database, self.engine_name = account, database, engine_name
        self.chunk_rows = chunk_rows
        self.execution_seconds = 0.0
        self.fail_next: list[dict[str, Any]] = []
        self.statements: list[tuple[str, dict[str, str]]] = []  # (SQL, URL parameters) as engines got them
        self.tokens: set[str] = set()
        self._running = 0
        self._open = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.api = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        # The SDK keeps only an engine URL's host and speaks HTTPS to port 443 there: the engine is served
        # over TLS on a port of its own, its host name carrying the port for the test resolver.
        self._engine_server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._engine_server.daemon_threads = True
        self._engine_server.api = self  # type: ignore[attr-defined]
        self._engine_server.socket = engine_tls().server.wrap_socket(self._engine_server.socket, server_side=True)
        self.engine_host = f"e{self._engine_server.server_address[1]}.{DOMAIN}"
        self._threads = [
            threading.Thread(target=server.serve_forever, name="firebolt-fake", daemon=True)
            for server in (self._server, self._engine_server)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def api_endpoint(self) -> str:
        return f"http://api.{DOMAIN}:{self.port}"

    def running(self) -> int:
        with self._lock:
            return self._running

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def close(self) -> None:
        for server in (self._server, self._engine_server):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)

    def counted(self, attribute: str, delta: int) -> None:
        with self._lock:
            setattr(self, attribute, getattr(self, attribute) + delta)

    # ------------------------------------------------------------------------------------------- statements

    def run(self, sql: str) -> tuple[list[dict[str, str]], list[list[Any]]]:
        """The statement's columns (name and Firebolt type) and rows as Firebolt's JSON writes them."""
        if self.fail_next:
            raise _Refused(self.fail_next.pop(0))
        try:
            table = self.engine.execute(sql)
            types = self.engine.column_types(sql)
        except EngineError as exc:
            raise _Refused(structured(_CODES[exc.kind], _described(exc))) from exc
        rendered = [_render(table.schema.field(i), types[i]) for i in range(table.num_columns)]
        columns = [{"name": table.schema.field(i).name, "type": r[0]} for i, r in enumerate(rendered)]
        values = [[None if v is None else r[1](v) for v in table.column(i).to_pylist()] for i, r in enumerate(rendered)]
        return columns, [list(row) for row in zip(*values, strict=True)] if values else []


class _Refused(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error


def _described(exc: EngineError) -> str:
    match exc.kind:
        case "missing_table":
            return f'relation "{exc.name}" does not exist'
        case "missing_column":
            return f'column "{exc.name}" does not exist'
        case "write":
            return "permission denied: the service account may only read"
        case _:
            return exc.message


def _render(field: pa.Field, duck_type: str) -> tuple[str, Any]:
    """A column's Firebolt type (nullable: `` null``) and how Firebolt's JSON writes one of its values."""
    typ = field.type
    if pa.types.is_int64(typ):
        name, render = "bigint", int
    elif pa.types.is_integer(typ):
        name, render = "integer", int
    elif pa.types.is_floating(typ):
        name, render = "double precision", float
    elif pa.types.is_decimal(typ):
        name, render = f"numeric({typ.precision}, {typ.scale})", _RawNumber
    elif pa.types.is_boolean(typ):
        name, render = "boolean", bool
    elif pa.types.is_date(typ):
        name, render = "date", lambda v: v.isoformat()
    elif pa.types.is_timestamp(typ) and typ.tz is not None:
        name, render = "timestamptz", _instant
    elif pa.types.is_timestamp(typ):
        name, render = "timestamp", lambda v: v.isoformat(sep=" ")
    elif pa.types.is_list(typ):
        name, render = "array(integer)", list
    else:  # text; Firebolt keeps JSON as text too
        name, render = "text", str
    return f"{name} null", render


class _RawNumber(str):
    """A DECIMAL written as a bare JSON number, as Firebolt writes it (so it reads back exactly as text)."""

    def __new__(cls, value: Decimal) -> _RawNumber:
        return super().__new__(cls, str(value))


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ") + "+00"


def _encode(value: Any) -> str:
    if isinstance(value, _RawNumber):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_encode(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


# ----------------------------------------------------------------------------------------------- HTTP layer


class _Handler(CountingHandler):
    @property
    def api(self) -> FireboltApi:
        return self.server.api  # type: ignore[attr-defined, no-any-return]

    def count(self, delta: int) -> None:
        self.api.counted("_open", delta)

    def _host(self) -> str:
        return (self.headers.get("Host") or "").split(".")[0]

    def _authorised(self) -> bool:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token in self.api.tokens:
            return True
        self._json(401, {"error": "unauthorized", "message": "invalid or expired token"})
        return False

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        found = re.fullmatch(r"/web/v3/account/([^/]+)/engineUrl", path)
        if not found or self._host() != "api":
            self._json(404, {"message": "not found"})
            return
        if not self._authorised():
            return
        if found[1] != self.api.account:
            self._json(404, {"message": f"account {found[1]} not found"})
            return
        self._json(200, {"engineUrl": f"http://system.{DOMAIN}:{self.api.port}/?account_id=acc-1"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if self._host() == "id" and url.path == "/oauth/token":
            self._token(dict(parse_qsl(body)))
        elif self._host() == "system" or self._host().startswith("e"):
            if self._authorised():
                self._statement(body, params)
        else:
            self._json(404, {"message": "not found"})

    def _token(self, form: dict[str, str]) -> None:
        if (form.get("client_id"), form.get("client_secret")) != (self.api.client_id, self.api.client_secret):
            self._json(401, {"error": "access_denied", "message": "Unauthorized"})
            return
        token = secrets.token_hex(16)
        self.api.tokens.add(token)
        self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _statement(self, sql: str, params: dict[str, str]) -> None:
        use = _USE.match(sql)
        if use and self._host() == "system":
            self._use(use[1].upper(), use[2])
            return
        self.api.statements.append((sql, params))
        if params.get("database", self.api.database) != self.api.database:
            self._error(400, structured("3D000", f"Database '{params['database']}' does not exist or not authorized."))
            return
        unknown = set(params) - {
            "output_format",
            "database",
            "engine",
            "account_id",
            "statement_timeout",
            "query_label",
        }
        if unknown:
            self._error(400, structured("42704", f'unrecognized configuration parameter "{sorted(unknown)[0]}"'))
            return
        self.api.counted("_running", 1)
        try:
            try:
                columns, rows = self.api.run(sql)
            except _Refused as refused:
                self._error(400, refused.error)
                return
            if params.get("output_format") == "JSONLines_Compact":
                self._stream(columns, rows, params)
            else:
                meta = {"meta": columns, "data": rows, "rows": len(rows), "statistics": {"elapsed": 0.001}}
                self._send(200, _encode(meta).encode(), {"Content-Type": "application/json"})
        finally:
            self.api.counted("_running", -1)

    def _use(self, what: str, name: str) -> None:
        if what == "DATABASE":
            if name != self.api.database:
                self._error(400, structured("3D000", f"Database '{name}' does not exist or not authorized."))
                return
            headers = {"Firebolt-Update-Parameters": f"database={name}"}
        else:
            if name != self.api.engine_name:
                self._error(400, structured("42704", f"Engine '{name}' does not exist or not authorized."))
                return
            url = f"https://{self.api.engine_host}/?engine={name}&account_id=acc-1"
            headers = {"Firebolt-Update-Endpoint": url}
        empty = {"meta": [], "data": [], "rows": 0, "statistics": {"elapsed": 0.0}}
        self._send(200, json.dumps(empty).encode(), {"Content-Type": "application/json"} | headers)

    def _stream(self, columns: list[dict[str, str]], rows: list[list[Any]], params: dict[str, str]) -> None:
        start = {
            "message_type": "START",
            "result_columns": columns,
            "query_id": "q1",
            "query_label": "",
            "request_id": "r1",
        }
        stats = {"elapsed": 0.001, "rows_read": len(rows), "bytes_read": 0}

        def records() -> Iterator[str]:
            yield _encode(start)
            limit = int(params["statement_timeout"]) / 1000 if params.get("statement_timeout") else None
            if self.api.execution_seconds:
                time.sleep(min(self.api.execution_seconds, limit or self.api.execution_seconds))
                if limit is not None and limit < self.api.execution_seconds:
                    error = structured("57014", "canceling statement due to statement timeout")
                    yield _encode(
                        {
                            "message_type": "FINISH_WITH_ERRORS",
                            "errors": [error],
                            "query_id": "q1",
                            "query_label": "",
                            "request_id": "r1",
                            "statistics": stats,
                        }
                    )
                    return
            for i in range(0, len(rows), self.api.chunk_rows):
                yield _encode({"message_type": "DATA", "data": rows[i : i + self.api.chunk_rows]})
            yield _encode({"message_type": "FINISH_SUCCESSFULLY", "statistics": stats})

        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for record in records():
                piece = (record + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _error(self, status: int, error: dict[str, Any]) -> None:
        self._json(status, {"errors": [error]})

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

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


_real_getaddrinfo = socket.getaddrinfo


def resolving_test_domain(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """socket.getaddrinfo, with every ``*.firebolt.test`` name at 127.0.0.1, and an engine's name
    (``e<port>.firebolt.test``) at its port whatever port is asked (installed by the fixtures)."""
    if isinstance(host, str) and host.endswith("." + DOMAIN):
        label = host.split(".")[0]
        if label[:1] == "e" and label[1:].isdigit():
            port = int(label[1:])
        host = "127.0.0.1"
    return _real_getaddrinfo(host, port, *args, **kwargs)


class _Tls:
    """A CA (its PEM file, for SSL_CERT_FILE) and a server certificate it signed for ``*.firebolt.test``."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartingest firebolt test CA")])
        ca = self._sign(x509.CertificateBuilder().subject_name(ca_name), ca_name, key, now, ca=True)
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{DOMAIN}")])
        names = x509.SubjectAlternativeName(
            [x509.DNSName(f"*.{DOMAIN}"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        leaf = self._sign(
            x509.CertificateBuilder().subject_name(leaf_name).add_extension(names, critical=False), ca_name, key, now
        )
        directory = tempfile.mkdtemp(prefix="smartingest-firebolt-tls-")
        pem = serialization.Encoding.PEM
        self.ca_file = f"{directory}/ca.pem"
        with open(self.ca_file, "wb") as out:
            out.write(ca.public_bytes(pem))
        with open(f"{directory}/server.pem", "wb") as out:
            out.write(leaf.public_bytes(pem))
        with open(f"{directory}/server.key", "wb") as out:
            out.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.load_cert_chain(f"{directory}/server.pem", f"{directory}/server.key")

    @staticmethod
    def _sign(
        builder: x509.CertificateBuilder, issuer: x509.Name, key: Any, now: dt.datetime, *, ca: bool = False
    ) -> x509.Certificate:
        return (
            builder.issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )


_tls: _Tls | None = None


def engine_tls() -> _Tls:
    """The process's one test CA and engine certificate (made on first use)."""
    global _tls
    if _tls is None:
        _tls = _Tls()
    return _tls
