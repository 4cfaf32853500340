"""Oracle Database: rows streamed as Arrow by python-oracledb in thin mode (pure Python and Cython: no Oracle
Client libraries), through its data-frame API: ``Connection.fetch_df_batches(statement, size=...)`` fetches
``size`` rows per round trip and hands each batch over as a data frame in Arrow's memory layout, converted
to pyarrow through the Arrow PyCapsule interface without a copy.

**The plan.** Before streaming, the model is described (run for no rows): Oracle's type of each column says
what it is read as (``_column``), and the driver is asked for exactly those Arrow types (its
``requested_schema``), under the names shown. NUMBER(p, 0) and the other whole numbers as int64 (a value
beyond it fails the read, naming the column), NUMBER(p, s) as exact decimal128(p, s), NUMBER without a
precision and FLOAT as float64 (the project's rule for unconstrained numbers); DATE (which holds a time) and
TIMESTAMP as timestamps; TIMESTAMP WITH (LOCAL) TIME ZONE as the UTC instant, which the query itself
computes (``SYS_EXTRACT_UTC``: the driver's Arrow timestamps carry no zone); JSON (21c) as its JSON text
(``JSON_SERIALIZE``: the driver has no Arrow form of it); ROWID and INTERVAL as text.

**Identifiers.** Oracle stores an unquoted name in upper case (``people`` is ``PEOPLE``). Names are shown as a
model's author writes them unquoted: a name stored in upper case is shown in lower case (columns ``id``,
tables ``sales.people``), any other as stored (``"firstName"``); a table name is resolved the same way back.

**Sessions.** One connection per call, closed when it ends: ``TIME_ZONE`` UTC, the ``schema`` setting as
``CURRENT_SCHEMA``, ``call_timeout`` from ``query_timeout_seconds`` (the driver breaks the call and Oracle
stops the statement), then ``SET TRANSACTION READ ONLY``: every query of the call reads one consistent
snapshot and any write is refused by Oracle (ORA-01456), besides the base class's refusal.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import oracledb
import pyarrow as pa
from pydantic import Field, SecretStr, model_validator

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    close_quietly,
    one_line,
    query_timeout_error,
    rebatch,
    scrub_secrets,
    source_error,
    translate_errors,
)
from smartingest.sources.base import describe_model
from smartingest.sources.names import ORACLE
from smartingest.sources.sql import SqlConnector, quote_identifier
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

# ``schema`` is Oracle's own word for the key; it shadows BaseModel's deprecated schema() method, never used on
# settings, and pydantic would warn about that at every import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class OracleSettings(SshTunnelSettings):
        """Connection settings of an Oracle source (the keys of ``sources.NAME`` besides type and engine)."""

        host: str = Field(description="Database (listener) host name or IP address.")
        port: int = Field(1521, ge=1, le=65535, description="Listener TCP port (2484 is usual for TLS).")
        service_name: str | None = Field(None, description="Service name of the database; exclusive with sid.")
        sid: str | None = Field(None, description="SID of the database (older setups); exclusive with service_name.")
        user: str = Field(description="User to log in as; it needs only CREATE SESSION and SELECT (see the docs).")
        password: SecretStr = Field(description="The user's password.")
        schema: str | None = Field(  # type: ignore[assignment]
            None, description="Schema in which unqualified table names are looked up (default: the user's own)."
        )
        tls: bool = Field(False, description="Connect over TLS (tcps): Oracle Cloud and listeners with TLS.")
        wallet_location: str | None = Field(
            None, description="Directory holding ewallet.pem (mutual TLS, or a CA the system does not trust)."
        )
        wallet_password: SecretStr | None = Field(None, description="Password of an encrypted ewallet.pem.")
        tls_server_cert_dn: str | None = Field(
            None,
            description="Distinguished name the server's certificate must have, instead of matching host "
            "(needed through an SSH tunnel).",
        )
        connect_timeout_seconds: float = Field(10, gt=0, le=3600, description="Seconds to wait for a connection.")
        query_timeout_seconds: int | None = Field(
            None, ge=1, description="Stop a query whose call takes longer than this (no limit when unset)."
        )

        @model_validator(mode="after")
        def _one_database(self) -> Self:
            if (self.service_name is None) == (self.sid is None):
                raise ValueError("give exactly one of service_name and sid")
            if not self.tls and (self.wallet_location or self.tls_server_cert_dn):
                raise ValueError("wallet_location and tls_server_cert_dn need tls: true")
            if self.tunnelled and self.tls and not self.tls_server_cert_dn:
                # The driver would match the certificate against the tunnel's 127.0.0.1, not against host.
                raise ValueError("tls through an SSH tunnel needs tls_server_cert_dn (the certificate's DN)")
            return self


# ---------------------------------------------------------------------------------------------- identifiers

shown_name = ORACLE.shown  # ``EMAIL`` -> ``email`` (see sources/names.py)
stored_name = ORACLE.resolved  # ``email`` -> ``EMAIL``


# ------------------------------------------------------------------------------------------------- the plan

_UTC_US = pa.timestamp("us", tz="UTC")
_UNCONSTRAINED_SCALE = -127  # NUMBER without precision, and FLOAT(b): scale -127
_TEXT = {"DB_TYPE_VARCHAR", "DB_TYPE_CHAR", "DB_TYPE_NVARCHAR", "DB_TYPE_NCHAR", "DB_TYPE_LONG", "DB_TYPE_CLOB"}
_TEXT |= {"DB_TYPE_NCLOB", "DB_TYPE_LONG_NVARCHAR"}
_BINARY = {"DB_TYPE_RAW", "DB_TYPE_LONG_RAW", "DB_TYPE_BLOB"}
_AS_TEXT = {  # read as the text Oracle writes of them
    "DB_TYPE_ROWID": "ROWIDTOCHAR({})",
    "DB_TYPE_UROWID": "CAST({} AS VARCHAR2(4000))",
    "DB_TYPE_INTERVAL_DS": "TO_CHAR({})",
    "DB_TYPE_INTERVAL_YM": "TO_CHAR({})",
}


@dataclass(frozen=True)
class _Column:
    """One column of a model: Oracle's name of it, what the read query selects, the Arrow type asked of the
    driver, and whether it is a UTC instant or JSON text."""

    stored: str
    select: str
    fetched: pa.DataType
    utc: bool = False
    json: bool = False

    @property
    def field(self) -> pa.Field:
        typ = _UTC_US if self.utc else self.fetched
        return pa.field(shown_name(self.stored), typ, metadata=JSON_TEXT if self.json else None)


def _column(name: str, db_type: str, precision: int | None, scale: int | None, subject: str) -> _Column:
    quoted = quote_identifier(name, "oracle")
    if db_type == "DB_TYPE_NUMBER":
        return _Column(name, quoted, _number(precision or 0, scale or 0))
    if db_type in ("DB_TYPE_BINARY_DOUBLE", "DB_TYPE_BINARY_FLOAT"):
        return _Column(name, quoted, pa.float64())
    if db_type == "DB_TYPE_BOOLEAN":
        return _Column(name, quoted, pa.bool_())
    if db_type in _TEXT:
        return _Column(name, quoted, pa.string())
    if db_type in _BINARY:
        return _Column(name, quoted, pa.binary())
    if db_type in ("DB_TYPE_DATE", "DB_TYPE_TIMESTAMP"):
        return _Column(name, quoted, pa.timestamp("us"))
    if db_type in ("DB_TYPE_TIMESTAMP_TZ", "DB_TYPE_TIMESTAMP_LTZ"):
        return _Column(name, f"SYS_EXTRACT_UTC({quoted})", pa.timestamp("us"), utc=True)
    if db_type == "DB_TYPE_JSON":
        return _Column(name, f"JSON_SERIALIZE({quoted} RETURNING CLOB)", pa.string(), json=True)
    if db_type in _AS_TEXT:
        return _Column(name, _AS_TEXT[db_type].format(quoted), pa.string())
    kind = db_type.removeprefix("DB_TYPE_")
    raise ModelError(
        f"{subject}: column {shown_name(name)!r} is of Oracle type {kind}, which is not read as such: select it as "
        f"text in the model's SQL (XMLSERIALIZE(CONTENT {quoted}), FROM_VECTOR({quoted}), TO_CHAR({quoted})...)"
    )


def _number(precision: int, scale: int) -> pa.DataType:
    """NUMBER(p, s) as Arrow: whole numbers int64, decimals exact, NUMBER and FLOAT (scale -127) float64."""
    if scale == _UNCONSTRAINED_SCALE:
        return pa.float64()
    if scale <= 0 and precision > 0:
        return pa.int64()  # NUMBER(p, 0), INTEGER (NUMBER(38)); NUMBER(p, -k) holds whole numbers too
    return pa.decimal128(max(precision, scale, 1), scale)  # NUMBER(2, 5) holds 0.000xy: five digits


def _plan(description: list[Any] | None, subject: str) -> list[_Column]:
    if not description:
        raise ModelError(f"{subject} is not a query that returns rows")
    return [_column(d[0], d[1].name, d[4], d[5], subject) for d in description]


def _read_query(query: str, columns: list[_Column]) -> str:
    """``query`` itself, or its columns as the plan selects them where one is not read as it is."""
    names = [quote_identifier(c.stored, "oracle") for c in columns]
    if all(c.select == name for c, name in zip(columns, names, strict=True)):
        return query
    selected = ", ".join(
        c.select if c.select == name else f"{c.select} AS {name}" for c, name in zip(columns, names, strict=True)
    )
    return f"SELECT {selected} FROM (\n{query}\n) m"


def _conformed(frames: Iterator[Any], columns: list[_Column], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The driver's data frames as batches of the planned schema (UTC instants marked as such, zero-copy)."""
    for frame in frames:
        for batch in pa.table(frame).to_batches():
            arrays = [batch.column(i).cast(_UTC_US) if c.utc else batch.column(i) for i, c in enumerate(columns)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


# ------------------------------------------------------------------------------------------------ the connector


class OracleSource(SqlConnector[OracleSettings, Any]):
    """An Oracle database read in python-oracledb's thin mode; see the module docstring for how."""

    Settings = OracleSettings
    DIALECT = "oracle"
    NAMES = ORACLE
    PING = "SELECT 1 FROM DUAL"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        database = f"service_name={s.service_name!r}" if s.service_name else f"sid={s.sid!r}"
        return f"OracleSource(host={s.host!r}, port={s.port}, {database}, user={s.user!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        s = self.settings
        with tunnel_to(s, s.host, s.port) as (host, port):
            with translate_errors(self._translate):
                conn = oracledb.connect(**self._connect_arguments(host, port))
            try:
                with translate_errors(self._translate):
                    conn.call_timeout = (s.query_timeout_seconds or 0) * 1000
                    with conn.cursor() as cursor:
                        for statement in self._session_statements():
                            cursor.execute(statement)
                yield conn
            finally:
                close_quietly(conn.close)

    def _stream(self, conn: Any, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        subject = f"model {describe_model(model)}"
        with translate_errors(translate):
            with conn.cursor() as cursor:
                cursor.execute(self._limited(query, 0))
                columns = _plan(cursor.description, subject)
            fetched = pa.schema([pa.field(shown_name(c.stored), c.fetched) for c in columns])
            frames = conn.fetch_df_batches(_read_query(query, columns), size=batch_rows, requested_schema=fetched)
        schema = pa.schema([c.field for c in columns])
        return BatchStream(schema, rebatch(_conformed(frames, columns, schema), batch_rows), translate, frames.close)

    def _tables_sql(self, limit: int) -> str:
        # Tables and views the user may read, without the schemas Oracle maintains (SYS, MDSYS...).
        return (
            "SELECT owner || '.' || table_name FROM (SELECT owner, table_name FROM all_tables UNION"
            " SELECT owner, view_name FROM all_views) WHERE owner NOT IN (SELECT username FROM all_users"
            f" WHERE oracle_maintained = 'Y') ORDER BY 1 FETCH FIRST {limit} ROWS ONLY"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_oracle_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _connect_arguments(self, host: str, port: int) -> dict[str, Any]:
        s = self.settings
        arguments: dict[str, Any] = {
            "user": s.user,
            "password": s.password.get_secret_value(),
            "host": host,
            "port": port,
            "protocol": "tcps" if s.tls else "tcp",
            "tcp_connect_timeout": s.connect_timeout_seconds,
            "program": "smartingest",
            "retry_count": 0,
        }
        if s.service_name is not None:
            arguments["service_name"] = s.service_name
        else:
            arguments["sid"] = s.sid
        if s.tls:
            arguments["ssl_server_dn_match"] = True
            if s.tls_server_cert_dn:
                arguments["ssl_server_cert_dn"] = s.tls_server_cert_dn
            if s.wallet_location:
                arguments["wallet_location"] = s.wallet_location
            if s.wallet_password is not None:
                arguments["wallet_password"] = s.wallet_password.get_secret_value()
        return arguments

    def _session_statements(self) -> list[str]:
        statements = ["ALTER SESSION SET TIME_ZONE = 'UTC'"]
        if self.settings.schema:
            statements.append(f"ALTER SESSION SET CURRENT_SCHEMA = {self.quote(self.settings.schema)}")
        return [*statements, "SET TRANSACTION READ ONLY"]


# ---------------------------------------------------------------------------------------------- error mapping

# Oracle's error numbers (ORA-nnnnn) and python-oracledb's own (DPY-nnnn), by what they mean for a sync.
_CREDENTIALS = frozenset({1017, 1005, 28000, 28001, 1045})  # 28000: locked, 28001: expired, 1045: no CREATE SESSION
_NO_SERVICE = frozenset({12514, 12505})  # and DPY-6001 / DPY-6003 in thin mode
_UNREACHABLE = frozenset({12541, 12543, 12170, 12535, 12537, 12547, 3113, 3114, 3135, 12528, 12516, 12519, 12520})
_TIMEOUTS = frozenset({1013})
_TRANSIENT = frozenset({60, 1555, 4021, 4068, 30006, 257, 18})  # deadlock, snapshot too old, locks, sessions
_MISSING = frozenset({942, 4043})
_NO_PRIVILEGE = frozenset({1031})
_INVALID_IDENTIFIER = 904
_SYNTAX = frozenset({900, 905, 906, 907, 911, 917, 918, 921, 923, 924, 927, 928, 933, 936, 1756})
_WRITE = frozenset({1456})
_UNKNOWN_SCHEMA = 1435
_DPY_NO_SERVICE, _DPY_NO_SID, _DPY_UNREACHABLE, _DPY_CLOSED = "DPY-6001", "DPY-6003", "DPY-6005", "DPY-4011"
_DPY_TIMEOUT = "DPY-4024"
# The driver's own codes about the model: its SQL or types (DPY-2xxx, 3xxx), a value its Arrow type cannot hold.
_DPY_MODEL = ("DPY-2", "DPY-3", "DPY-403", "DPY-404")
_ORA = re.compile(r"ORA-(\d{5})")


def map_oracle_error(
    exc: BaseException, settings: OracleSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a python-oracledb error into the error tree (None for exceptions that are not the driver's).

    The one place that decides transient vs permanent for Oracle, on the ORA- and DPY- codes:

    * bad credentials, a locked or expired account (ORA-01017, 28000, 28001) -> SourceAuthError;
    * the listener knows no such service or SID (ORA-12514, 12505; DPY-6001, 6003) -> SourceConnectionError
      marked permanent, naming service_name or sid; ``schema`` unknown (ORA-01435) -> the same, naming schema;
    * cannot reach the listener, connection lost (ORA-12541...; DPY-6005, 4011) -> SourceConnectionError;
    * the call timeout (DPY-4024, ORA-01013) -> SourceError marked permanent, naming query_timeout_seconds;
    * deadlock, snapshot too old, busy resources -> SourceError marked transient;
    * table or view does not exist (ORA-00942), which is also Oracle's answer when the user may not read it ->
      ModelError naming both and the GRANT; insufficient privileges (ORA-01031) -> SourceAuthError;
    * invalid identifier (ORA-00904), syntax (ORA-00900, 00933, 00936...), a write refused by the read-only
      transaction (ORA-01456), anything else about the model's SQL -> ModelError with Oracle's text.
    """
    if not isinstance(exc, oracledb.Error):
        return None
    error = exc.args[0] if exc.args and isinstance(exc.args[0], oracledb._Error) else None
    text = one_line(str(error.message if error is not None else exc).split("\nHelp:", 1)[0])
    full_code = error.full_code if error is not None else ""
    found = _ORA.search(text)
    code = (error.code if error is not None and error.code else None) or (int(found[1]) if found else None)
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    mapped = _connection_error(full_code, code, text, settings) or _query_error(
        full_code, code, text, settings, subject
    )
    return scrub_secrets(mapped, settings)


def _where(settings: OracleSettings) -> str:
    database = f"service {settings.service_name!r}" if settings.service_name else f"SID {settings.sid!r}"
    return f"Oracle {database} at {settings.host}:{settings.port}"


def _connection_error(full_code: str, code: int | None, text: str, settings: OracleSettings) -> SourceError | None:
    where = _where(settings)
    if code in _CREDENTIALS:
        return SourceAuthError(f"{where} refused user {settings.user!r} (check user and password): {text}")
    if full_code in (_DPY_NO_SERVICE, _DPY_NO_SID) or code in _NO_SERVICE:
        setting = "service_name" if settings.service_name else "sid"
        message = f"the listener at {settings.host}:{settings.port} knows no such database (check {setting}): {text}"
        return source_error(SourceConnectionError, message, transient=False)
    if code == _UNKNOWN_SCHEMA:
        message = f"{where} has no schema {settings.schema!r} (check schema): {text}"
        return source_error(SourceConnectionError, message, transient=False)
    if full_code in (_DPY_UNREACHABLE, _DPY_CLOSED) or code in _UNREACHABLE:
        return SourceConnectionError(f"cannot reach {where}: {text}")
    return None


def _query_error(full_code: str, code: int | None, text: str, settings: OracleSettings, subject: str) -> SourceError:
    if full_code == _DPY_TIMEOUT or code in _TIMEOUTS:
        return query_timeout_error(subject, settings.query_timeout_seconds, text)
    if code in _TRANSIENT:
        return source_error(SourceError, f"{_where(settings)} failed temporarily: {text}", transient=True)
    if code in _MISSING:
        return ModelError(
            f"{subject} cannot be read: {text}: the table or view does not exist, or user {settings.user!r} may not "
            f"read it (GRANT SELECT ON <schema>.<table> TO {settings.user}, or GRANT READ ANY TABLE)"
        )
    if code in _NO_PRIVILEGE:
        return SourceAuthError(f"user {settings.user!r} lacks a privilege for {subject}: {text}")
    if code in _WRITE:
        return ModelError(f"{subject} would write, which the read-only transaction refuses: {text}")
    if code in _SYNTAX:
        return ModelError(f"{subject} has a syntax error: {text}")
    if code == _INVALID_IDENTIFIER or code is not None or full_code.startswith(_DPY_MODEL):
        return ModelError(f"{subject} cannot be read: {text}")
    return SourceError(f"{_where(settings)} failed: {text}")


__all__ = ["OracleSettings", "OracleSource", "map_oracle_error", "shown_name", "stored_name"]
