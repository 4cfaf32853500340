"""PostgreSQL connector: Arrow-native reads through ADBC (libpq ``COPY ... TO STDOUT (FORMAT binary)``).

Every call (``read``, ``schema``, ``preview``, ``test_connection``) opens its own connection and closes it
when done: after a failed statement an ADBC connection stays in an error state ("cannot start transaction"),
so sharing one across calls would turn one bad model into failures of every later call.

The session is read-only (``default_transaction_read_only``), so the Basic engine needs nothing but SELECT.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, Literal, Protocol
from urllib.parse import quote

import adbc_driver_manager
import adbc_driver_postgresql
import adbc_driver_postgresql.dbapi as pg_dbapi
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr, field_validator

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
)
from smartingest.sources.base import describe_model, quote_double
from smartingest.sources.sql import SqlConnector
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

# The ADBC statement option that bounds the size of each batch the driver decodes from the COPY stream.
BATCH_SIZE_HINT_OPTION = adbc_driver_postgresql.StatementOptions.BATCH_SIZE_HINT_BYTES.value
# Rough bytes per row used to turn ``batch_rows`` into that byte hint; batches are then sliced to batch_rows.
_BYTES_PER_ROW_ESTIMATE = 128
_MIN_HINT_BYTES = 1 << 20
_MAX_HINT_BYTES = 16 << 20

# Arrow decimal128 holds at most 38 digits; wider numerics become float64.
_MAX_DECIMAL128_PRECISION = 38
# PostgreSQL types that ADBC returns as opaque bytes in the binary wire format (or as a misleading integer,
# like money in cents): the read query casts them to text, which is what a user expects to sync.
_NUMERIC = "numeric"
_CAST_TO_NUMERIC = frozenset({"money"})


class PostgresSettings(SshTunnelSettings):
    """Connection settings of a PostgreSQL source (the keys of ``sources.NAME`` besides type and engine)."""

    host: str = Field("127.0.0.1", description="Server host name, IP address or Unix socket directory.")
    port: int = Field(5432, ge=1, le=65535, description="Server TCP port.")
    database: str = Field(description="Database to connect to.")
    user: str = Field(description="Role to log in as; it only needs SELECT on the models' tables.")
    password: SecretStr | None = Field(None, description="Password of the role (omit for trust or peer auth).")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        None, description="libpq sslmode (default: libpq's own default, prefer)."
    )
    search_path: list[str] | None = Field(
        None, description="Schemas searched for unqualified table names, e.g. [analytics, public]."
    )
    connect_timeout_seconds: int = Field(10, ge=1, description="Seconds to wait for a connection (libpq min 2).")
    application_name: str = Field("smartingest", description="Name shown in pg_stat_activity for our sessions.")
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a model's query that runs longer than this (no limit when unset)."
    )

    @field_validator("search_path", mode="before")
    @classmethod
    def _split_search_path(cls, value: Any) -> Any:
        # Accept the familiar comma-separated form as well as a YAML list.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class PostgresSource(SqlConnector[PostgresSettings, pg_dbapi.Connection]):
    """A PostgreSQL database read through ADBC; see the module docstring for the connection policy."""

    Settings = PostgresSettings
    DIALECT = "postgres"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"PostgresSource(host={s.host!r}, port={s.port}, database={s.database!r}, user={s.user!r})"

    def schema(self, model: ModelConfig) -> pa.Schema:
        """The model's normalised schema, from PostgreSQL's description of the prepared query (no rows read)."""
        query = self.model_sql(model)
        with self._session() as conn, translate_errors(lambda e: self._translate(e, model)):
            _query, raw = self._plan(conn, query)
            return Normaliser(raw, _leaf_rule).schema

    # ------------------------------------------------------------------------------------------ the driver's parts

    def _rows(self, conn: pg_dbapi.Connection, query: str) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(query)
            return [tuple(row.values()) for row in cur.fetch_arrow_table().to_pylist()]

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%' "
            f"ORDER BY 1 LIMIT {limit}"
        )

    def _uri(self, endpoint: tuple[str, int]) -> str:
        """A libpq URI with every value percent-encoded in the query string (safe for any user/password/host).

        The query-string form also takes Unix socket directories and IPv6 literals as ``host`` unchanged.
        Through an SSH tunnel, libpq connects to the tunnel's ``hostaddr`` and still checks the server's
        certificate against ``host`` (sslmode verify-full).
        """
        s = self.settings
        params: dict[str, str] = {
            "host": s.host,
            "port": str(endpoint[1]),
            "dbname": s.database,
            "user": s.user,
            "connect_timeout": str(s.connect_timeout_seconds),
            "application_name": s.application_name,
        }
        if s.tunnelled:
            params["hostaddr"] = endpoint[0]
        if s.password is not None:
            params["password"] = s.password.get_secret_value()
        if s.sslmode is not None:
            params["sslmode"] = s.sslmode
        # libpq decodes %XX only (not '+'), so quote with safe="" rather than urlencode's quote_plus.
        return "postgresql://?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())

    @contextlib.contextmanager
    def _session(self, read_only: bool = True) -> Iterator[pg_dbapi.Connection]:
        """Open an autocommit session, read-only unless the Lightning engine asks; closed on exit whatever
        happened."""
        with tunnel_to(self.settings, self.settings.host, self.settings.port) as endpoint:
            with translate_errors(self._translate):
                conn = pg_dbapi.connect(self._uri(endpoint), autocommit=True)
            try:
                with translate_errors(self._translate):
                    self._prepare_session(conn, read_only)
                yield conn
            finally:
                close_quietly(conn.close)

    def _planner_session(self) -> contextlib.AbstractContextManager[pg_dbapi.Connection]:
        return self._session(read_only=False)

    def _load(self, conn: pg_dbapi.Connection, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        # COPY in binary, through ADBC's bulk ingestion.
        with conn.cursor() as cur:
            cur.adbc_ingest(table, data, mode="create", db_schema_name=schema)

    def _prepare_session(self, conn: pg_dbapi.Connection, read_only: bool = True) -> None:
        # set_config in a SELECT rather than libpq's startup ``options``: poolers such as PgBouncer reject
        # unknown startup parameters. Session scope (false) since each statement is its own transaction.
        settings = [f"set_config('default_transaction_read_only', '{'on' if read_only else 'off'}', false)"]
        if self.settings.query_timeout_seconds is not None:
            timeout = f"{max(round(self.settings.query_timeout_seconds * 1000), 1)}ms"
            settings.append(f"set_config('statement_timeout', {_literal(timeout)}, false)")
        if self.settings.search_path:
            path = ", ".join(quote_double(schema) for schema in self.settings.search_path)
            settings.append(f"set_config('search_path', {_literal(path)}, false)")
        with conn.cursor() as cur:
            cur.execute("SELECT " + ", ".join(settings))
            cur.fetch_arrow_table()

    def _plan(self, conn: pg_dbapi.Connection, query: str) -> tuple[str, pa.Schema]:
        """The query to run and its raw ADBC schema, from a prepare/describe round trip (nothing executed).

        Columns of types ADBC only knows as opaque wire-format bytes (enums, inet, xml, ranges, ...) are cast
        to text, and money (int64 cents otherwise) to numeric, by wrapping the query; with duplicate column
        names the wrapper would be ambiguous, so those results keep the storage type.
        """
        # ADBC runs ``COPY (query) TO STDOUT``: end the text with a newline so a trailing ``-- comment`` in the
        # model cannot swallow the closing parenthesis.
        query = query + "\n"
        with conn.cursor() as cur:
            raw = cur.adbc_execute_schema(query)
        casts = {i: cast for i, f in enumerate(raw) if (cast := _cast_for(f)) is not None}
        if not casts or len(set(raw.names)) != len(raw.names):
            return query, raw
        columns = [
            f"{casts[i].format(quote_double(name))} AS {quote_double(name)}" if i in casts else quote_double(name)
            for i, name in enumerate(raw.names)
        ]
        wrapped = f"SELECT {', '.join(columns)} FROM (\n{query}) AS m\n"
        with conn.cursor() as cur:
            cast = cur.adbc_execute_schema(wrapped)
        # A numeric read as its text keeps saying what it is: the leaf rule makes it a decimal again.
        return wrapped, pa.schema(
            [
                f.with_metadata(_numeric_metadata(raw.field(i))) if _numeric_as_text(raw.field(i)) else f
                for i, f in enumerate(cast)
            ]
        )

    def _stream(self, conn: pg_dbapi.Connection, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        """Start the COPY and return the translated, normalised, re-batched stream over it."""
        hint = min(max(batch_rows * _BYTES_PER_ROW_ESTIMATE, _MIN_HINT_BYTES), _MAX_HINT_BYTES)

        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            query, raw = self._plan(conn, query)
            normalise = Normaliser(raw, _leaf_rule)
            cur = conn.cursor(adbc_stmt_kwargs={BATCH_SIZE_HINT_OPTION: str(hint)})
            try:
                cur.execute(query)
                reader = cur.fetch_record_batch()
            except BaseException:
                close_quietly(cur.close)
                raise

        def release() -> None:
            close_quietly(reader.close)
            close_quietly(cur.close)

        batches = rebatch((normalise(b) for b in reader), batch_rows)
        return BatchStream(normalise.schema, batches, translate, on_close=release)

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_postgres_error(exc, self.settings, model)


# ------------------------------------------------------------------------------------------------- type rules


def _cast_for(field: pa.Field) -> str | None:
    """The SQL expression (``{}`` is the column) the read query applies to a top-level column, or None to
    take ADBC's type as is."""
    pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
    if _numeric_as_text(field):
        # Read as PostgreSQL's own text of the exact value (money: of its numeric value), turned into a
        # decimal by the leaf rule: PostgreSQL writes numeric text at almost no cost, while decoding binary
        # numeric in the driver cost more than every other column of a typical model together.
        return "{}::numeric::text" if pg_type in _CAST_TO_NUMERIC else "{}::text"
    if pa.types.is_list(field.type) and pg_type.startswith("_"):
        # ADBC flattens a multi-dimensional array into one list; as jsonb it keeps its nesting (and
        # numeric elements keep their exact digits). The column is then JSON text, sent parsed.
        return "to_jsonb({})"
    if isinstance(field.type, pa.OpaqueType) and pg_type != _NUMERIC:
        return "{}::text"
    return None


def numeric_type(typmod: int) -> pa.DataType:
    """The Arrow type of a PostgreSQL numeric with this typmod (-1: unconstrained).

    typmod - 4 packs precision in the high 16 bits and the scale in the low 11 bits, sign-extended since
    PostgreSQL 15 allows negative scales. decimal128(p, s) when the digits fit in 38, else float64.
    """
    if typmod < 4:
        return pa.float64()
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = ((packed & 0x7FF) ^ 1024) - 1024
    if scale < 0:  # numeric(2,-3) holds up to 99000: whole numbers of precision - scale digits
        precision, scale = precision - scale, 0
    precision = max(precision, scale)  # numeric(3,5) holds 0.00xyz: five digits after the point
    if precision < 1 or precision > _MAX_DECIMAL128_PRECISION:
        return pa.float64()
    return pa.decimal128(precision, scale)


# PostgreSQL keeps ±infinity as the extreme int64 (timestamps) and int32 (dates) of its own epoch,
# 2000-01-01; ADBC shifts them to 1970's epoch and they wrap around. Put them back at the extremes, so
# that they read as what they are (and no real instant is mistaken for them).
_PG_EPOCH_US = 946_684_800_000_000
_PG_EPOCH_DAYS = 10_957
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_TIMESTAMP_INFINITY = ((_INT64_MAX + _PG_EPOCH_US + 2**63) % 2**64 - 2**63, _INT64_MAX)
_TIMESTAMP_MINUS_INFINITY = (_INT64_MIN + _PG_EPOCH_US, _INT64_MIN)
_DATE_INFINITY = ((_INT32_MAX + _PG_EPOCH_DAYS + 2**31) % 2**32 - 2**31, _INT32_MAX)
_DATE_MINUS_INFINITY = (_INT32_MIN + _PG_EPOCH_DAYS, _INT32_MIN)


def _leaf_rule(field: pa.Field) -> tuple[pa.DataType, Converter] | None:
    """Leaf rules of PostgreSQL results: numeric, and ±infinity in timestamps and dates."""
    if pa.types.is_timestamp(field.type) and field.type.unit == "us":
        return field.type, _infinities(pa.int64(), _TIMESTAMP_INFINITY, _TIMESTAMP_MINUS_INFINITY)
    if pa.types.is_date32(field.type):
        return field.type, _infinities(pa.int32(), _DATE_INFINITY, _DATE_MINUS_INFINITY)
    return _numeric_rule(field)


def _infinities(ticks_type: pa.DataType, *sentinels: tuple[int, int]) -> Converter:
    def convert(arr: pa.Array) -> pa.Array:
        ticks = arr.view(ticks_type)
        for wrapped, extreme in sentinels:
            hit = pc.equal(ticks, pa.scalar(wrapped, ticks_type))
            if pc.any(hit).as_py():
                ticks = pc.if_else(hit, pa.scalar(extreme, ticks_type), ticks)
        return ticks.view(arr.type)

    return convert


def _numeric_as_text(field: pa.Field) -> bool:
    """Whether the read query turns this top-level column into the text of a numeric (see ``_cast_for``)."""
    pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
    return pg_type in _CAST_TO_NUMERIC or (pg_type == _NUMERIC and not pa.types.is_list(field.type))


def _numeric_metadata(field: pa.Field) -> dict[bytes, bytes]:
    """The metadata of a numeric column read as text: numeric, with its typmod (money's numeric has none)."""
    meta = dict(field.metadata or {})
    if meta.get(b"POSTGRESQL:type") != _NUMERIC.encode():
        meta[b"POSTGRESQL:typmod"] = b"-1"
    meta[b"POSTGRESQL:type"] = _NUMERIC.encode()
    return meta


def _numeric_rule(field: pa.Field) -> tuple[pa.DataType, Converter] | None:
    """Leaf rule: PostgreSQL numeric (its text, or ADBC's opaque extension over it) to decimal128 or float64."""
    meta = field.metadata or {}
    storage = field.type.storage_type if isinstance(field.type, pa.OpaqueType) else field.type
    if meta.get(b"POSTGRESQL:type") != _NUMERIC.encode() or not pa.types.is_string(storage):
        return None
    target = numeric_type(int(meta.get(b"POSTGRESQL:typmod", b"-1")))

    def convert(arr: pa.Array) -> pa.Array:
        text = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
        if pa.types.is_decimal(target):
            # ADBC renders NaN/Infinity as nan/inf; a decimal cannot hold them (nor can JSON): null.
            special = pc.is_in(text, value_set=pa.array(["nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"]))
            text = pc.if_else(special, pa.scalar(None, pa.string()), text)
        return text.cast(target)

    return target, convert


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on in every supported PostgreSQL)."""
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------- error mapping

_AUTH_PATTERNS = re.compile(
    r"password authentication failed|role \".*\" does not exist|no pg_hba\.conf entry|authentication failed|"
    r"database \".*\" does not exist|permission denied for database|must be superuser|"
    r"does not have (the )?login|not permitted to log in",
    re.IGNORECASE,
)
_CONNECTION_PATTERNS = re.compile(
    r"connection refused|could not translate host name|timeout expired|could not connect|"
    r"network is unreachable|no route to host|server closed the connection|terminating connection|"
    r"connection to server .* lost|could not receive data|could not send data|no connection to the server|"
    r"ssl syscall error|the database system is (starting up|shutting down|in recovery mode)|"
    r"too many (connections|clients)|remaining connection slots|connection .* failed|failed to connect",
    re.IGNORECASE,
)
_TRANSIENT_PATTERNS = re.compile(
    r"deadlock detected|could not serialize|canceling statement due to|out of memory|lock timeout|"
    r"could not obtain lock",
    re.IGNORECASE,
)
_LIBPQ_PREFIX = re.compile(r"^.*?\[libpq\]\s*(Failed to connect:\s*|Execution error \[\w+\]:\s*)?", re.DOTALL)


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if state:
        return str(state)
    match = re.search(r"SQLSTATE: ([0-9A-Z]{5})", str(exc))
    return match[1] if match else None


def _primary_message(exc: BaseException) -> str:
    """PostgreSQL's own error text: the primary message from the diagnostics, else the cleaned libpq text."""
    for key, value in getattr(exc, "details", None) or []:
        if key == b"PG_DIAG_MESSAGE_PRIMARY":
            return value.decode(errors="replace")
    text = _LIBPQ_PREFIX.sub("", str(exc), count=1)
    text = text.split("\nQuery was:")[0].split(". SQLSTATE:")[0]
    # "connection to server at "h" (addr), port N failed: FATAL:  ..." repeats what our message says already.
    text = re.sub(r'^connection to server (at|on) "[^"]*"( \([^)]*\))?, port \d+ failed:\s*', "", text.strip())
    text = re.sub(r"^\s*(ERROR|FATAL):\s*", "", text)
    return one_line(text)


def map_postgres_error(
    exc: BaseException, settings: PostgresSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate an ADBC/libpq error into the error tree; None for exceptions that are not the driver's.

    Errors raised while streaming the COPY come as plain OSError without SQLSTATE; they are classified on
    libpq's text (see ``classify_postgres_error``).
    """
    if not isinstance(exc, adbc_driver_manager.Error | OSError | pa.ArrowException):
        return None
    raw = str(exc)
    return classify_postgres_error(
        _sqlstate(exc),
        _primary_message(exc),
        raw,
        connect_failed="Failed to connect" in raw,
        settings=settings,
        model=model,
    )


class PostgresLike(Protocol):
    """The settings an error message names (PostgreSQL's, and those of databases speaking its protocol)."""

    host: str
    port: int
    user: str
    database: str
    password: SecretStr | None
    query_timeout_seconds: float | None


def classify_postgres_error(
    state: str | None,
    detail: str,
    raw: str,
    *,
    connect_failed: bool,
    settings: PostgresLike,
    model: ModelConfig | None = None,
    vendor: str = "PostgreSQL",
) -> SourceError:
    """The error tree's error for a PostgreSQL-protocol error: its SQLSTATE (None when the driver gives
    none), the server's primary message, the driver's whole text, and whether it came from connecting.

    The one place that decides transient vs permanent for PostgreSQL and Redshift:

    * cannot reach the server (refused, unknown host, timeout, connection lost, server starting or shutting
      down, too many connections) -> SourceConnectionError (transient);
    * credentials or database refused (28xxx, 3D000, "role ... does not exist") -> SourceAuthError;
    * insufficient privilege (42501) -> SourceAuthError: the role needs a GRANT, the model is fine;
    * the query timeout reached (57014, "statement timeout") -> SourceError marked permanent, naming
      ``query_timeout_seconds`` (a retry would time out again);
    * the model's SQL is wrong (42xxx: undefined table/column, syntax), fails on its data (22xxx) or tries
      to write (25006, the session is read-only) -> ModelError with the server's message;
    * deadlock, serialization failure, a cancelled statement, out of memory -> SourceError marked transient.

    The password is never part of a message: libpq does not echo it, and it is scrubbed besides.
    """
    where = f"{settings.host}:{settings.port}"
    refused = f"{vendor} at {where} refused user {settings.user!r} on database {settings.database!r}"
    unreachable = f"cannot reach {vendor} at {where}"
    mapped: SourceError
    if state in (None, "57014") and "canceling statement due to statement timeout" in raw:
        mapped = query_timeout_error(_subject(model), settings.query_timeout_seconds, detail)
    elif state is None:
        if connect_failed and _AUTH_PATTERNS.search(raw):
            mapped = SourceAuthError(f"{refused}: {detail}")
        elif connect_failed or _CONNECTION_PATTERNS.search(raw):
            mapped = SourceConnectionError(f"{unreachable}: {detail}")
        elif _TRANSIENT_PATTERNS.search(raw):
            mapped = source_error(SourceError, f"{vendor} at {where} failed temporarily: {detail}", transient=True)
        else:  # e.g. "ERROR:  division by zero" met while streaming: the model's query failed on its data
            mapped = ModelError(f"{_subject(model)} cannot be read: {detail}")
    elif state.startswith("28") or state == "3D000":
        mapped = SourceAuthError(f"{refused}: {detail}")
    elif state == "42501":
        mapped = SourceAuthError(f"user {settings.user!r} may not read {_subject(model)}: {detail} (GRANT SELECT)")
    elif state.startswith(("08", "57P")) or state == "53300":
        mapped = SourceConnectionError(f"{unreachable}: {detail}")
    elif state.startswith(("40", "53", "55P03", "57014")):
        mapped = source_error(SourceError, f"{vendor} at {where} failed temporarily: {detail}", transient=True)
    elif state == "25006":
        mapped = ModelError(f"{_subject(model)} tries to write, but sources are read-only: {detail}")
    elif state.startswith(_MODEL_CLASSES):
        mapped = ModelError(f"{_subject(model)} cannot be read: {detail} (SQLSTATE {state})")
    else:
        mapped = SourceError(f"{vendor} at {where} failed: {detail} (SQLSTATE {state})")
    return scrub_secrets(mapped, settings)


# SQLSTATE classes that mean the model's SQL or its data is wrong: syntax/access rule, data exception, feature
# not supported, cardinality, SQL routine, external routine, invalid schema name, invalid transaction state.
_MODEL_CLASSES = ("42", "22", "0A", "21", "2F", "38", "39", "3F", "25", "P0")


def _subject(model: ModelConfig | None) -> str:
    return f"model {describe_model(model)}" if model is not None else "the query"


__all__ = [
    "BATCH_SIZE_HINT_OPTION",
    "PostgresLike",
    "PostgresSettings",
    "PostgresSource",
    "classify_postgres_error",
    "map_postgres_error",
    "numeric_type",
]
