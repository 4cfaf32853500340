"""ClickHouse's HTTP interface, the part clickhouse-connect uses, served on loopback over the real ClickHouse
engine that chdb embeds.

No ClickHouse server recent enough for the Arrow formats installs here, but chdb is the ClickHouse engine
itself (26.9): its SQL, types, settings, output formats (Native, ArrowStream, TabSeparated...) and error
codes are ClickHouse's. Only this HTTP layer is ours. It does what ClickHouse's HTTP handler does for a
client that posts queries:

* the query is the ``query`` URL parameter followed by the POST body, except for an ``INSERT ... FORMAT``
  query whose rows are the body (clickhouse-connect's inserts): the engine reads them from a file;
  ``database`` and ``default_format`` are URL parameters, every other parameter is a setting, applied to
  this request only (each request runs on a chdb connection of its own, opened with those settings);
* credentials come from HTTP basic auth, the ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers or the
  ``user``/``password`` parameters, and are checked (a wrong password is refused with code 516);
* a result is sent in the format the query asks for, with the headers clickhouse-connect reads
  (``X-ClickHouse-Format``, ``-Timezone``, ``-Query-Id``, ``-Summary``); an error is ClickHouse's text
  ("Code: NNN. DB::Exception: ...") with the ``X-ClickHouse-Exception-Code`` header and the HTTP status
  ClickHouse gives that code (``exceptionCodeToHTTPStatus``).

With ``tls`` it serves HTTPS. What it does not do: a result is computed whole before it is sent (in
chunks), where a server streams blocks as the query makes them; no sessions, compression, progress headers
or query cancellation on a closed connection (a query that is sent has already finished).
``open_connections`` counts the client's TCP connections, so a test can see that a source closed the ones
it opened.
"""

from __future__ import annotations

import atexit
import base64
import gzip
import re
import secrets
import shutil
import ssl
import tempfile
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb

from .loopback import CountingHandler

_CODE = re.compile(r"Code: (\d+)\.")
_INSERT_DATA = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
# URL parameters that are the request's, not settings of its query.
_NOT_SETTINGS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "quota_key",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
    }
)
# ClickHouse's HTTP status for an error code (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), for the codes
# the tests meet; any other code is 500.
_STATUS = {516: 403, 497: 403, 192: 403, 193: 403, 62: 400, 47: 404, 60: 404, 81: 404, 46: 404, 159: 408}
_CHUNK = 64 * 1024


class _Engine:
    """The process's one embedded engine: chdb binds a process to one database path, kept open by a connection
    held for the process's life (the engine stops when its last connection closes)."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="smartingest-chdb-")
        self.path = f"{self.directory}/engine"
        self._keeper = chdb.connect(self.path)
        self.version, self.timezone = self.query("SELECT version(), timezone()").strip().split("\t")
        atexit.register(self.close)

    def query(self, sql: str) -> str:
        """Run ``sql`` as the engine's administrator (fixtures create databases and tables with it)."""
        return str(self._keeper.query(sql, "TabSeparated").bytes().decode())

    def close(self) -> None:
        self._keeper.close()
        shutil.rmtree(self.directory, ignore_errors=True)


_engine_lock = threading.Lock()
_engine: _Engine | None = None


def engine() -> _Engine:
    """The embedded engine every shim of this process serves (started on first use)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


class ClickHouseHttpShim:
    """A loopback HTTP server in a thread speaking ClickHouse's HTTP interface; ``users`` maps each user
    that may log in to its password. ``tls``: serve HTTPS with this server context."""

    def __init__(self, users: dict[str, str], tls: ssl.SSLContext | None = None) -> None:
        self.engine = engine()
        self.users = users
        self.requests: list[dict[str, str]] = []  # each request's URL parameters, in order
        self._open = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.shim = self  # type: ignore[attr-defined]
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="chdb-http", daemon=True)
        self._thread.start()

    def open_connections(self) -> int:
        """How many client connections are open now."""
        with self._lock:
            return self._open

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _opened(self, delta: int) -> None:
        with self._lock:
            self._open += delta


class _Handler(CountingHandler):
    @property
    def shim(self) -> ClickHouseHttpShim:
        return self.server.shim  # type: ignore[attr-defined, no-any-return]

    def count(self, delta: int) -> None:
        self.shim._opened(delta)

    def do_GET(self) -> None:
        # GET /ping and GET / answer "Ok." (clickhouse-connect's ping); the client posts its queries.
        self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})

    def do_POST(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        self.shim.requests.append(params)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        user, password = self._credentials(params)
        if self.shim.users.get(user) != password:
            message = f"{user}: Authentication failed: password is incorrect, or there is no user with such name"
            self._error(f"Code: 516. DB::Exception: {message}. (AUTHENTICATION_FAILED)")
            return
        settings = {k: v for k, v in params.items() if k not in _NOT_SETTINGS and not k.startswith("param_")}
        if params.get("database"):
            settings["database"] = params["database"]  # chdb takes it with the settings, as clickhouse-local
        insert = _INSERT_DATA.match(params.get("query") or "")
        if insert is not None and raw:
            # An INSERT's rows in the body, in the query's format: the engine reads them from a file.
            with tempfile.NamedTemporaryFile(dir=self.shim.engine.directory, suffix=".data") as data:
                data.write(self._decoded(raw))
                data.flush()
                self._run(f"{insert[1]} SELECT * FROM file('{data.name}', '{insert[2]}')", settings, "TabSeparated")
            return
        query = "\n".join(part for part in (params.get("query"), raw.decode()) if part)
        self._run(query, settings, params.get("default_format") or "TabSeparated")

    def _decoded(self, body: bytes) -> bytes:
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "lz4":
            import lz4.frame

            return bytes(lz4.frame.decompress(body))
        if encoding == "zstd":
            import zstandard

            return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
        return body

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user, password
        if "X-ClickHouse-User" in self.headers:
            return self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        return params.get("user", "default"), params.get("password", "")

    def _run(self, query: str, settings: dict[str, str], default_format: str) -> None:
        if any(c in value for value in settings.values() for c in "&?") or any(c in k for k in settings for c in "&="):
            self._error("Code: 36. DB::Exception: a setting this shim cannot pass to the engine. (BAD_ARGUMENTS)")
            return
        options = "&".join(f"{k}={v}" for k, v in settings.items())
        try:
            conn = chdb.connect(f"{self.shim.engine.path}?{options}" if options else self.shim.engine.path)
            try:
                result = conn.query(query, default_format).bytes()
            finally:
                conn.close()
        except Exception as exc:  # the engine's own error text, "Code: NNN. DB::Exception: ..."
            self._error(str(exc))
            return
        found = _FORMAT.search(query)
        fmt = found[1] if found else default_format
        headers = {
            "Content-Type": "text/tab-separated-values; charset=UTF-8"
            if fmt.startswith("TabSeparated")
            else "application/octet-stream",
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.shim.engine.timezone,
            "X-ClickHouse-Query-Id": secrets.token_hex(16),
            "X-ClickHouse-Server-Display-Name": "chdb-http-shim",
            "X-ClickHouse-Summary": '{"read_rows":"0","read_bytes":"0","written_rows":"0","written_bytes":"0",'
            '"total_rows_to_read":"0","result_rows":"0","result_bytes":"0"}',
        }
        self._send(200, result, headers)

    def _error(self, text: str) -> None:
        found = _CODE.search(text)
        code = int(found[1]) if found else 1001  # STD_EXCEPTION: what ClickHouse calls an error with no code
        text = text.removeprefix("Streaming query failed: ").strip()
        body = f"{text} (version {self.shim.engine.version})\n".encode()
        headers = {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(code)}
        self._send(_STATUS.get(code, 500), body, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Send a response in HTTP chunks, as ClickHouse does (a client left early ends the connection)."""
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "Keep-Alive")
            self.end_headers()
            for start in range(0, len(body), _CHUNK):
                piece = body[start : start + _CHUNK]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
