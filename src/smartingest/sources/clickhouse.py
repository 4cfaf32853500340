"""ClickHouse connector: rows streamed as Arrow record batches over ClickHouse's HTTP interface by
clickhouse-connect, the official driver (``query_arrow_stream``: the server writes its ArrowStream format and
pyarrow reads it batch by batch from the response, never row by row).

Each call opens a client of its own (a connection pool it owns, closed with the call) and makes the
session read-only: every request carries ``readonly=2``, so the server refuses a write while the client
can still set the settings of its queries; a user whose profile is read-only already keeps its own mode.
``query_timeout_seconds`` becomes ClickHouse's ``max_execution_time``.

Before streaming, the server describes the model (``DESCRIBE TABLE (query)``): its ClickHouse types say what
each Arrow column becomes (``_leaf_rule``), at any depth of Array, Tuple and Map. Enums are read as their
names, DateTime as UTC instants (the server sends seconds), Date as date32 whatever the server's settings,
String as UTF-8 text, decimals of more than 38 digits as float64 (the project's rule: the Basic engine's
DuckDB has no decimal256). The few types Arrow has no plain form of are turned into something plain in the
query itself (``_fallback``): IPv4 and IPv6 as their text, 128- and 256-bit integers as float64, and a
nested column holding any of them (or a Variant) as its JSON text.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc
import urllib3.exceptions
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import Error as ClickHouseDriverError
from pydantic import Field, SecretStr

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    Converter,
    Normaliser,
    close_quietly,
    one_line,
    query_timeout_error,
    rebatch,
    scrub_secrets,
    source_error,
    translate_errors,
    uuid_to_string,
)
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector, loaded_type
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

_MAX_DECIMAL128_PRECISION = 38
_UTC_US = pa.timestamp("us", tz="UTC")
_CH_TYPE = b"clickhouse:type"  # a field's ClickHouse type, put on each Arrow field to plan it
_CH_COLUMN = b"clickhouse:column"  # the model's column a (nested) field belongs to, for messages


class ClickHouseSettings(SshTunnelSettings):
    """Connection settings of a ClickHouse source (the keys of ``sources.NAME`` besides type and engine)."""

    host: str = Field("127.0.0.1", description="Server host name or IP address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="HTTP interface port (default 8123, or 8443 when secure)."
    )
    database: str = Field(description="Database whose tables and views models read by their bare names.")
    user: str = Field("default", description="User to log in as; it needs only SELECT on the models' tables.")
    password: SecretStr | None = Field(None, description="The user's password.")
    secure: bool = Field(False, description="Use TLS (HTTPS).")
    verify: bool = Field(True, description="With TLS, check the server's certificate (and that it names host).")
    ca_cert: str | None = Field(None, description="PEM file of the CA that signed the server's certificate.")
    connect_timeout_seconds: int = Field(10, ge=1, le=3600, description="Seconds to wait for a connection.")
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a model's query that runs longer than this (no limit when unset)."
    )


# --------------------------------------------------------------------------------------------- ClickHouse types


def _parse(text: str) -> tuple[str, list[str]]:
    """A ClickHouse type's name and its arguments' texts: ``Map(String, Array(UInt8))`` ->
    (``Map``, [``String``, ``Array(UInt8)``])."""
    text = text.strip()
    opening = text.find("(")
    if opening < 0 or not text.endswith(")"):
        return text, []
    return text[:opening].strip(), _split(text[opening + 1 : -1])


def _split(args: str) -> list[str]:
    """Arguments split at the commas outside quotes and parentheses (enum names may hold either)."""
    parts, depth, quote, start, escaped = [], 0, "", 0, False
    for i, char in enumerate(args):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(args[start:i].strip())
            start = i + 1
    parts.append(args[start:].strip())
    return [part for part in parts if part]


def _unwrap(text: str) -> str:
    """The type inside Nullable(...) and LowCardinality(...), which change no value."""
    name, args = _parse(text)
    while name in ("Nullable", "LowCardinality") and len(args) == 1:
        text = args[0]
        name, args = _parse(text)
    return text


# A named tuple element is ``name Type`` (the name maybe back-quoted); an unnamed one is just ``Type``.
_ELEMENT_NAME = re.compile(r"^(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+(?=\S)")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _element_type(element: str) -> str:
    found = _ELEMENT_NAME.match(element)
    return element[found.end() :] if found else element


def _annotate(field: pa.Field, ch_type: str, column: str) -> pa.Field:
    """``field`` (and its children, through Array, Map and Tuple) marked with its ClickHouse type."""
    name, args = _parse(_unwrap(ch_type))
    typ = field.type
    if name in ("Array", "Nested") and (pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        inner = args[0] if name == "Array" else f"Tuple({', '.join(args)})"
        child = _annotate(typ.value_field, inner, column)
        return field.with_type(pa.list_(child) if pa.types.is_list(typ) else pa.large_list(child))
    if name == "Map" and pa.types.is_map(typ) and len(args) == 2:
        key, item = (_annotate(f, t, column) for f, t in zip((typ.key_field, typ.item_field), args, strict=True))
        return field.with_type(pa.map_(key, item))
    if name == "Tuple" and pa.types.is_struct(typ) and len(args) == typ.num_fields:
        children = [_annotate(typ.field(i), _element_type(arg), column) for i, arg in enumerate(args)]
        return field.with_type(pa.struct(children))
    return field.with_metadata({_CH_TYPE: ch_type.encode(), _CH_COLUMN: column.encode()})


# Types Arrow has no plain form of, turned into one in the query: as a top-level column, with this function;
# nested in an Array, Map or Tuple (a Variant anywhere), the whole column as its JSON text.
_SCALAR_FALLBACKS = {
    "IPv4": ("toString", "String"),
    "IPv6": ("toString", "String"),
    "Int128": ("toFloat64", "Float64"),
    "UInt128": ("toFloat64", "Float64"),
    "Int256": ("toFloat64", "Float64"),
    "UInt256": ("toFloat64", "Float64"),
}
_JSON_FALLBACK = frozenset({"Variant"})


@dataclass(frozen=True)
class _Column:
    """One column of a model: its name, its ClickHouse type, and how the read query selects it."""

    name: str
    ch_type: str
    function: str | None = None  # applied to the column in the read query (None: selected as it is)
    json: bool = False  # the column is JSON text


def _column(name: str, ch_type: str) -> _Column:
    base, _ = _parse(_unwrap(ch_type))
    if base in _SCALAR_FALLBACKS:
        function, plain = _SCALAR_FALLBACKS[base]
        return _Column(name, plain, function)
    words = set(_WORD.findall(_QUOTED.sub("", ch_type)))
    if words & (_JSON_FALLBACK | set(_SCALAR_FALLBACKS)):
        return _Column(name, "String", "toJSONString", json=True)
    return _Column(name, ch_type, json=base in ("JSON", "Object", "Dynamic"))


# ------------------------------------------------------------------------------------------------- leaf rules


def _leaf_rule(field: pa.Field) -> tuple[pa.DataType, Converter] | None:
    """The plain type of a field the ClickHouse type marks, and how its values become it (None: Arrow's own
    type is already the plain one, or the Normaliser's generic rules make it so: uuid, json)."""
    meta = field.metadata or {}
    if _CH_TYPE not in meta:
        return None
    typ = field.type
    if pa.types.is_dictionary(typ):  # LowCardinality, where the server sends it as a dictionary
        value_type, inner = _leaf_rule(field.with_type(typ.value_type)) or (typ.value_type, _same)
        return value_type, (lambda a: inner(a.dictionary_decode()))
    name, args = _parse(_unwrap(meta[_CH_TYPE].decode()))
    column = meta[_CH_COLUMN].decode()
    if name == "String" or (name in ("JSON", "Object") and _is_bytes(typ)):
        return pa.string(), _text(column)
    if name == "FixedString":  # padded with zero bytes to its length: the text without them
        return pa.string(), lambda a: pc.utf8_rtrim(_text(column)(a), characters="\x00")
    if name == "Date" and pa.types.is_integer(typ):  # days since 1970 as UInt16 (older servers, or a setting)
        return pa.date32(), lambda a: pc.cast(a, pa.int32()).view(pa.date32())
    if name in ("DateTime", "DateTime64"):
        return _UTC_US, _instant
    if name in ("Enum8", "Enum16") and pa.types.is_integer(typ):
        return pa.string(), _enum(args, typ)
    if name == "Bool" and pa.types.is_integer(typ):
        return pa.bool_(), lambda a: pc.not_equal(a, 0)
    if name == "UUID" and pa.types.is_fixed_size_binary(typ):
        return pa.string(), uuid_to_string
    if pa.types.is_decimal(typ) and typ.precision > _MAX_DECIMAL128_PRECISION:
        return pa.float64(), lambda a: pc.cast(a, pa.float64())
    return None


def _same(values: pa.Array) -> pa.Array:
    return values


def _is_bytes(typ: pa.DataType) -> bool:
    return bool(pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ))


def _text(column: str) -> Converter:
    """String (bytes in ClickHouse) as UTF-8 text; a value that is not UTF-8 is a ModelError naming the fix."""

    def convert(values: pa.Array) -> pa.Array:
        try:
            if pa.types.is_string(values.type):
                values.validate(full=True)  # the server labels its String as text without checking it
                return values
            if pa.types.is_fixed_size_binary(values.type):
                values = pc.cast(values, pa.binary())
            return pc.cast(values, pa.string())
        except pa.ArrowInvalid as exc:
            raise ModelError(
                f"column {column!r} holds bytes that are not UTF-8 text; select it as hex({column}) or "
                f"base64Encode({column}) (or toValidUTF8({column}) to replace what is not text)"
            ) from exc

    return convert


def _instant(values: pa.Array) -> pa.Array:
    """DateTime (seconds since 1970, as UInt32) or DateTime64 (an Arrow timestamp in the column's zone) as
    the UTC instant, to the microsecond (DateTime64(7..9) lose their digits past it)."""
    if pa.types.is_integer(values.type):
        values = pc.cast(values, pa.int64()).view(pa.timestamp("s", tz="UTC"))
    return pc.cast(values, _UTC_US, safe=False)


_ENUM_ITEM = re.compile(r"^'((?:[^'\\]|\\.)*)'\s*=\s*(-?\d+)$", re.S)


def _enum(args: list[str], typ: pa.DataType) -> Converter:
    """An enum's values (the server sends their numbers) as their names, from the type's ``'name' = n``."""
    items = [found.groups() for found in map(_ENUM_ITEM.match, args) if found]
    names = pa.array([re.sub(r"\\(.)", r"\1", name) for name, _ in items], pa.string())
    numbers = pa.array([int(number) for _, number in items], typ)
    return lambda values: pc.take(names, pc.index_in(values, value_set=numbers))


# ------------------------------------------------------------------------------------------------ the connector


class ClickHouseSource(SqlConnector[ClickHouseSettings, Client]):
    """A ClickHouse database read over its HTTP interface; see the module docstring for how."""

    Settings = ClickHouseSettings
    DIALECT = "clickhouse"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"ClickHouseSource(host={s.host!r}, port={self._port()}, database={s.database!r}, user={s.user!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self, read_only: bool = True) -> Iterator[Client]:
        s = self.settings
        with tunnel_to(s, s.host, self._port()) as (host, port):
            with translate_errors(self._translate):
                client = clickhouse_connect.get_client(
                    host=host,
                    port=port,
                    # Through an SSH tunnel the certificate still has to name the server, not 127.0.0.1.
                    server_host_name=s.host,
                    username=s.user,
                    password=s.password.get_secret_value() if s.password else "",
                    database=s.database,
                    secure=s.secure,
                    verify=s.verify,
                    ca_cert=s.ca_cert,
                    connect_timeout=s.connect_timeout_seconds,
                    client_name="smartingest",
                    autogenerate_session_id=False,  # each request stands alone: no server session to lock
                    dedicated_pool=True,  # closing the client closes its connections
                )
            try:
                self._limits(client, read_only)
                yield client
            finally:
                close_quietly(client.close)

    def _stream(self, conn: Client, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            columns = self._describe(conn, query, model)
            stream = conn.query_arrow_stream(self._selected(query, columns))
            reader = stream.__enter__()  # a StreamContext reads only inside its context: left in release
        try:
            raw = pa.schema([_annotate(f, c.ch_type, c.name) for f, c in zip(reader.gen.schema, columns, strict=True)])
            normalise = Normaliser(raw, _leaf_rule)
        except BaseException:
            close_quietly(lambda: stream.__exit__(None, None, None))
            raise
        schema = pa.schema(
            [f.with_metadata(JSON_TEXT) if c.json else f for f, c in zip(normalise.schema, columns, strict=True)]
        )

        def batches() -> Iterator[pa.RecordBatch]:
            while True:
                try:
                    batch = reader.gen.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowException, OSError, urllib3.exceptions.HTTPError) as exc:
                    # The body ended before the Arrow stream did: the connection broke, or the query failed
                    # after its first rows were sent (ClickHouse then writes its error into the body).
                    raise SourceConnectionError(
                        f"the result of {_subject(model)} from {self._where()} broke off: {one_line(str(exc))}"
                    ) from exc
                yield pa.RecordBatch.from_arrays(normalise(batch).columns, schema=schema)

        def release() -> None:
            close_quietly(lambda: stream.__exit__(None, None, None))  # closes the response and its connection

        return BatchStream(schema, rebatch(batches(), batch_rows), translate, on_close=release)

    def _rows(self, conn: Client, query: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.query(query).result_rows]

    def _planner_session(self) -> contextlib.AbstractContextManager[Client]:
        return self._session(read_only=False)

    def _execute(self, conn: Client, sql: str) -> None:
        conn.command(sql)

    def _load(self, conn: Client, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        qualified = f"{self.quote(schema)}.{self.quote(table)}"
        declared = ", ".join(f"{self.quote(f.name)} {_loaded_type(f.type)}" for f in data.schema)
        conn.command(f"CREATE TABLE {qualified} ({declared})")
        for batch in data:  # each batch one INSERT in ClickHouse's Arrow format
            if batch.num_rows:
                conn.insert_arrow(qualified, pa.Table.from_batches([batch]))

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT concat(database, '.', name) FROM system.tables WHERE NOT is_temporary"
            " AND database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')"
            f" ORDER BY 1 LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_clickhouse_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _port(self) -> int:
        s = self.settings
        return s.port or (8443 if s.secure else 8123)

    def _where(self) -> str:
        return f"ClickHouse at {self.settings.host}:{self._port()}"

    def _limits(self, client: Client, read_only: bool) -> None:
        """Make every request of the client read-only (unless it is the planner's) and bounded by the query
        timeout."""
        readonly = client.server_settings.get("readonly")
        if read_only and (readonly is None or readonly.value == "0"):
            # 2, not 1: the client still sets its queries' settings (strings as text, the timeout).
            client.set_client_setting("readonly", "2")
        timeout = self.settings.query_timeout_seconds
        if timeout is None:
            return
        limit = client.server_settings.get("max_execution_time")
        if limit is not None and limit.readonly:
            raise source_error(
                SourceError,
                f"user {self.settings.user!r} may not set max_execution_time on {self._where()} (its profile is "
                "readonly=1), so query_timeout_seconds cannot apply: unset it, or give the user readonly=2",
                transient=False,
            )
        client.set_client_setting("max_execution_time", f"{timeout:g}")

    def _describe(self, conn: Client, query: str, model: ModelConfig) -> list[_Column]:
        """The model's columns and their ClickHouse types, as the server describes the query (no rows read)."""
        rows = conn.query(f"DESCRIBE TABLE (\n{query}\n)").result_rows
        if not rows:
            raise ModelError(f"{_subject(model)} is not a query that returns rows")
        return [_column(str(row[0]), str(row[1])) for row in rows]

    def _selected(self, query: str, columns: list[_Column]) -> str:
        """``query``, its columns with no plain Arrow form replaced by a plain one (see ``_fallback``)."""
        replaced = [f"{c.function}({self.quote(c.name)}) AS {self.quote(c.name)}" for c in columns if c.function]
        if not replaced:
            return query + "\n"
        return f"SELECT * REPLACE ({', '.join(replaced)}) FROM (\n{query}\n)\n"


# ---------------------------------------------------------------------------------------------- error mapping

# ClickHouse error codes, by what they mean for a sync.
_AUTHENTICATION_FAILED = frozenset({516, 192, 193})  # AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD
_ACCESS_DENIED = frozenset({497})
_UNKNOWN_DATABASE = 81
_TIMEOUT_EXCEEDED = 159
_READONLY = 164
_SYNTAX_ERROR = 62
# Too many queries, memory limit, network or socket errors, a task not scheduled, a query cancelled, Keeper.
_TRANSIENT = frozenset({202, 203, 209, 210, 236, 241, 394, 439, 999})
_SERVER_RESPONSE = re.compile(r"^.*?server response:\s*", re.S)
_URL = re.compile(r"\s*\(for url [^)]*\)\s*$")
_VERSION = re.compile(r"\s*\(version\s+(?:[^()]|\([^()]*\))*\)\s*$")
_CODE = re.compile(r"\bCode:\s*(\d+)")


def map_clickhouse_error(
    exc: BaseException, settings: ClickHouseSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a clickhouse-connect error into the error tree (None for exceptions that are not its own).

    The one place that decides transient vs permanent for ClickHouse, on the server's error code:

    * cannot reach the server (refused, unknown host, timeout, connection lost) -> SourceConnectionError
      (transient); its TLS certificate not trusted -> SourceConnectionError marked permanent (fix ca_cert);
    * unknown database (81) -> SourceConnectionError marked permanent (fix ``database``);
    * authentication failed (516) -> SourceAuthError; access denied (497) -> SourceAuthError naming the GRANT;
    * the query timeout reached (159) -> SourceError marked permanent, naming query_timeout_seconds;
    * too many queries, memory limit, network errors -> SourceError marked transient;
    * a write refused by the read-only session (164) -> ModelError;
    * unknown table (60) or identifier (47), syntax error (62), anything else the server says about the
      model's SQL -> ModelError with the server's text.
    """
    if not isinstance(exc, ClickHouseDriverError):
        return None
    port = settings.port or (8443 if settings.secure else 8123)
    where = f"ClickHouse at {settings.host}:{port}"
    subject = _subject(model)
    detail = _server_text(exc)
    code = exc.code if exc.code is not None else _code(detail)
    mapped: SourceError
    if code is None:
        mapped = _transport_error(exc, where, detail)
    elif code in _AUTHENTICATION_FAILED:
        mapped = SourceAuthError(f"{where} refused user {settings.user!r} (check user and password): {detail}")
    elif code in _ACCESS_DENIED:
        grant = f"GRANT SELECT ON {settings.database}.* TO {settings.user}"
        mapped = SourceAuthError(f"user {settings.user!r} lacks a privilege for {subject}: {detail}; fix: {grant}")
    elif code == _UNKNOWN_DATABASE:
        message = f"{where} has no database {settings.database!r} (check database): {detail}"
        mapped = source_error(SourceConnectionError, message, transient=False)
    elif code == _TIMEOUT_EXCEEDED:
        mapped = query_timeout_error(subject, settings.query_timeout_seconds, detail)
    elif code in _TRANSIENT:
        mapped = source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    elif code == _READONLY:
        mapped = ModelError(f"{subject} would write, which the read-only session refuses: {detail}")
    elif code == _SYNTAX_ERROR:
        mapped = ModelError(f"{subject} has a syntax error: {detail}")
    elif model is not None:
        mapped = ModelError(f"{subject} cannot be read: {detail}")
    else:
        mapped = SourceError(f"{where} failed: {detail}")
    return scrub_secrets(mapped, settings)


def _loaded_type(arrow: pa.DataType) -> str:
    """The column type of a table the Lightning engine loads (Nullable: a loaded key may be any value)."""
    if pa.types.is_timestamp(arrow):
        return "Nullable(DateTime64(6, 'UTC'))" if arrow.tz else "Nullable(DateTime64(6))"
    return loaded_type(arrow, "clickhouse")


def _subject(model: ModelConfig | None) -> str:
    return f"model {describe_model(model)}" if model is not None else "the query"


def _server_text(exc: BaseException) -> str:
    """ClickHouse's own text of an error: without the driver's preamble, the URL and the version trailer."""
    text = _SERVER_RESPONSE.sub("", str(exc), count=1)
    return one_line(_VERSION.sub("", _URL.sub("", text)))


def _code(text: str) -> int | None:
    found = _CODE.search(text)
    return int(found[1]) if found else None


def _transport_error(exc: BaseException, where: str, detail: str) -> SourceError:
    """An error with no ClickHouse code: the HTTP request failed (the cause says why) or the driver refused."""
    cause: BaseException | None = exc.__cause__
    while isinstance(reason := getattr(cause, "reason", None), BaseException):
        cause = reason  # urllib3's MaxRetryError -> the connection's own error
    if cause is not None and any(isinstance(arg, ssl.SSLCertVerificationError) for arg in (cause, *cause.args)):
        message = f"{where} showed a certificate that is not trusted (set ca_cert, or verify: false): {cause}"
        return source_error(SourceConnectionError, message, transient=False)
    if cause is not None:
        return SourceConnectionError(f"cannot reach {where}: {one_line(str(cause))}")
    return SourceError(f"{where} failed: {detail}")


__all__ = ["ClickHouseSettings", "ClickHouseSource", "map_clickhouse_error"]
