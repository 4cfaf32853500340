"""Teradata Vantage: rows read by the official teradatasql driver, built into Arrow record batches one
fetched batch at a time, each column converted by Arrow's kernels.

teradatasql has no Arrow interface: its cursor hands rows over as Python values. Two things make the most
of it. A model's read asks for **FastExport** (``{fn teradata_try_fastexport}``): the database sends the
result over several sessions in parallel, which Teradata recommends for large results; where the request
cannot be FastExported, the driver runs it as plain SQL. (Previews, descriptions and the table list stay
plain SQL: FastExport's extra sessions cost more than such small results.) And the session asks for
Teradata's values as **text** (``teradata_values=false``): DECIMAL, NUMBER, DATE and TIMESTAMP arrive as
the database writes them, not as a Decimal or datetime built in Python per value, and each batch's column of
texts is turned into decimal128, date32 or a timestamp by one Arrow cast (``_plan``). The driver's
``{fn teradata_write_parquet}`` would go further, but it writes the whole result to a file before the first
row can be read.

Each column's type comes from the driver's description of the result (Teradata's type name): BYTEINT to
BIGINT as int64, DECIMAL(p, s) and NUMBER(p, s) as exact decimal128 (NUMBER without a precision as
float64), FLOAT as float64, DATE as date32, TIMESTAMP as a timestamp, TIMESTAMP WITH TIME ZONE as the UTC
instant, CHAR without the padding spaces the UTF8 session adds, JSON as JSON text, BYTE, VARBYTE and BLOB as
bytes; TIME, INTERVAL, PERIOD and XML as the text Teradata writes.

**Sessions.** One connection per call, closed when it ends (FastExport's sessions with it). Teradata has no
read-only session: the base class refuses a model that would write, and the user needs only SELECT.
``query_timeout_seconds`` is the driver's ``request_timeout``: when it expires the driver aborts the request
and Teradata stops it (error 3110).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc
import teradatasql
from pydantic import Field, SecretStr, model_validator

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    close_quietly,
    one_line,
    query_timeout_error,
    scrub_secrets,
    source_error,
    translate_errors,
)
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
LogMech = Literal["TD2", "LDAP", "TDNEGO", "KRB5"]
FASTEXPORT = "{fn teradata_try_fastexport}"


class TeradataSettings(SshTunnelSettings):
    """Connection settings of a Teradata Vantage source (the keys of ``sources.NAME`` besides type and engine)."""

    host: str = Field(description="Database host name or IP address (its COP names are found from it).")
    port: int = Field(1025, ge=1, le=65535, description="Database port (teradatasql's dbs_port).")
    user: str = Field(description="User to log in as; it needs only SELECT on the models' tables.")
    password: SecretStr | None = Field(None, description="The user's password.")
    logmech: LogMech = Field("TD2", description="Logon mechanism: TD2 (database users), LDAP, TDNEGO or KRB5.")
    database: str | None = Field(
        None, description="Default database, in which unqualified table names are looked up (default: the user's)."
    )
    encryptdata: bool = Field(True, description="Encrypt the data Teradata's own way (TDGSS), with or without TLS.")
    sslmode: SslMode = Field(
        "prefer",
        description="TLS: disable, allow, prefer (TLS when the database offers it), require, verify-ca (the "
        "certificate signed by sslca or a system CA), verify-full (and issued for host).",
    )
    sslca: str | None = Field(None, description="PEM file of the CA that signed the database's certificate.")
    https_port: int = Field(443, ge=1, le=65535, description="Port of the database's TLS connections.")
    fastexport: bool = Field(True, description="Read models with FastExport where the database allows it.")
    connect_timeout_seconds: int = Field(10, ge=1, le=3600, description="Seconds to wait for a connection.")
    query_timeout_seconds: int | None = Field(
        None, ge=1, description="Abort a request that runs longer than this (no limit when unset)."
    )

    @model_validator(mode="after")
    def _tls_reaches_the_database(self) -> Self:
        if self.tunnelled and self.sslmode != "disable":
            # The driver's TLS goes to https_port, a second port the tunnel does not forward.
            raise ValueError("through an SSH tunnel set sslmode: disable (encryptdata still encrypts the data)")
        return self


# ------------------------------------------------------------------------------------------------- the plan

Convert = Callable[[list[Any]], pa.Array]
_MAX_DECIMAL128_PRECISION = 38
_UTC_US = pa.timestamp("us", tz="UTC")
_INTEGERS = frozenset({"BYTEINT", "SMALLINT", "INTEGER", "BIGINT"})
_BYTES = frozenset({"BYTE", "VARBYTE", "BLOB"})


@dataclass(frozen=True)
class _Column:
    """One column of a result: its name, its plain Arrow type, how a batch's values become it."""

    name: str
    type: pa.DataType
    convert: Convert
    json: bool = False

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, metadata=JSON_TEXT if self.json else None)


def _typed(target: pa.DataType) -> Convert:
    return lambda values: pa.array(values, target)


def _from_text(target: pa.DataType) -> Convert:
    """Teradata's text of the values (teradata_values=false) cast by Arrow: decimals exact, UTC instants."""
    return lambda values: pc.cast(pa.array(values, pa.string()), target)


def _padded(values: list[Any]) -> pa.Array:
    # The UTF8 session pads CHAR(n) to the bytes n characters may take: the value is the text without them.
    return pc.utf8_rtrim(pa.array(values, pa.string()), characters=" ")


def _column(name: str, type_name: str, precision: int | None, scale: int | None) -> _Column:
    kind = type_name.upper()
    if kind in _INTEGERS:
        return _Column(name, pa.int64(), _typed(pa.int64()))
    if kind in ("DECIMAL", "NUMBER"):
        exact = precision is not None and 0 < precision <= _MAX_DECIMAL128_PRECISION and 0 <= (scale or 0) <= precision
        target = pa.decimal128(int(precision or 0), int(scale or 0)) if exact else pa.float64()
        return _Column(name, target, _from_text(target))
    if kind == "FLOAT":
        return _Column(name, pa.float64(), _typed(pa.float64()))
    if kind == "DATE":
        return _Column(name, pa.date32(), _from_text(pa.date32()))
    if kind == "TIMESTAMP":
        return _Column(name, pa.timestamp("us"), _from_text(pa.timestamp("us")))
    if kind == "TIMESTAMP WITH TIME ZONE":
        return _Column(name, _UTC_US, _from_text(_UTC_US))
    if kind == "CHAR":
        return _Column(name, pa.string(), _padded)
    if kind in _BYTES:
        return _Column(name, pa.binary(), _typed(pa.binary()))
    return _Column(name, pa.string(), _typed(pa.string()), json=kind == "JSON")


def _plan(cursor: Any, subject: str) -> list[_Column]:
    """Each column's plan, from the driver's description and Teradata's type names (no rows read)."""
    if not cursor.description:
        raise ModelError(f"{subject} is not a query that returns rows")
    return [
        _column(d[0], type_name, d[4], d[5])
        for d, type_name in zip(cursor.description, cursor.columntypename, strict=True)
    ]


def _batches(cursor: Any, columns: list[_Column], batch_rows: int, subject: str) -> Iterator[pa.RecordBatch]:
    """The result as record batches of at most ``batch_rows`` rows, fetched one batch at a time."""
    schema = pa.schema([c.field for c in columns])
    while rows := cursor.fetchmany(batch_rows):
        by_column = list(zip(*rows, strict=True))
        try:
            arrays = [c.convert(list(values)) for c, values in zip(columns, by_column, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ModelError(f"{subject}: a value does not fit its column's type: {one_line(str(exc))}") from exc
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


# ------------------------------------------------------------------------------------------------ the connector


class TeradataSource(SqlConnector[TeradataSettings, Any]):
    """A Teradata Vantage database; see the module docstring for how it is read."""

    Settings = TeradataSettings
    DIALECT = "teradata"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"TeradataSource(host={s.host!r}, port={s.port}, user={s.user!r}, database={s.database!r})"

    def _limited(self, query: str, limit: int) -> str:
        # Teradata's TOP takes only a positive number of rows: no rows at all is a condition no row meets.
        return f"SELECT * FROM (\n{query}\n) m WHERE 1 = 0" if limit <= 0 else super()._limited(query, limit)

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        s = self.settings
        with tunnel_to(s, s.host, s.port) as (host, port):
            with translate_errors(lambda exc: self._translate(exc, connecting=True)):
                conn = teradatasql.connect(**self._connect_parameters(host, port))
            try:
                yield conn
            finally:
                close_quietly(conn.close)

    def _stream(self, conn: Any, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        subject = f"model {describe_model(model)}"
        # Only a model's whole read is worth FastExport's sessions (previews and descriptions are small).
        fast = self.settings.fastexport and query == self.model_sql(model)
        with translate_errors(translate):
            cursor = conn.cursor()
            try:
                cursor.execute((FASTEXPORT if fast else "") + query)
                columns = _plan(cursor, subject)
            except BaseException:
                close_quietly(cursor.close)
                raise
        schema = pa.schema([c.field for c in columns])
        return BatchStream(schema, _batches(cursor, columns, batch_rows, subject), translate, on_close=cursor.close)

    def _tables_sql(self, limit: int) -> str:
        # TablesVX lists what the user may access; Teradata's own databases are left out.
        return (
            f"SELECT TOP {max(limit, 1)} TRIM(DatabaseName) || '.' || TRIM(TableName) FROM DBC.TablesVX"
            f" WHERE TableKind IN ('T', 'O', 'V') AND DatabaseName NOT IN ({_SYSTEM_DATABASES}) ORDER BY 1"
        )

    def _translate(
        self, exc: BaseException, model: ModelConfig | None = None, *, connecting: bool = False
    ) -> SourceError | None:
        return map_teradata_error(exc, self.settings, model, connecting=connecting)

    # ------------------------------------------------------------------------------------------------- internals

    def _connect_parameters(self, host: str, port: int) -> dict[str, str]:
        """teradatasql's connection parameters (all strings) for ``host:port``: the database, or the tunnel's end."""
        s = self.settings
        parameters = {
            "host": host,
            "dbs_port": str(port),
            "user": s.user,
            "logmech": s.logmech,
            "encryptdata": str(s.encryptdata).lower(),
            "sslmode": s.sslmode.upper(),
            "https_port": str(s.https_port),
            "connect_timeout": str(s.connect_timeout_seconds * 1000),  # milliseconds
            "request_timeout": str(s.query_timeout_seconds or 0),  # seconds
            "teradata_values": "false",  # values as Teradata's text: see the module docstring
        }
        if s.password is not None:
            parameters["password"] = s.password.get_secret_value()
        if s.database:
            parameters["database"] = s.database
        if s.sslca:
            parameters["sslca"] = s.sslca
        return parameters


_SYSTEM_DATABASES = ", ".join(
    f"'{name}'"
    for name in (
        "All", "Crashdumps", "DBC", "dbcmngr", "Default", "External_AP", "EXTUSER", "LockLogShredder", "PUBLIC",
        "SQLJ", "Sys_Calendar", "SysAdmin", "SYSBAR", "SYSJDBC", "SYSLIB", "SYSSPATIAL", "SystemFe", "SYSUDTLIB",
        "SYSUIF", "TD_ANALYTICS_DB", "TD_SERVER_DB", "TD_SYSFNLIB", "TD_SYSGPL", "TD_SYSXML", "TDMaps", "TDPUSER",
        "TDQCD", "TDStats", "tdwm",
    )
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- error mapping

# Teradata's error codes, by what they mean for a sync.
_CREDENTIALS = frozenset({8017, 8018, 8019, 3004})  # bad user/password/account, expired password, logons disabled
_NO_DATABASE = 3802
_NO_ACCESS = frozenset({3523, 3524})
_NO_OBJECT = frozenset({3807, 5628})
_NO_COLUMN = 3810
_SYNTAX = frozenset({3706, 3707})
_ABORTED = 3110
_TRANSIENT = frozenset({2631, 3120, 3598, 3603, 8024})  # deadlock, recovery, concurrent changes, no circuits
_WRITE_VERB = re.compile(r"does not have (INSERT|UPDATE|DELETE|CREATE \w+|DROP \w+) access", re.I)
_DATABASE_ERROR = re.compile(r"\[Teradata Database\] \[Error (\d+)\]")
_DRIVER_ERROR = re.compile(r"\[Teradata (?:SQL Driver|Security)\].*?\[SQLState (\w+)\]", re.S)
_NOISE = re.compile(r"\[(?:Version|Session|Teradata [A-Za-z ]+|SQLState) ?[^\]]*\] ")  # kept: [Error n]


def map_teradata_error(
    exc: BaseException, settings: TeradataSettings, model: ModelConfig | None = None, *, connecting: bool = False
) -> SourceError | None:
    """Translate a teradatasql error into the error tree (None for exceptions that are not the driver's).

    The one place that decides transient vs permanent for Teradata, on the database's error code (the
    driver's own errors on their SQLSTATE):

    * the driver cannot connect (SQLSTATE 08xxx) -> SourceConnectionError (transient);
    * bad credentials (8017), the logon mechanism refusing them -> SourceAuthError;
    * the default database does not exist (3802 at logon) -> SourceConnectionError marked permanent;
    * no SELECT access (3523) -> SourceAuthError with the GRANT; no write access -> ModelError (it would write);
    * the request aborted (3110): by query_timeout_seconds when one is set -> SourceError marked permanent,
      naming it; otherwise (an administrator, workload rules) -> SourceError marked transient;
    * deadlocks, recovery, concurrent changes -> SourceError marked transient;
    * an object or column that does not exist (3807, 3810), syntax (3706), anything else about the model's SQL
      -> ModelError with Teradata's text.
    """
    if not isinstance(exc, teradatasql.Error):
        return None
    raw = str(exc)
    text = one_line(_NOISE.sub("", raw.split("\n at ", 1)[0]))
    found = _DATABASE_ERROR.search(raw)
    code = int(found[1]) if found else None
    where = f"Teradata at {settings.host}:{settings.port}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    if code is None:
        mapped = _driver_error(raw, text, where, settings)
    elif connecting or code in _CREDENTIALS:
        mapped = _logon_error(code, text, where, settings)
    else:
        mapped = _request_error(code, text, where, settings, subject)
    return scrub_secrets(mapped, settings)


def _driver_error(raw: str, text: str, where: str, settings: TeradataSettings) -> SourceError:
    state = _DRIVER_ERROR.search(raw)
    if "[Teradata Security]" in raw:
        return SourceAuthError(f"{where} refused the {settings.logmech} logon of {settings.user!r}: {text}")
    if state is not None and state[1].startswith("08"):
        return SourceConnectionError(f"cannot reach {where}: {text}")
    return SourceError(f"{where} failed: {text}")


def _logon_error(code: int, text: str, where: str, settings: TeradataSettings) -> SourceError:
    if code in _CREDENTIALS:
        return SourceAuthError(f"{where} refused user {settings.user!r} (check user and password): {text}")
    if code == _NO_DATABASE:
        message = f"{where} has no database {settings.database!r} (check database): {text}"
        return source_error(SourceConnectionError, message, transient=False)
    if code in _TRANSIENT:
        return source_error(SourceError, f"{where} failed temporarily: {text}", transient=True)
    return SourceConnectionError(f"{where} refused the session: {text}")


def _request_error(code: int, text: str, where: str, settings: TeradataSettings, subject: str) -> SourceError:
    if code in _NO_ACCESS:
        if _WRITE_VERB.search(text):
            return ModelError(f"{subject} would write, which the source refuses: {text}")
        grant = f"GRANT SELECT ON {settings.database or '<database>'} TO {settings.user}"
        return SourceAuthError(f"user {settings.user!r} may not read {subject}: {text}; fix: {grant}")
    if code == _ABORTED:
        timeout = settings.query_timeout_seconds
        if timeout is not None:
            # Teradata says the same when an administrator or a workload rule aborts the request.
            return query_timeout_error(subject, timeout, f"{text} (or an administrator or workload rule aborted it)")
        return source_error(SourceError, f"{where} aborted {subject}: {text}", transient=True)
    if code in _TRANSIENT:
        return source_error(SourceError, f"{where} failed temporarily: {text}", transient=True)
    if code in _SYNTAX:
        return ModelError(f"{subject} has a syntax error: {text}")
    return ModelError(f"{subject} cannot be read: {text}")


__all__ = ["TeradataSettings", "TeradataSource", "map_teradata_error"]
