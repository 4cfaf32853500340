"""Trino connector: a query's pages fetched over Trino's HTTP client protocol by the official client, each
page built into an Arrow record batch column by column.

Trino's protocol is HTTP: the statement is posted to ``/v1/statement`` and its results are followed page by
page through each answer's ``nextUri``, rows as JSON with each column's type signature. The official client
(``trino``) has no Arrow path: its cursor turns every value into a Python object (Decimal, datetime) one call
at a time. So the connector uses the client's request layer (``TrinoRequest``: the headers, basic auth,
retries of idempotent requests, Trino's error objects) and reads each page's rows as the JSON parser left
them: the rows of a page are transposed once and each column becomes an Arrow array in one call, the text
forms (decimals, dates, timestamps) parsed by Arrow's compute kernels.

Where the coordinator offers the spooling protocol (Trino 466 and later, when an administrator enabled it),
the client asks for it: results then come as segments, inline or downloaded from the spooling storage,
compressed with zstd or lz4; each segment is decoded by the client's own decoders and becomes a page here.
A coordinator without spooling ignores the request and answers pages as before.

Trino has no read-only session: a model's SQL that would write is refused before it is sent, and access
control keeps the user to SELECT (see docs/sources.md). Sessions are in UTC; ``query_timeout_seconds``
becomes the ``query_max_execution_time`` session property, which the coordinator enforces itself (the
client's request timeout only bounds one HTTP wait and would leave the query running).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc
import requests
import trino.client
import trino.exceptions
from pydantic import Field, SecretStr, model_validator
from requests.adapters import HTTPAdapter
from trino.auth import BasicAuthentication

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
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
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

log = logging.getLogger("smartingest.sources")
_UTC_US = pa.timestamp("us", tz="UTC")
_READ_TIMEOUT_SECONDS = 60.0  # one HTTP wait; the coordinator answers a nextUri within about a second
# The encodings the client can decode, most compact first; a coordinator without spooling ignores them.
_ENCODINGS = ["json+zstd", "json+lz4", "json"]

HttpScheme = Literal["http", "https"]


# ``schema`` is Trino's own word for the key; it shadows BaseModel's deprecated schema() method, never used on
# settings, and pydantic would warn about that at every import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class TrinoSettings(SshTunnelSettings):
        """Connection settings of a Trino source (the keys of ``sources.NAME`` besides type and engine)."""

        host: str = Field(description="Coordinator host name or IP address.")
        port: int | None = Field(
            None, ge=1, le=65535, description="Coordinator port (default 8080, or 443 with https)."
        )
        http_scheme: HttpScheme = Field("http", description="http, or https for TLS (needed with a password).")
        verify: bool = Field(True, description="With https, check the coordinator's certificate and its name.")
        ca_cert: str | None = Field(None, description="PEM file of the CA that signed the coordinator's certificate.")
        user: str = Field(description="User the queries run as; access control decides what it may read.")
        password: SecretStr | None = Field(
            None, description="The user's password (HTTP basic auth, over https only); unset: no authentication."
        )
        catalog: str = Field(description="Catalog whose schemas and tables models read; the table picker lists it.")
        schema: str | None = Field(  # type: ignore[assignment]
            None, description="Schema in which unqualified table names are looked up (unset: name schema.table)."
        )
        source: str = Field("smartingest", description="Source name the queries carry (resource groups, query lists).")
        session_properties: dict[str, str] | None = Field(
            None, description="Session properties every query runs with, e.g. {query_max_memory: 2GB}."
        )
        connect_timeout_seconds: int = Field(10, ge=1, le=3600, description="Seconds to wait for a connection.")
        query_timeout_seconds: float | None = Field(
            None,
            gt=0,
            description="Stop a model's query that runs longer than this (query_max_execution_time; unset: no limit).",
        )

        @model_validator(mode="after")
        def _checked(self) -> Self:
            if self.password is not None and self.http_scheme != "https":
                raise ValueError("a password is sent only over TLS: set http_scheme: https")
            for name in self.session_properties or {}:
                if not name or any(c in name for c in "=, "):
                    raise ValueError(f"session_properties: {name!r} is not a session property name")
            if self.query_timeout_seconds is not None and "query_max_execution_time" in (self.session_properties or {}):
                raise ValueError("give the time limit once: query_timeout_seconds or query_max_execution_time")
            return self


# ------------------------------------------------------------------------------------------------ Trino's types


@dataclass(frozen=True)
class _Column:
    """How one result column becomes Arrow: its field and the conversion of a page's values."""

    field: pa.Field
    convert: Callable[[list[Any]], pa.Array]


def plan_column(column: dict[str, Any]) -> _Column:
    """The Arrow field of a result column (from its ``typeSignature``) and how its JSON values become it."""
    name = str(column["name"])
    signature = column.get("typeSignature") or {"rawType": column.get("type", "varchar"), "arguments": []}
    raw = str(signature["rawType"]).lower()
    args = [a.get("value") for a in signature.get("arguments", [])]
    if raw in _DIRECT:
        return _Column(pa.field(name, _DIRECT[raw]), partial(pa.array, type=_DIRECT[raw]))
    if raw in ("real", "double"):
        typ = pa.float32() if raw == "real" else pa.float64()
        return _Column(pa.field(name, typ), partial(_floats, typ=typ))
    if raw == "decimal":
        typ = pa.decimal128(int(args[0]), int(args[1]))
        return _Column(pa.field(name, typ), partial(_parsed, typ=typ))
    if raw == "date":
        return _Column(pa.field(name, pa.date32()), partial(_parsed, typ=pa.date32()))
    if raw == "timestamp":
        return _Column(pa.field(name, pa.timestamp("us")), lambda v: _local_time(pa.array(v, pa.string())))
    if raw == "timestamp with time zone":
        return _Column(pa.field(name, _UTC_US), lambda v: _instants(pa.array(v, pa.string())))
    if raw == "time":
        return _Column(pa.field(name, pa.time64("us")), _time_of_day)
    if raw == "varbinary":
        return _Column(pa.field(name, pa.binary()), _base64)
    if raw == "json":
        return _Column(pa.field(name, pa.string(), metadata=JSON_TEXT), lambda v: pa.array(v, pa.string()))
    if raw in ("array", "map", "row"):
        to_json = _json_of(signature)
        field = pa.field(name, pa.string(), metadata=JSON_TEXT)
        return _Column(field, lambda v: pa.array([None if x is None else to_json(x) for x in v], pa.string()))
    # char, varchar, uuid, ipaddress, intervals, time with time zone, geometry...: the text Trino sends.
    return _Column(pa.field(name, pa.string()), _text)


_DIRECT: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "unknown": pa.null(),  # the type of a bare NULL
}
_NOT_A_NUMBER = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _floats(values: list[Any], typ: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # NaN and the infinities come as text
        return pa.array([_NOT_A_NUMBER.get(v, v) if isinstance(v, str) else v for v in values], typ)


def _parsed(values: list[Any], typ: pa.DataType) -> pa.Array:
    """Values Trino writes as text (decimals), parsed by Arrow's cast kernel."""
    return pc.cast(pa.array(values, pa.string()), typ)


def _local_time(text: pa.Array) -> pa.Array:
    """``2024-01-02 03:04:05.123456789`` as a timestamp to the microsecond (digits past it cut)."""
    return pc.cast(pc.utf8_slice_codeunits(text, 0, 26), pa.timestamp("us"))


def _instants(text: pa.Array) -> pa.Array:
    """``2024-01-02 03:04:05.123 Europe/Berlin`` (or ``UTC``, ``+02:00``) as the UTC instant: the local time
    read in each distinct zone of the page, one vectorised pass per zone."""
    parts = pc.extract_regex(text, r"^(?P<local>\S+ \S+) (?P<zone>.+)$")
    local = _local_time(pc.struct_field(parts, "local"))  # struct_field keeps a null row null
    zones = pc.struct_field(parts, "zone")
    result = pa.nulls(len(text), _UTC_US)
    for zone in pc.unique(zones.drop_null()).to_pylist():
        # A time that falls twice at a DST change reads as the earlier one, as the official client reads it.
        converted = pc.assume_timezone(local, zone, ambiguous="earliest", nonexistent="earliest").cast(_UTC_US)
        result = pc.if_else(pc.equal(zones, zone), converted, result)
    return result


def _time_of_day(values: list[Any]) -> pa.Array:
    text = pa.array(values, pa.string())
    stamps = _local_time(pc.binary_join_element_wise("1970-01-01 ", text, ""))
    return pc.cast(stamps, pa.time64("us"))


def _base64(values: list[Any]) -> pa.Array:
    # Arrow has no base64 kernel; varbinary columns are rare in models.
    return pa.array([None if v is None else base64.b64decode(v) for v in values], pa.binary())


def _text(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a type Trino sends as a JSON number or object
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())


def _json_of(signature: dict[str, Any]) -> Callable[[Any], str]:
    """The JSON text of a nested value; a ROW (sent as a JSON array) becomes an object of its field names."""
    named = _namer(signature)
    return lambda value: json.dumps(named(value), ensure_ascii=False, separators=(",", ":"))


def _namer(signature: dict[str, Any]) -> Callable[[Any], Any]:
    raw = str(signature.get("rawType", "")).lower()
    args = signature.get("arguments", [])
    if raw == "row":
        fields = []
        for i, arg in enumerate(args):
            value = arg.get("value") or {}
            name = (value.get("fieldName") or {}).get("name") or f"field{i}"
            fields.append((name, _namer(value.get("typeSignature") or {})))
        return lambda row: None if row is None else {n: f(v) for (n, f), v in zip(fields, row, strict=False)}
    if raw == "array" and args:
        item = _namer(args[0].get("value") or {})
        return lambda items: None if items is None else [item(v) for v in items]
    if raw == "map" and len(args) == 2:
        item = _namer(args[1].get("value") or {})
        return lambda entries: None if entries is None else {k: item(v) for k, v in entries.items()}
    return lambda value: value


def page_batch(rows: list[list[Any]], columns: list[_Column], schema: pa.Schema) -> pa.RecordBatch:
    """A page of JSON rows as one record batch: transposed once, each column converted in one call."""
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = [c.convert(list(v)) for c, v in zip(columns, values, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------------------------- the protocol


class _Query:
    """One statement followed through its ``nextUri``s: its columns, then its pages of rows."""

    def __init__(self, request: trino.client.TrinoRequest, spool: _Spool, sql: str) -> None:
        self._request = request
        self._spool = spool
        self._status = trino.client.TrinoStatus("", {}, [], "", None, None, None, [], [])
        self._status = self._processed(request.post(sql))
        self._pending: list[list[list[Any]]] = []  # pages that came before the columns were read

    @property
    def finished(self) -> bool:
        return self._status.next_uri is None

    def columns(self) -> list[dict[str, Any]]:
        """The result's columns, following the query until the coordinator has planned it."""
        while not self._status.columns:
            self._pending.extend(self._pages_of(self._status))
            if self.finished:
                raise trino.exceptions.TrinoQueryError({"message": "the query returned no columns"})
            self._advance()
        return list(self._status.columns)

    def pages(self) -> Iterator[list[list[Any]]]:
        """Every page of rows, in order, until the query has finished."""
        self.columns()
        yield from self._pending
        self._pending = []
        yield from self._pages_of(self._status)
        while not self.finished:
            self._advance()
            yield from self._pages_of(self._status)

    def cancel(self) -> None:
        """Stop the query on the coordinator when it has not finished (a read left early)."""
        if not self.finished:
            self._request.delete(str(self._status.next_uri)).close()
            self._status.next_uri = None

    def _advance(self) -> None:
        self._status = self._processed(self._request.get(str(self._status.next_uri)))

    def _processed(self, response: requests.Response) -> trino.client.TrinoStatus:
        """The answer read, its error raised; closed either way: a response an error's traceback keeps
        would otherwise keep its socket open after the session closed its pool."""
        try:
            return self._request.process(response)
        except trino.exceptions.TrinoQueryError:
            self._status.next_uri = None  # the query failed: nothing is left to follow or cancel
            raise
        finally:
            response.close()

    def _pages_of(self, status: trino.client.TrinoStatus) -> Iterator[list[list[Any]]]:
        rows = status.rows
        if isinstance(rows, dict):  # the spooling protocol: segments of rows, each decoded as a page
            yield from self._spool.pages(rows)
        elif rows:
            yield rows


class _RawRows:
    """The client's row mapper, doing nothing: the JSON values are converted a column at a time here."""

    def map(self, rows: Any) -> Any:
        return rows


@dataclass
class _Spool:
    """Where spooled segments are downloaded from: a session of the call's own, without the user's
    credentials (segments may sit in object storage), and the client's request for it."""

    http: requests.Session
    request: trino.client.TrinoRequest

    def pages(self, data: dict[str, Any]) -> Iterator[list[list[Any]]]:
        """The rows of each segment of a spooled page, decompressed and parsed by the client's decoders."""
        factory = trino.client.CompressedQueryDataDecoderFactory(_RawRows())  # type: ignore[arg-type]
        decoder = trino.client.SegmentDecoder(factory.create(data["encoding"]))
        for raw in data["segments"]:
            if raw["type"] == "inline":
                yield decoder.decode(trino.client.InlineSegment(raw))
                continue
            segment = trino.client.SpooledSegment(raw, self.request)
            rows = decoder.decode(segment)
            self._acknowledge(segment)
            yield rows

    def _acknowledge(self, segment: trino.client.SpooledSegment) -> None:
        """Tell the coordinator a segment was read, so it may delete it. Sent here, on the call's session,
        rather than by the client's background thread, which could outlive the call."""
        headers = {key: values[0] for key, values in segment.headers.items() if values}
        try:
            self.http.get(segment.ack_uri, headers=headers, timeout=2).close()
        except requests.exceptions.RequestException as exc:  # an unacknowledged segment expires on its own
            log.debug("could not acknowledge a spooled segment: %s", exc)


class _Adapter(HTTPAdapter):
    """requests' adapter, closing its connections when it closes: urllib3 2 leaves a cleared pool's
    connections to the garbage collector, so a pool that an error's traceback keeps would keep its socket.
    It verifies certificates as the settings say. With ``server_hostname`` (HTTPS through an SSH tunnel) it
    connects to the tunnel's local end and checks the certificate against that name."""

    def __init__(self, verify: bool | str, server_hostname: str | None = None) -> None:
        self._verify = verify
        self._server_hostname = server_hostname
        super().__init__()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        # The settings' verify and ca_cert, whatever REQUESTS_CA_BUNDLE says (requests lets it win otherwise).
        kwargs["verify"] = self._verify
        return super().send(request, *args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._server_hostname is not None:
            kwargs |= {"server_hostname": self._server_hostname, "assert_hostname": self._server_hostname}
        super().init_poolmanager(*args, **kwargs)

    def close(self) -> None:
        pools = self.poolmanager.pools
        for key in pools.keys():  # noqa: SIM118 - the container cannot be iterated
            pool = pools.get(key)
            if pool is not None:
                pool.close()
        super().close()


@dataclass
class _Coordinator:
    """One call's HTTP sessions to the coordinator; each statement gets a request of its own on them."""

    http: requests.Session
    spool: _Spool
    client_session: trino.client.ClientSession
    host: str
    port: int
    settings: TrinoSettings

    def statement(self, sql: str) -> _Query:
        request = _request(self.settings, self.host, self.port, self.http, self.client_session, authenticated=True)
        return _Query(request, self.spool, sql)


def _request(
    s: TrinoSettings,
    host: str,
    port: int,
    http: requests.Session,
    client_session: trino.client.ClientSession,
    *,
    authenticated: bool,
) -> trino.client.TrinoRequest:
    """The client's request for one statement (or for spooled downloads, without the user's password)."""
    password = s.password.get_secret_value() if s.password is not None and authenticated else None
    return trino.client.TrinoRequest(
        host=host,
        port=port,
        client_session=client_session,
        http_session=http,
        http_scheme=s.http_scheme,
        auth=BasicAuthentication(s.user, password) if password is not None else None,
        request_timeout=(float(s.connect_timeout_seconds), _READ_TIMEOUT_SECONDS),
    )


# ------------------------------------------------------------------------------------------------ the connector


class TrinoSource(SqlConnector[TrinoSettings, _Coordinator]):
    """A Trino (or Starburst) cluster read over its HTTP client protocol; see the module docstring for how."""

    Settings = TrinoSettings
    DIALECT = "trino"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"TrinoSource(host={s.host!r}, port={self._port()}, catalog={s.catalog!r}, user={s.user!r})"

    def test_connection(self) -> None:
        """Run a query, then check that ``catalog`` and ``schema`` exist (Trino runs ``SELECT 1`` without)."""
        super().test_connection()
        schema = self.settings.schema
        with self._session() as conn, translate_errors(self._translate):
            # information_schema of a catalog that does not exist fails with CATALOG_NOT_FOUND.
            where = "" if schema is None else " WHERE schema_name = '" + schema.replace("'", "''") + "'"
            found = self._rows(conn, f"SELECT schema_name FROM information_schema.schemata{where}")
        if schema is not None and not found:
            message = f"catalog {self.settings.catalog!r} of {self._where()} has no schema {schema!r} (check schema)"
            raise source_error(SourceConnectionError, message, transient=False)

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Coordinator]:
        s = self.settings
        with tunnel_to(s, s.host, self._port()) as (host, port):
            http, download = self._http(), self._http()
            properties = dict(s.session_properties or {})
            if s.query_timeout_seconds is not None:
                properties["query_max_execution_time"] = f"{max(math.ceil(s.query_timeout_seconds * 1000), 1)}ms"
            client_session = trino.client.ClientSession(
                user=s.user,
                catalog=s.catalog,
                schema=s.schema,
                source=s.source,
                properties=properties,
                timezone="UTC",
                encoding=_ENCODINGS,
            )
            anonymous = trino.client.ClientSession(user=s.user, timezone="UTC")
            spool = _Spool(download, _request(s, host, port, download, anonymous, authenticated=False))
            try:
                yield _Coordinator(http, spool, client_session, host, port, s)
            finally:
                close_quietly(http.close)
                close_quietly(download.close)

    def _stream(self, conn: _Coordinator, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            statement = conn.statement(query)
            try:
                columns = [plan_column(c) for c in statement.columns()]
            except BaseException:
                close_quietly(statement.cancel)
                raise
        schema = pa.schema([c.field for c in columns])

        def batches() -> Iterator[pa.RecordBatch]:
            for rows in statement.pages():
                yield page_batch(rows, columns, schema)

        return BatchStream(schema, rebatch(batches(), batch_rows), translate, on_close=statement.cancel)

    def _rows(self, conn: _Coordinator, query: str) -> list[tuple[Any, ...]]:
        statement = conn.statement(query)
        statement.columns()
        return [tuple(row) for page in statement.pages() for row in page]

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            f" WHERE table_schema <> 'information_schema' ORDER BY 1 LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_trino_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _port(self) -> int:
        return port_of(self.settings)

    def _http(self) -> requests.Session:
        s = self.settings
        http = requests.Session()
        verify = s.ca_cert or s.verify
        http.verify = verify
        http.mount("http://", _Adapter(verify))
        http.mount("https://", _Adapter(verify, s.host if s.tunnelled else None))
        return http

    def _where(self) -> str:
        return f"Trino at {self.settings.host}:{self._port()}"


def port_of(settings: TrinoSettings) -> int:
    return settings.port or (443 if settings.http_scheme == "https" else 8080)


# ---------------------------------------------------------------------------------------------- error mapping

_GRANT_HINT = (
    "allow the user SELECT on it in the coordinator's access control (file-based rules: a table rule with "
    '"privileges": ["SELECT"] for catalog {catalog}; or GRANT SELECT ON {catalog}.<schema>.<table> TO USER {user})'
)
_NOT_FOUND_SETTING = {"CATALOG_NOT_FOUND": "catalog", "SCHEMA_NOT_FOUND": "schema", "MISSING_CATALOG_NAME": "catalog"}
_MODEL_ERRORS = {"SYNTAX_ERROR": "has a syntax error", "TABLE_NOT_FOUND": "names a table that does not exist"}
_TRANSIENT_TYPES = frozenset({"INSUFFICIENT_RESOURCES", "INTERNAL_ERROR", "EXTERNAL"})


def map_trino_error(
    exc: BaseException, settings: TrinoSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a Trino client error into the error tree (None for exceptions that are not its own).

    The one place that decides transient vs permanent for Trino, on the error's ``errorName``:

    * cannot reach the coordinator (refused, unknown host, timeout, connection lost, 502-504) ->
      SourceConnectionError (transient); its certificate not trusted -> permanent (fix ca_cert);
    * HTTP 401 -> SourceAuthError (check user and password); PERMISSION_DENIED -> SourceAuthError naming
      the access-control rule to add;
    * CATALOG_NOT_FOUND, SCHEMA_NOT_FOUND, MISSING_CATALOG_NAME -> SourceConnectionError marked permanent,
      naming the setting (catalog, schema) when the model does not name it itself;
    * INVALID_SESSION_PROPERTY -> permanent SourceError naming session_properties;
    * EXCEEDED_TIME_LIMIT -> SourceError marked permanent, naming query_timeout_seconds;
    * any other INSUFFICIENT_RESOURCES, INTERNAL_ERROR or EXTERNAL error (memory, queue full, a worker
      gone, the connector's source failing) -> SourceError marked transient;
    * SYNTAX_ERROR, TABLE_NOT_FOUND, COLUMN_NOT_FOUND and any other USER_ERROR about the model's SQL ->
      ModelError with Trino's text.
    """
    where = f"Trino at {settings.host}:{port_of(settings)}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    mapped: SourceError
    if isinstance(exc, trino.exceptions.TrinoQueryError):
        mapped = _query_error(exc, settings, subject, where)
    elif isinstance(exc, trino.exceptions.HttpError):
        mapped = _http_error(exc, settings, where)
    elif isinstance(exc, requests.exceptions.SSLError):
        message = f"{where} showed a certificate that is not trusted (set ca_cert, or verify: false): {exc}"
        mapped = source_error(SourceConnectionError, message, transient=False)
    elif isinstance(exc, requests.exceptions.RequestException | trino.exceptions.TrinoConnectionError):
        mapped = SourceConnectionError(f"cannot reach {where}: {one_line(str(_reason(exc)))}")
    else:
        return None
    return scrub_secrets(mapped, settings)


def _query_error(
    exc: trino.exceptions.TrinoQueryError, settings: TrinoSettings, subject: str, where: str
) -> SourceError:
    name, text = exc.error_name or "", one_line(exc.message)
    detail = f"{text} ({name})" if name else text
    if name == "PERMISSION_DENIED":
        hint = _GRANT_HINT.format(catalog=settings.catalog, user=settings.user)
        return SourceAuthError(f"user {settings.user!r} may not read {subject}: {detail}; {hint}")
    if name in _NOT_FOUND_SETTING and subject == "the query":
        setting = _NOT_FOUND_SETTING[name]
        message = f"{where}: {detail} (check {setting}: {getattr(settings, setting)!r})"
        return source_error(SourceConnectionError, message, transient=False)
    if name == "INVALID_SESSION_PROPERTY":
        return source_error(SourceError, f"{where} refused a session property: {detail} (check session_properties)")
    if name == "EXCEEDED_TIME_LIMIT":
        timeout = settings.query_timeout_seconds
        message = (
            f"{subject} ran longer than query_timeout_seconds ({timeout}): {detail}; raise it or make the query faster"
        )
        return source_error(SourceError, message, transient=False)
    if exc.error_type in _TRANSIENT_TYPES:
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    if name in _MODEL_ERRORS:
        return ModelError(f"{subject} {_MODEL_ERRORS[name]}: {detail}")
    if subject != "the query":
        return ModelError(f"{subject} cannot be read: {detail}")
    return SourceError(f"{where} failed: {detail}")


def _http_error(exc: trino.exceptions.HttpError, settings: TrinoSettings, where: str) -> SourceError:
    text = one_line(str(exc))
    if text.startswith("error 401"):
        return SourceAuthError(f"{where} refused user {settings.user!r} (check user and password): {text}")
    if isinstance(exc, trino.exceptions.Http502Error | trino.exceptions.Http503Error | trino.exceptions.Http504Error):
        return SourceConnectionError(f"{where} is not answering: {text}")
    return SourceError(f"{where} failed: {text}")


def _reason(exc: BaseException) -> BaseException:
    """The connection's own error under requests' and urllib3's wrappers."""
    seen: BaseException = exc
    while True:
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        inner = getattr(seen, "reason", None) if inner is None else inner
        if not isinstance(inner, BaseException) or inner is seen:
            return seen
        seen = inner


__all__ = ["TrinoSettings", "TrinoSource", "map_trino_error", "page_batch", "plan_column"]
