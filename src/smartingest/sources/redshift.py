"""Amazon Redshift connector: rows streamed as Arrow by connectorx, the session run through psycopg.

Redshift speaks PostgreSQL's wire protocol (of PostgreSQL 8.0) but has no ``COPY ... TO STDOUT``, the path
the PostgreSQL connector reads through, and lacks catalog columns ADBC's PostgreSQL driver needs. So:

* **psycopg** opens the session (answering at once, with the server's SQLSTATE, when the host, the
  credentials or the database are wrong), describes the model (the query run for no rows), lists the
  tables and runs the connection test;
* **connectorx** streams the rows as Arrow record batches over PostgreSQL's plain query protocol (its
  ``redshift`` source), in Rust, on a connection of its own that starts with the same session settings.

Redshift has no read-only session setting (``default_transaction_read_only`` is not among its parameters):
a model's SQL that would write is refused before it runs, and the user should hold only SELECT. Sessions
are in UTC, with the query timeout the settings give (``statement_timeout``).

The Lightning engine plans in the same psycopg session (nothing makes it read-only) and loads its tables
(the keys Iterable acknowledged) with multi-row ``INSERT ... VALUES`` through bound parameters: Redshift has
no ``COPY FROM STDIN``, and a COPY from S3 would need a bucket.

What the description says decides how each column is read: DECIMAL as its exact text, turned into
decimal128 of the column's precision and scale (connectorx forces every decimal into decimal128(38, 10));
SUPER as its JSON text (``JSON_SERIALIZE``); GEOMETRY and GEOGRAPHY as GeoJSON; TIMETZ as text; every type
connectorx cannot read as its text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal
from urllib.parse import quote

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr, field_validator

from smartingest.config.models import ModelConfig
from smartingest.errors import SourceError
from smartingest.sources._common import BatchStream, close_quietly, one_line, translate_errors
from smartingest.sources.base import quote_double
from smartingest.sources.cx_stream import PlannedColumn, connectorx_stream, planned_query, statement_mark
from smartingest.sources.postgres import classify_postgres_error, numeric_type
from smartingest.sources.sql import SqlConnector, limited, quote_identifier
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

# Type OIDs, by how connectorx reads them.
_AS_IS = frozenset({16, 17, 18, 19, 20, 23, 25, 701, 1042, 1043, 1082, 1083, 1114, 2950})
_INT2, _FLOAT4, _NUMERIC, _TIMESTAMPTZ = 21, 700, 1700, 1184
_JSON = frozenset({114, 3802})  # PostgreSQL's json and jsonb (Redshift has SUPER instead)
_SUPER = 4000
_SPATIAL = frozenset({3000, 3001})  # Redshift's GEOMETRY and GEOGRAPHY
_NOT_A_NUMBER = pa.array(["NaN", "Infinity", "-Infinity"])
_LOAD_ROWS = 1000  # rows per INSERT of the Lightning engine's loads
_LOAD_PARAMETERS = 32_767  # and at most this many bound values in one
_TEXT = "VARCHAR(65535)"  # Redshift's longest VARCHAR (its TEXT is VARCHAR(256))

SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]


class RedshiftSettings(SshTunnelSettings):
    """Connection settings of an Amazon Redshift source (the keys of ``sources.NAME`` besides type and engine)."""

    host: str = Field(description="Endpoint of the cluster or the serverless workgroup (without :port/database).")
    port: int = Field(5439, ge=1, le=65535, description="Endpoint TCP port.")
    database: str = Field("dev", description="Database whose tables and views models read.")
    user: str = Field(description="User to log in as; it needs only USAGE on the schemas and SELECT on the tables.")
    password: SecretStr | None = Field(None, description="The user's password.")
    sslmode: SslMode = Field(
        "require",
        description="TLS, as libpq's sslmode: require encrypts, verify-ca also checks the certificate against "
        "sslrootcert, verify-full also checks it names host.",
    )
    sslrootcert: str | None = Field(None, description="PEM file of the CA that signed the endpoint's certificate.")
    search_path: list[str] | None = Field(
        None, description="Schemas searched for unqualified table names, e.g. [analytics, public]."
    )
    connect_timeout_seconds: int = Field(10, ge=2, le=3600, description="Seconds to wait for a connection.")
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a model's query that runs longer than this (no limit when unset)."
    )
    application_name: str = Field("smartingest", description="Name our sessions show in the system views.")

    @field_validator("search_path", mode="before")
    @classmethod
    def _split_search_path(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class RedshiftSource(SqlConnector[RedshiftSettings, psycopg.Connection[Any]]):
    """An Amazon Redshift database; see the module docstring for how it is read."""

    Settings = RedshiftSettings
    DIALECT = "redshift"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"RedshiftSource(host={s.host!r}, port={s.port}, database={s.database!r}, user={s.user!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        s = self.settings
        with tunnel_to(s, s.host, s.port) as (host, port):
            with translate_errors(self._translate):
                conn = psycopg.connect(
                    host=s.host,
                    # Through an SSH tunnel: connect to its local end, check the certificate against host.
                    hostaddr=host if s.tunnelled else None,
                    port=port,
                    dbname=s.database,
                    user=s.user,
                    password=s.password.get_secret_value() if s.password else None,
                    sslmode=s.sslmode,
                    sslrootcert=s.sslrootcert,
                    connect_timeout=s.connect_timeout_seconds,
                    application_name=s.application_name,
                    options=self._options(),
                    autocommit=True,
                )
            try:
                yield conn
            finally:
                close_quietly(conn.close)

    def _stream(self, conn: psycopg.Connection[Any], query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            columns = self._plan(conn, query)
            mark = statement_mark()
            return connectorx_stream(
                self._url(conn.info.hostaddr if self.settings.tunnelled else self.settings.host, conn.info.port),
                f"/* {mark} */ " + planned_query(query, columns, self.quote),
                columns,
                batch_rows,
                pre_execution=[],
                translate=translate,
                abandon=lambda: _end_statement(conn, mark),
            )

    def _rows(self, conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
        return list(conn.execute(query).fetchall())

    def _planner_session(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._session()  # nothing makes the session read-only

    def _execute(self, conn: psycopg.Connection[Any], sql: str) -> None:
        conn.execute(sql)

    def _load(self, conn: psycopg.Connection[Any], schema: str, table: str, data: pa.RecordBatchReader) -> None:
        qualified = f"{quote_identifier(schema, self.DIALECT)}.{quote_identifier(table, self.DIALECT)}"
        fields = list(data.schema)
        names = ", ".join(quote_identifier(f.name, self.DIALECT) for f in fields)
        declared = ", ".join(f"{quote_identifier(f.name, self.DIALECT)} {_sql_type(f.type)}" for f in fields)
        conn.execute(f"CREATE TABLE {qualified} ({declared})")
        if not fields:
            return
        chunk = max(1, min(_LOAD_ROWS, _LOAD_PARAMETERS // len(fields)))
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for batch in data:
            columns = [_python_values(batch.column(i)) for i in range(len(fields))]
            rows = list(zip(*columns, strict=True))
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                conn.execute(
                    f"INSERT INTO {qualified} ({names}) VALUES {', '.join([row] * len(part))}",
                    [value for values in part for value in values],
                )

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'pg_internal') "
            f"AND table_schema NOT LIKE 'pg_toast%' ORDER BY 1 LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_redshift_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _options(self) -> str:
        """The session's settings as the startup packet's ``options`` (``-c name=value``): connectorx
        describes a query on a connection its pre-execution statements never ran on, so a ``SET`` would
        come too late for a model that names a table of the search path."""
        settings = {"timezone": "UTC"}
        if self.settings.search_path:
            settings["search_path"] = ",".join(quote_double(s) for s in self.settings.search_path)
        if self.settings.query_timeout_seconds is not None:
            settings["statement_timeout"] = str(max(round(self.settings.query_timeout_seconds * 1000), 1))
        # libpq's escaping inside options: a backslash before each space and backslash of a value.
        return " ".join(f"-c {k}=" + v.replace("\\", "\\\\").replace(" ", "\\ ") for k, v in settings.items())

    def _plan(self, conn: psycopg.Connection[Any], query: str) -> list[PlannedColumn]:
        """How each column of ``query`` is read, from the server's description of it (no rows read)."""
        with conn.cursor() as cur:
            cur.execute(limited(query, 0, self.DIALECT))
            return [_column(c.name, c.type_code, c.precision, c.scale) for c in cur.description or []]

    def _url(self, host: str, port: int) -> str:
        """connectorx's URL for the endpoint the session reached (the server, or the SSH tunnel's local end)."""
        s = self.settings
        password = f":{quote(s.password.get_secret_value(), safe='')}" if s.password else ""
        host = f"[{host}]" if ":" in host else host
        # connectorx knows disable, prefer and require; the session's psycopg connection, to the same
        # endpoint, verified the certificate when sslmode asks for it.
        params = {
            "sslmode": "require" if s.sslmode.startswith("verify") else s.sslmode,
            "application_name": s.application_name,
            "connect_timeout": str(s.connect_timeout_seconds),
            "options": self._options(),
        }
        if s.sslrootcert:
            params["sslrootcert"] = s.sslrootcert
        user, database = quote(s.user, safe=""), quote(s.database, safe="")
        # Percent-encoded, not urlencode's '+' for a space: the Rust driver does not read '+' as one.
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        return f"redshift://{user}{password}@{host}:{port}/{database}?{query}"


def _column(name: str, oid: int, precision: int | None, scale: int | None) -> PlannedColumn:
    if oid == _NUMERIC:
        return PlannedColumn(name, "CAST({} AS VARCHAR)", _decimal(precision, scale))
    if oid == _INT2:
        return PlannedColumn(name, "{}", lambda values: values.cast(pa.int16()))
    if oid == _FLOAT4:
        return PlannedColumn(name, "{}", lambda values: values.cast(pa.float32()))
    if oid == _TIMESTAMPTZ:
        return PlannedColumn(name, "{}", lambda values: values.cast(pa.timestamp("us", tz="UTC")))
    if oid in _JSON:
        return PlannedColumn(name, "{}", json=True)
    if oid == _SUPER:
        return PlannedColumn(name, "JSON_SERIALIZE({})", json=True)
    if oid in _SPATIAL:
        return PlannedColumn(name, "ST_AsGeoJSON({})", json=True)
    if oid in _AS_IS:
        return PlannedColumn(name)
    return PlannedColumn(name, "CAST({} AS VARCHAR)")  # TIMETZ, intervals, enums... as the server writes them


def _sql_type(type_: pa.DataType) -> str:
    """The column type, in SQL Redshift and PostgreSQL both read, that holds an Arrow type's values."""
    if pa.types.is_boolean(type_):
        return "BOOLEAN"
    if pa.types.is_int8(type_) or pa.types.is_int16(type_) or pa.types.is_uint8(type_):
        return "SMALLINT"
    if pa.types.is_int32(type_) or pa.types.is_uint16(type_):
        return "INTEGER"
    if pa.types.is_int64(type_) or pa.types.is_uint32(type_):
        return "BIGINT"
    if pa.types.is_uint64(type_):
        return "DECIMAL(20, 0)"
    if pa.types.is_float16(type_) or pa.types.is_float32(type_):
        return "REAL"
    if pa.types.is_float64(type_):
        return "DOUBLE PRECISION"
    if pa.types.is_decimal(type_) and type_.precision <= 38:
        return f"DECIMAL({type_.precision}, {type_.scale})"
    if pa.types.is_date(type_):
        return "DATE"
    if pa.types.is_timestamp(type_):
        return "TIMESTAMPTZ" if type_.tz else "TIMESTAMP"
    if pa.types.is_time(type_):
        return "TIME"
    return _TEXT  # strings, and every other type as its text (see _python_values)


def _python_values(values: pa.Array | pa.ChunkedArray) -> list[Any]:
    """An Arrow column's values as psycopg binds them for the column type ``_sql_type`` gives."""
    type_ = values.type
    if pa.types.is_timestamp(type_) and type_.unit == "ns":
        values = values.cast(pa.timestamp("us", tz=type_.tz), safe=False)
    elif pa.types.is_time(type_) and type_.unit == "ns":
        values = values.cast(pa.time64("us"), safe=False)
    elif pa.types.is_decimal(type_) and type_.precision > 38:
        values = values.cast(pa.string())
    elif _sql_type(type_) == _TEXT and not (pa.types.is_string(type_) or pa.types.is_large_string(type_)):
        values = values.cast(pa.string()) if not pa.types.is_null(type_) else pa.nulls(len(values), pa.string())
    return values.to_pylist()


def _decimal(precision: int | None, scale: int | None) -> Callable[[pa.Array], pa.Array]:
    # The typmod's packing as numeric_type expects it: ((precision << 16) | scale) + 4; unconstrained: -1.
    target = numeric_type(((precision << 16) | (scale or 0)) + 4 if precision else -1)

    def convert(text: pa.Array) -> pa.Array:
        if pa.types.is_decimal(target):  # PostgreSQL's NaN and infinities have no decimal: null
            text = pc.if_else(pc.is_in(text, value_set=_NOT_A_NUMBER), pa.scalar(None, pa.string()), text)
        return pc.cast(text, target)

    return convert


def _end_statement(conn: psycopg.Connection[Any], mark: str) -> None:
    """End the session running the statement whose text holds ``mark`` (a user may end their own)."""
    version = conn.info.parameter_status("server_version") or ""
    if version.startswith("8.0"):  # Redshift: its running queries, with the first characters of their text
        sql = "SELECT pg_terminate_backend(pid) FROM stv_recents WHERE status = 'Running' AND query LIKE %s"
    else:
        sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()"
    conn.execute(sql, (f"%{mark}%",))


def map_redshift_error(
    exc: BaseException, settings: RedshiftSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a psycopg or connectorx error into the error tree (None for exceptions that are not theirs),
    by PostgreSQL's rules: Redshift answers with PostgreSQL's SQLSTATEs."""
    if isinstance(exc, psycopg.Error):
        detail = exc.diag.message_primary or one_line(str(exc))
        return classify_postgres_error(
            exc.sqlstate,
            one_line(detail),
            str(exc),
            connect_failed=isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None,
            settings=settings,
            model=model,
            vendor="Redshift",
        )
    if type(exc).__name__ == "PanicException" or isinstance(exc, RuntimeError):
        # connectorx: "db error: ERROR: division by zero", "timed out waiting for connection: ..."
        text = one_line(str(exc).split("\n\nStack backtrace:")[0])
        detail = text.removeprefix("db error: ").removeprefix("ERROR: ")
        return classify_postgres_error(
            None, detail, text, connect_failed=False, settings=settings, model=model, vendor="Redshift"
        )
    return None


__all__ = ["RedshiftSettings", "RedshiftSource", "map_redshift_error"]
