"""MySQL and MariaDB connector: rows streamed as Arrow by connectorx, the session run through PyMySQL.

Two drivers, each for what it does best (measured on 1M rows of five columns: connectorx's ``arrow_stream``
0.48 s, the ``mariadb`` client's own dump of the same query 0.92 s, PyMySQL's unbuffered cursor 6.6 s):

* **PyMySQL** opens the session and answers at once, with the server's error code, when the host, the
  credentials, the database or the model's SQL are wrong (connectorx's connection pool retries a failed
  connection for about 30 seconds before it says anything). It describes the model (the query run for no
  rows), lists the tables and runs the connection test.
* **connectorx** streams the rows as Arrow record batches, in Rust, over a connection of its own that
  starts with the same session settings.

Every session is read-only (``SET SESSION TRANSACTION READ ONLY``) and in UTC (``time_zone = '+00:00'``,
so TIMESTAMP columns come out as UTC instants), with the query timeout the settings give (MariaDB's
``max_statement_time``, MySQL's ``max_execution_time``).

What the description says decides how each column is read (``_plan``): DECIMAL as its exact text (connectorx
forces every decimal into decimal128(38, 10) and fails on other scales), turned into decimal128 of the
column's own precision and scale (float64 beyond 38 digits, as for PostgreSQL); BIT as an integer; TIME as
text (MySQL's TIME spans -838:59:59 to 838:59:59, a duration rather than a time of day); spatial columns
as GeoJSON text; TINYINT(1), MySQL's BOOLEAN, as a boolean; TIMESTAMP as UTC; JSON (MySQL's own type) as
JSON text, sent parsed.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal, Self
from urllib.parse import quote, urlencode

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pymysql.constants.FIELD_TYPE as T
from pydantic import Field, SecretStr, field_validator, model_validator

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    close_quietly,
    one_line,
    query_timeout_error,
    source_error,
    translate_errors,
)
from smartingest.sources.base import describe_model
from smartingest.sources.cx_stream import PlannedColumn, connectorx_stream, planned_query, statement_mark
from smartingest.sources.sql import SqlConnector, limited
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

_MAX_DECIMAL128_PRECISION = 38
_UNSIGNED_FLAG = 32
_BINARY_CHARSET = 63
_DECIMALS = frozenset({T.DECIMAL, T.NEWDECIMAL})
_SPATIAL = T.GEOMETRY

SslMode = Literal["disabled", "preferred", "required", "verify_ca", "verify_identity"]


class MySQLSettings(SshTunnelSettings):
    """Connection settings of a MySQL or MariaDB source (the keys of ``sources.NAME`` besides type and engine)."""

    host: str = Field("127.0.0.1", description="Server host name or IP address.")
    port: int = Field(3306, ge=1, le=65535, description="Server TCP port.")
    database: str = Field(description="Database (schema) whose tables and views models read.")
    user: str = Field(description="User to log in as; it needs only SELECT on the models' tables.")
    password: SecretStr | None = Field(None, description="The user's password.")
    ssl_mode: SslMode = Field(
        "preferred",
        description="TLS: disabled, preferred (when the server offers it), required, verify_ca (the server's "
        "certificate signed by ssl_ca or a system CA), verify_identity (and issued for host).",
    )
    ssl_ca: str | None = Field(None, description="PEM file of the CA that signed the server's certificate.")
    connect_timeout_seconds: int = Field(10, ge=1, le=3600, description="Seconds to wait for a connection.")
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a model's query that runs longer than this (no limit when unset)."
    )

    session_statements: list[str] = Field(
        default_factory=list,
        description="SET statements run at the start of every session, e.g. [\"SET SESSION sql_mode = 'ANSI'\"].",
    )

    @field_validator("session_statements")
    @classmethod
    def _only_set(cls, statements: list[str]) -> list[str]:
        for statement in statements:
            if not re.match(r"\s*SET\s", statement, re.I) or ";" in statement:
                raise ValueError(f"{statement!r} is not one SET statement: a session may only be configured")
            if re.search(r"\bTRANSACTION\b|\btransaction_read_only\b|\btx_read_only\b", statement, re.I):
                raise ValueError(f"{statement!r} would change the session's read-only mode, which stays as it is")
        return statements

    @model_validator(mode="after")
    def _identity_needs_the_host(self) -> Self:
        if self.tunnelled and self.ssl_mode == "verify_identity":
            # The drivers would check the certificate against the tunnel's 127.0.0.1, not against host.
            raise ValueError(
                "ssl_mode verify_identity cannot check the server's name through an SSH tunnel: use verify_ca"
            )
        return self


# ------------------------------------------------------------------------------------------------- the plan


def _decimal(precision: int, scale: int) -> Callable[[pa.Array], pa.Array]:
    target = pa.decimal128(precision, scale) if precision <= _MAX_DECIMAL128_PRECISION else pa.float64()
    return lambda text: pc.cast(text, target)


def _bit(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.int64())  # BIT(64) beyond 2^63 would fail the cast: named by the error


def _flag(values: pa.Array) -> pa.Array:
    return pc.not_equal(values, 0)


def _utc(values: pa.Array) -> pa.Array:
    return values.cast(pa.timestamp("us", tz="UTC"))


def _column(
    name: str, type_code: int, length: int, scale: int, flags: int, charset: int, zoned_timestamps: bool = True
) -> PlannedColumn:
    if type_code in _DECIMALS:
        # The description's length counts the sign (unless unsigned) and the point (when there is a scale).
        precision = length - (1 if scale else 0) - (0 if flags & _UNSIGNED_FLAG else 1)
        return PlannedColumn(name, "CAST({} AS CHAR)", _decimal(max(precision, 1), scale))
    if type_code == T.BIT:
        return PlannedColumn(name, "CAST({} AS UNSIGNED)", _bit)
    if type_code == T.TIME:
        return PlannedColumn(name, "CAST({} AS CHAR)")
    if type_code == _SPATIAL:
        return PlannedColumn(name, "ST_AsGeoJSON({})", json=True)
    if type_code == T.TINY and length == 1:
        return PlannedColumn(name, "{}", _flag)
    if type_code == T.TIMESTAMP and zoned_timestamps:
        return PlannedColumn(name, "{}", _utc)
    if type_code == T.JSON:
        return PlannedColumn(name, "{}", json=True)
    return PlannedColumn(name, "{}")


# ------------------------------------------------------------------------------------------------ the connector


class MySQLSource(SqlConnector[MySQLSettings, pymysql.connections.Connection]):
    """A MySQL or MariaDB database; see the module docstring for how it is read."""

    Settings: ClassVar[type[MySQLSettings]] = MySQLSettings
    DIALECT = "mysql"
    # What differs between the servers of the family (PlanetScale and SingleStore below override these).
    VENDOR: ClassVar[str] = "MySQL"  # in messages
    PREPARES: ClassVar[bool] = True  # the server PREPAREs a statement from a user variable (syntax errors)
    ZONED_TIMESTAMPS: ClassVar[bool] = True  # TIMESTAMP holds an instant (read in the session's UTC)

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"MySQLSource(host={s.host!r}, port={s.port}, database={s.database!r}, user={s.user!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self, read_only: bool = True) -> Iterator[pymysql.connections.Connection]:
        s = self.settings
        with tunnel_to(s, s.host, s.port) as (host, port):
            with translate_errors(self._translate):
                conn = pymysql.connect(
                    host=host,
                    port=port,
                    user=s.user,
                    password=s.password.get_secret_value() if s.password else "",
                    database=s.database,
                    connect_timeout=s.connect_timeout_seconds,
                    charset="utf8mb4",
                    autocommit=True,
                    program_name="smartingest",
                    **self._pymysql_tls(),
                )
            try:
                with translate_errors(self._translate), conn.cursor() as cur:
                    for statement in self._session_settings(conn.get_server_info(), read_only):
                        cur.execute(statement)
                yield conn
            finally:
                close_quietly(conn.close)

    def _planner_session(self) -> contextlib.AbstractContextManager[pymysql.connections.Connection]:
        return self._session(read_only=False)

    def _load(self, conn: pymysql.connections.Connection, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        qualified = f"{self.quote(schema)}.{self.quote(table)}"
        columns = ", ".join(f"{self.quote(f.name)} {_mysql_type(f.type)}" for f in data.schema)
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {qualified} ({columns})")
            # PyMySQL sends executemany's rows as multi-row INSERTs, each under max_allowed_packet.
            names = ", ".join(self.quote(name) for name in data.schema.names)
            marks = ", ".join(["%s"] * len(data.schema))
            for batch in data:
                for start in range(0, batch.num_rows, 10_000):
                    part = batch.slice(start, 10_000)
                    rows = list(zip(*(column.to_pylist() for column in part.columns), strict=True))
                    cur.executemany(f"INSERT INTO {qualified} ({names}) VALUES ({marks})", rows)

    def _stream(
        self, conn: pymysql.connections.Connection, query: str, model: ModelConfig, batch_rows: int
    ) -> BatchStream:
        watchdog: _Watchdog | None = None

        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model, timed_out=watchdog is not None and watchdog.fired)

        with translate_errors(translate):
            columns = self._plan(conn, query, model)
            mark = statement_mark()
            statement = self._statement(mark, planned_query(query, columns, self.quote))
            watchdog = self._watchdog(mark)
            try:
                return connectorx_stream(
                    self._url(conn.host, conn.port, isinstance(conn._sock, ssl.SSLSocket)),
                    statement,
                    columns,
                    batch_rows,
                    pre_execution=self._session_settings(conn.get_server_info()),
                    translate=translate,
                    abandon=lambda: _kill_statement(conn, mark),
                    on_close=watchdog.cancel if watchdog is not None else None,
                )
            except BaseException:
                if watchdog is not None:
                    watchdog.cancel()
                raise

    def _tables_sql(self, limit: int) -> str:
        # One database per source: its tables and views, by their bare names.
        return (
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1 LIMIT {limit}"
        )

    def _translate(
        self, exc: BaseException, model: ModelConfig | None = None, timed_out: bool = False
    ) -> SourceError | None:
        return map_mysql_error(exc, self.settings, model, vendor=self.VENDOR, timed_out=timed_out)

    # ------------------------------------------------------------------------------------------------- internals

    def _session_settings(self, server: str, read_only: bool = True) -> list[str]:
        statements = ["SET SESSION TRANSACTION READ ONLY"] if read_only else []
        statements.append("SET time_zone = '+00:00'")
        timeout = self.settings.query_timeout_seconds
        if timeout is not None:
            if "mariadb" in server.lower():
                statements.append(f"SET SESSION max_statement_time = {float(timeout)}")
            else:
                statements.append(f"SET SESSION max_execution_time = {round(timeout * 1000)}")
        return statements + self.settings.session_statements

    def _statement(self, mark: str, planned: str) -> str:
        """The statement connectorx runs: the planned query, marked so that its connection can be found."""
        return f"/* {mark} */ " + planned

    def _watchdog(self, mark: str) -> _Watchdog | None:
        """What ends a statement that outruns the query timeout, where the server has no timeout of its own."""
        return None

    def _plan(self, conn: pymysql.connections.Connection, query: str, model: ModelConfig) -> list[PlannedColumn]:
        """How each column of ``query`` is read, from the server's description of it (no rows read)."""
        with conn.cursor() as cur:
            try:
                cur.execute(limited(query, 0, self.DIALECT))
            except pymysql.err.ProgrammingError as exc:
                if exc.args[:1] != (1064,) or not self.PREPARES:
                    raise
                # A syntax error found inside the wrapper points at the wrapper's text: PREPARE, which parses
                # without running, says where in the model's own SQL it is.
                cur.execute("SET @smartingest_model = %s", (self.model_sql(model),))
                cur.execute("PREPARE smartingest_model FROM @smartingest_model")
                cur.execute("DEALLOCATE PREPARE smartingest_model")
                raise
            result = cur._result  # PyMySQL keeps each column's flags and charset only there
            fields = list(result.fields) if result is not None and result.fields else []
        if not fields:
            raise ModelError(f"model {describe_model(model)} is not a query that returns rows")
        zoned = self.ZONED_TIMESTAMPS
        return [_column(f.name, f.type_code, f.length, f.scale, f.flags, f.charsetnr, zoned) for f in fields]

    def _url(self, host: str, port: int, encrypted: bool) -> str:
        """connectorx's URL for this source at the endpoint the session reached (the server, or the SSH
        tunnel's local end); ``encrypted``: whether the PyMySQL session uses TLS."""
        s = self.settings
        password = f":{quote(s.password.get_secret_value(), safe='')}" if s.password else ""
        host = f"[{host}]" if ":" in host else host
        # connectorx takes PREFERRED as REQUIRED: its connection does what PyMySQL's just negotiated.
        mode = ("required" if encrypted else "disabled") if s.ssl_mode == "preferred" else s.ssl_mode
        params = {"ssl-mode": mode.upper()}
        if s.ssl_ca:
            params["ssl-ca"] = s.ssl_ca
        user, database = quote(s.user, safe=""), quote(s.database, safe="")
        return f"mysql://{user}{password}@{host}:{port}/{database}?{urlencode(params)}"

    def _pymysql_tls(self) -> dict[str, Any]:
        """PyMySQL's TLS options for ``ssl_mode`` (preferred is its default: TLS when the server offers it)."""
        s = self.settings
        if s.ssl_mode == "disabled":
            return {"ssl_disabled": True}
        if s.ssl_mode == "preferred":
            return {}
        context = ssl.create_default_context(cafile=s.ssl_ca)
        if s.ssl_mode != "verify_identity":
            context.check_hostname = False
        if s.ssl_mode == "required":
            context.verify_mode = ssl.CERT_NONE  # encrypted, the certificate not checked: as MySQL's REQUIRED
        return {"ssl": context}


class _Watchdog:
    """Ends a statement that runs longer than the query timeout, for servers without a timeout of their own."""

    def __init__(self, seconds: float, end: Callable[[], object]) -> None:
        self.fired = False
        self._end = end
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        close_quietly(self._end)

    def cancel(self) -> None:
        self._timer.cancel()


# --------------------------------------------------------------------------------------- the family's profiles


class PlanetScaleSettings(MySQLSettings):
    """Connection settings of a PlanetScale (Vitess) database."""

    host: str = Field(description="The database's host name, e.g. aws.connect.psdb.cloud.")
    ssl_mode: SslMode = Field(
        "verify_identity",
        description="TLS, as for MySQL; PlanetScale refuses unencrypted connections and its certificates are "
        "signed by public CAs, so verify_identity works with the system's CAs.",
    )
    # Vitess answers at most 100,000 rows to a query in its default OLTP workload; OLAP streams any number.
    session_statements: list[str] = Field(
        default_factory=lambda: ["SET workload = 'olap'"],
        description="SET statements run at the start of every session; the default lifts Vitess's 100,000-row "
        "limit of a query's answer.",
    )


class PlanetScaleSource(MySQLSource):
    """A PlanetScale database: MySQL behind Vitess (see docs/sources.md for what differs)."""

    Settings = PlanetScaleSettings
    VENDOR = "PlanetScale"
    PREPARES = False

    def _planner_session(self) -> contextlib.AbstractContextManager[pymysql.connections.Connection]:
        return SqlConnector._planner_session(self)  # not yet: the Lightning engine is tested on MySQL and MariaDB

    def _session_settings(self, server: str, read_only: bool = True) -> list[str]:
        # No read-only session statement: a PlanetScale password's role (reader) is what keeps it read-only.
        return ["SET time_zone = '+00:00'", *self.settings.session_statements]

    def _statement(self, mark: str, planned: str) -> str:
        timeout = self.settings.query_timeout_seconds
        if timeout is None:
            return super()._statement(mark, planned)
        # Vitess's own per-query timeout: a directive in a comment right after SELECT.
        directive = f"/*vt+ QUERY_TIMEOUT_MS={max(round(timeout * 1000), 1)} */"
        return f"/* {mark} */ SELECT {directive} * FROM (\n{planned}\n) m"


class SingleStoreSettings(MySQLSettings):
    """Connection settings of a SingleStore database."""


class SingleStoreSource(MySQLSource):
    """A SingleStore database, spoken to over the MySQL protocol (see docs/sources.md for what differs)."""

    Settings = SingleStoreSettings
    VENDOR = "SingleStore"
    PREPARES = False  # server-side PREPARE and user variables are only partly supported
    ZONED_TIMESTAMPS = False  # TIMESTAMP is stored as written, without a zone: read like DATETIME

    def _planner_session(self) -> contextlib.AbstractContextManager[pymysql.connections.Connection]:
        return SqlConnector._planner_session(self)  # not yet: the Lightning engine is tested on MySQL and MariaDB

    def _session_settings(self, server: str, read_only: bool = True) -> list[str]:
        # No read-only session and no statement timeout variable: the user's grants keep it read-only, the
        # watchdog below keeps the timeout.
        return list(self.settings.session_statements)

    def _watchdog(self, mark: str) -> _Watchdog | None:
        timeout = self.settings.query_timeout_seconds
        if timeout is None:
            return None

        def end() -> None:
            with self._session() as conn:
                _kill_statement(conn, mark, "QUERY")

        return _Watchdog(timeout, end)


def _mysql_type(arrow: pa.DataType) -> str:
    """The MySQL column type a table loaded from Arrow gets for ``arrow``."""
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_integer(arrow):
        return "BIGINT UNSIGNED" if pa.types.is_unsigned_integer(arrow) else "BIGINT"
    if pa.types.is_floating(arrow):
        return "DOUBLE"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({min(arrow.precision, 65)}, {min(arrow.scale, 30)})"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_timestamp(arrow):
        return "DATETIME(6)"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "LONGBLOB"
    return "LONGTEXT"


def _kill_statement(conn: pymysql.connections.Connection, mark: str, what: str = "CONNECTION") -> None:
    """End the connection (or only the query) running the statement whose text holds ``mark`` (one of this
    user's: anyone may end their own)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM information_schema.processlist WHERE info LIKE %s AND id <> CONNECTION_ID()",
            (f"%{mark}%",),
        )
        for (thread,) in cur.fetchall():
            cur.execute(f"KILL {what} {int(thread)}")


# ---------------------------------------------------------------------------------------------- error mapping

# MySQL and MariaDB error codes, by what they mean for a sync.
_UNREACHABLE = frozenset({2002, 2003, 2005, 2006, 2013, 2055, 1040, 1053, 1927})  # transient
_AUTH = frozenset({1045, 1698, 1044, 1142, 1143, 1227, 1370, 1356})
_TRANSIENT = frozenset({1205, 1213, 1317, 1028, 1037, 1038, 1041})
_TIMEOUT = frozenset({3024, 1969})
_READ_ONLY = frozenset({1792, 1290})
_VITESS_ERRNO = re.compile(r"\(errno (\d+)\)")
_DEADLINE = re.compile(r"DeadlineExceeded|deadline exceeded", re.I)  # Vitess's QUERY_TIMEOUT_MS reached
_TIMED_OUT = -1  # stands for "the query timeout was reached", whatever code the server gave
_CX_ERROR = re.compile(r"ERROR (\d+) \(([0-9A-Z]+)\): (.*?) \}?$", re.S)


def map_mysql_error(
    exc: BaseException,
    settings: MySQLSettings,
    model: ModelConfig | None = None,
    *,
    vendor: str = "MySQL",
    timed_out: bool = False,
) -> SourceError | None:
    """Translate a PyMySQL or connectorx error into the error tree (None for exceptions that are not theirs).

    The one place that decides transient vs permanent for MySQL and MariaDB, on the server's error code:

    * cannot reach the server, connection lost, too many connections -> SourceConnectionError (transient);
    * unknown database -> SourceConnectionError marked permanent (fix ``database``);
    * access denied: bad credentials, or a missing privilege on the database or a table -> SourceAuthError,
      naming the GRANT that fixes a missing privilege;
    * lock wait timeout, deadlock, interrupted -> SourceError marked transient;
    * the query timeout reached (the server's own, or ``timed_out``: ended by the connector's watchdog) ->
      SourceError marked permanent (a retry would time out again);
    * a write refused by the read-only session -> ModelError;
    * anything else the server says about the model's SQL (syntax, unknown table or column, bad data) ->
      ModelError with the server's text.
    """
    where = f"{vendor} at {settings.host}:{settings.port}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    code, detail = _code_and_detail(exc)
    if code is None and detail is None:
        return None
    detail = one_line(detail or str(exc))
    wrapped = _VITESS_ERRNO.search(detail) if code == 1105 else None
    if wrapped:  # Vitess (PlanetScale) wraps the MySQL error it met: "... (errno 1146) (sqlstate 42S02) ..."
        code = int(wrapped[1])
    if timed_out or (code == 1317 and settings.query_timeout_seconds is not None and _DEADLINE.search(detail)):
        code = _TIMED_OUT
    if code in _UNREACHABLE or (code is None and "connect" in detail.lower()):
        return SourceConnectionError(f"cannot reach {where}: {detail}")
    if code == 1049:
        return source_error(
            SourceConnectionError, f"{where} has no database {settings.database!r}: {detail}", transient=False
        )
    if code in (1045, 1698):
        return SourceAuthError(f"{where} refused user {settings.user!r} (check user and password): {detail}")
    if code in _AUTH:
        grant = f"GRANT SELECT ON `{settings.database}`.* TO '{settings.user}'"
        return SourceAuthError(f"user {settings.user!r} lacks a privilege for {subject}: {detail}; fix: {grant}")
    if code in _TIMEOUT or code == _TIMED_OUT:
        timeout = settings.query_timeout_seconds
        return query_timeout_error(subject, timeout, detail)
    if code in _TRANSIENT:
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    if code in _READ_ONLY:
        return ModelError(f"{subject} tries to write, but sources are read-only: {detail}")
    if code == 1064:
        return ModelError(f"{subject} has a syntax error: {detail}")
    if code is not None and code < 2000:
        return ModelError(f"{subject} cannot be read: {detail}")
    return SourceError(f"{where} failed: {detail}")


def _code_and_detail(exc: BaseException) -> tuple[int | None, str | None]:
    """The server's error code and text of a PyMySQL or connectorx error; (None, None) when it is neither."""
    if isinstance(exc, pymysql.err.MySQLError):
        args = exc.args
        if len(args) >= 2 and isinstance(args[0], int):
            return args[0], str(args[1])
        return None, str(exc)
    if type(exc).__name__ == "PanicException" or isinstance(exc, RuntimeError):
        # connectorx: "MySqlError { ERROR 1146 (42S02): Table 'db.t' doesn't exist }", "DriverError { ... }"
        text = str(exc).split("\n\nStack backtrace:")[0]
        found = _CX_ERROR.search(text)
        if found:
            return int(found[1]), found[3]
        return None, text
    return None, None


__all__ = [
    "MySQLSettings",
    "MySQLSource",
    "PlanetScaleSettings",
    "PlanetScaleSource",
    "SingleStoreSettings",
    "SingleStoreSource",
    "map_mysql_error",
]
