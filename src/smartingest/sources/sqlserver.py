"""Microsoft SQL Server and Azure Synapse Analytics: rows streamed as Arrow record batches by Microsoft's
mssql-python driver, whose ``Cursor.arrow_reader`` fetches each batch and builds its Arrow arrays in the
driver's native code (never a Python object per value).

mssql-python brings Microsoft's ODBC Driver 18 and its driver manager inside its wheels: nothing to install
from an ODBC vendor. (On Linux that driver loads libltdl: Debian's and Ubuntu's ``libltdl7``.)

**One connector, two profiles.** ``SqlServerSource`` (``type: sqlserver``: SQL Server, Azure SQL Database,
Azure SQL Managed Instance) and ``SynapseSource`` (``type: synapse``: Azure Synapse dedicated and serverless
SQL pools) share everything but what the profile says: Synapse always encrypts (the service refuses
clear-text logins), has no readable secondaries to route to (no ``application_intent``), and its dedicated
pools do not run ``sp_set_session_context`` (no ``application_name``).

**Sessions.** One connection per call, closed when it ends. SQL Server has no read-only session: the base
class refuses a model that would write, the login needs only SELECT (db_datareader), and
``ApplicationIntent=ReadOnly`` sends the session to a readable secondary where an availability group routes
read-only work. ``query_timeout_seconds`` is the driver's query timeout: when it expires the driver sends
SQL Server an attention, which stops the statement on the server. mssql-python always names itself
``MSSQL-Python`` as the program (it refuses to set another), so ``application_name`` is put in the
session's context (``SESSION_CONTEXT(N'application_name')``).

**Errors.** mssql-python's exceptions carry the SQLSTATE (as their class and text) and SQL Server's message,
not its error number: the number is read back from the message, whose text SQL Server writes from one
template per number (``_NUMBERED``), and decides what the error means (``map_sqlserver_error``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, Self

import mssql_python
import pyarrow as pa
from mssql_python.exceptions import ConnectionStringParseError, DataError, ProgrammingError
from mssql_python.exceptions import Exception as MssqlError
from pydantic import Field, SecretStr, model_validator

from smartingest.config.models import ModelConfig
from smartingest.errors import MissingDriverError, ModelError, SourceAuthError, SourceConnectionError, SourceError
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
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector
from smartingest.sources.tunnel import SshTunnelSettings, tunnel_to

Authentication = Literal["sql", "service_principal", "managed_identity"]
_ODBC_AUTHENTICATION = {
    "service_principal": "ActiveDirectoryServicePrincipal",
    "managed_identity": "ActiveDirectoryMsi",
}


class _TdsSettings(SshTunnelSettings):
    """The keys both profiles share (the keys of ``sources.NAME`` besides type and engine)."""

    host: str = Field(description="Server host name or IP address (Azure: <server>.database.windows.net).")
    port: int = Field(1433, ge=1, le=65535, description="Server TCP port.")
    database: str = Field(description="Database whose tables and views models read.")
    authentication: Authentication = Field(
        "sql",
        description="How to log in: sql (a SQL login: user and password), service_principal (Microsoft Entra "
        "application: user is its client ID, password its secret) or managed_identity (the Azure host's identity; "
        "user: a user-assigned identity's client ID).",
    )
    user: str | None = Field(None, description="SQL login, or the client ID of the Entra application or identity.")
    password: SecretStr | None = Field(None, description="The SQL login's password, or the application's secret.")
    trust_server_certificate: bool = Field(
        False, description="Accept a server certificate no trusted CA signed (a server's self-signed one)."
    )
    connect_timeout_seconds: int = Field(15, ge=1, le=3600, description="Seconds to wait for the login.")
    query_timeout_seconds: int | None = Field(
        None,
        ge=1,
        description="Stop a query that runs longer than this: the driver tells the server to stop it (no limit "
        "when unset).",
    )

    @model_validator(mode="after")
    def _credentials_fit_the_authentication(self) -> Self:
        if self.authentication == "managed_identity":
            if self.password is not None:
                raise ValueError("a managed_identity logs in without a password: remove password")
        elif not self.user or self.password is None:
            what = "user and password" if self.authentication == "sql" else "user (client ID) and password (secret)"
            raise ValueError(f"authentication {self.authentication} needs {what}")
        return self

    @property
    def encrypted(self) -> bool:
        return True

    def profile_keys(self) -> dict[str, str]:
        """The connection-string keys only this profile sends."""
        return {}

    def session_statements(self) -> list[str]:
        """The statements each session of this profile starts with."""
        return []


class SqlServerSettings(_TdsSettings):
    """Connection settings of a SQL Server, Azure SQL Database or Managed Instance source."""

    encrypt: bool = Field(True, description="Use TLS (refuse a server that cannot).")
    application_intent: Literal["ReadOnly", "ReadWrite"] = Field(
        "ReadOnly",
        description="ReadOnly lets an availability group route the session to a readable secondary.",
    )
    application_name: str = Field(
        "smartingest", min_length=1, max_length=128, description="Name the sessions carry in their context."
    )

    @property
    def encrypted(self) -> bool:
        return self.encrypt

    def profile_keys(self) -> dict[str, str]:
        return {"ApplicationIntent": self.application_intent}

    def session_statements(self) -> list[str]:
        # mssql-python names itself as the program: the name goes in the session's context instead.
        name = self.application_name.replace("'", "''")
        return [f"EXEC sys.sp_set_session_context @key = N'application_name', @value = N'{name}', @read_only = 1"]


class SynapseSettings(_TdsSettings):
    """Connection settings of an Azure Synapse SQL pool (<workspace>.sql.azuresynapse.net, or -ondemand)."""


# ------------------------------------------------------------------------------------------------- the types


def _leaf_rule(field: pa.Field) -> tuple[pa.DataType, Converter] | None:
    """datetimeoffset (a UTC instant, whatever zone string the driver puts on it) as UTC; times and
    timestamps to the microsecond, the project's unit (SQL Server keeps 100 ns: the last digit is cut)."""
    typ = field.type
    if pa.types.is_timestamp(typ) and (typ.tz is not None or typ.unit != "us"):
        target = pa.timestamp("us", tz="UTC" if typ.tz is not None else None)
        return target, lambda a: a.cast(target, safe=False)
    if pa.types.is_time(typ) and typ != pa.time64("us"):
        return pa.time64("us"), lambda a: a.cast(pa.time64("us"), safe=False)
    if pa.types.is_large_string(typ):
        return pa.string(), lambda a: a.cast(pa.string())
    if pa.types.is_large_binary(typ):
        return pa.binary(), lambda a: a.cast(pa.binary())
    return None


# ------------------------------------------------------------------------------------------------ the connector


class SqlServerSource(SqlConnector[_TdsSettings, Any]):
    """A SQL Server database (also Azure SQL); see the module docstring for how it is read."""

    Settings: ClassVar[type[_TdsSettings]] = SqlServerSettings
    DIALECT = "tsql"
    PRODUCT: ClassVar[str] = "SQL Server"

    def __repr__(self) -> str:  # never show the password
        s = self.settings
        return f"{type(self).__name__}(host={s.host!r}, port={s.port}, database={s.database!r}, user={s.user!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        s = self.settings
        with tunnel_to(s, s.host, s.port) as (host, port):
            with translate_errors(lambda exc: self._translate(exc, connecting=True)):
                conn = mssql_python.connect(
                    autocommit=True, timeout=s.connect_timeout_seconds, **self._login(host, port)
                )
            try:
                with translate_errors(self._translate):
                    conn.timeout = s.query_timeout_seconds or 0  # every cursor of the connection takes it
                    for statement in s.session_statements():
                        cursor = conn.cursor()
                        try:
                            cursor.execute(statement)
                        finally:
                            close_quietly(cursor.close)
                yield conn
            finally:
                close_quietly(conn.close)

    def _stream(self, conn: Any, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            cursor = conn.cursor()
            try:
                cursor.execute(query)
                if not cursor.description:
                    raise ModelError(f"model {describe_model(model)} is not a query that returns rows")
                reader = cursor.arrow_reader(batch_rows)
            except BaseException:
                close_quietly(cursor.close)
                raise
        normalise = Normaliser(reader.schema, _leaf_rule)

        def release() -> None:
            close_quietly(reader.close)  # the driver cancels what is left of the result
            close_quietly(cursor.close)

        batches = rebatch(map(normalise, reader), batch_rows)
        return BatchStream(normalise.schema, batches, translate, on_close=release)

    def _tables_sql(self, limit: int) -> str:
        # INFORMATION_SCHEMA.TABLES lists tables and views, only those the login may see.
        return (
            f"SELECT TOP ({limit}) CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM INFORMATION_SCHEMA.TABLES"
            " WHERE TABLE_SCHEMA NOT IN ('sys', 'INFORMATION_SCHEMA') ORDER BY 1"
        )

    def _translate(
        self, exc: BaseException, model: ModelConfig | None = None, *, connecting: bool = False
    ) -> SourceError | None:
        return map_sqlserver_error(exc, self.settings, model, product=self.PRODUCT, connecting=connecting)

    # ------------------------------------------------------------------------------------------------- internals

    def _login(self, host: str, port: int) -> dict[str, Any]:
        """The connection-string keys of a login to ``host:port`` (the server, or the tunnel's local end)."""
        s = self.settings
        keys = {
            "Server": f"tcp:{host},{port}",
            "Database": s.database,
            "Encrypt": "yes" if s.encrypted else "no",
            "TrustServerCertificate": "yes" if s.trust_server_certificate else "no",
        }
        if s.tunnelled and s.encrypted:
            keys["HostNameInCertificate"] = s.host  # the certificate names the server, not the tunnel's end
        if s.authentication != "sql":
            keys["Authentication"] = _ODBC_AUTHENTICATION[s.authentication]
        if s.user:
            keys["UID"] = s.user
        if s.password is not None:
            keys["PWD"] = s.password.get_secret_value()
        return keys | s.profile_keys()


class SynapseSource(SqlServerSource):
    """An Azure Synapse SQL pool: SQL Server's connector under Synapse's profile (its settings say what
    differs; see the module docstring)."""

    Settings = SynapseSettings
    PRODUCT = "Azure Synapse"


# ---------------------------------------------------------------------------------------------- error mapping

# SQL Server's message for each error number the mapping decides on (en-US, the server's default language),
# matched on a distinctive part: 4060's text ends with 18456's, so it comes first, as 156's before 102's.
_NUMBERED = tuple(
    (number, re.compile(pattern, re.I))
    for number, pattern in (
        (4060, r"Cannot open database"),
        (18456, r"Login failed for user"),
        (229, r"permission was denied on the object"),
        (230, r"permission was denied on the column"),
        (262, r"permission denied in database"),
        (208, r"Invalid object name"),
        (207, r"Invalid column name"),
        (156, r"Incorrect syntax near the keyword"),
        (102, r"Incorrect syntax near"),
        (3906, r"database is read-only"),
        (1205, r"was deadlocked"),
        (40613, r"is not currently available"),
        (40501, r"The service is currently busy"),
        (40197, r"The service has encountered an error processing your request"),
    )
)
_TRANSIENT_NUMBERS = frozenset({1205, 40613, 40501, 40197})
_PRIVILEGE_NUMBERS = frozenset({229, 230})
_WRITE_NUMBERS = frozenset({262, 3906})
_SYNTAX_NUMBERS = frozenset({102, 156})
_OBJECT = re.compile(r"on the (?:object|column) '([^']*)'.*?schema '([^']*)'", re.I | re.S)
_UNREACHABLE = re.compile(r"TCP Provider|Named Pipes Provider|Communication link failure|unable to establish", re.I)
_CERTIFICATE = re.compile(r"certificate", re.I)
_ENTRA = re.compile(r"Active ?Directory|AADSTS|Entra|azure-identity|Failed to authenticate", re.I)


def map_sqlserver_error(
    exc: BaseException,
    settings: _TdsSettings,
    model: ModelConfig | None = None,
    *,
    product: str = "SQL Server",
    connecting: bool = False,
) -> SourceError | None:
    """Translate an mssql-python error into the error tree (None for exceptions that are not the driver's).

    The one place that decides transient vs permanent for SQL Server and Synapse, on SQL Server's error
    number (read from its message, see the module docstring) and the SQLSTATE:

    * cannot reach the server, the login timeout -> SourceConnectionError (transient); a certificate not
      trusted -> SourceConnectionError marked permanent, naming trust_server_certificate;
    * login failed (18456), Entra refusing the application or identity -> SourceAuthError;
    * cannot open the database (4060) -> SourceConnectionError marked permanent, naming ``database``;
    * permission denied on an object or column (229, 230) -> SourceAuthError with the GRANT that fixes it;
    * the query timeout (HYT00 once connected) -> SourceError marked permanent, naming query_timeout_seconds;
    * Azure's transient errors (40613, 40501, 40197) and deadlocks (1205) -> SourceError marked transient;
    * a write refused (262, 3906) -> ModelError;
    * invalid object (208) or column (207) name, syntax (102, 156), anything else about the model's SQL ->
      ModelError with SQL Server's text.
    """
    where = f"{product} at {settings.host}:{settings.port}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    if isinstance(exc, ConnectionStringParseError):
        return source_error(SourceError, f"the driver refused the settings of {where}: {exc}", transient=False)
    if not isinstance(exc, MssqlError):
        return None
    text = one_line(exc.ddbc_error or exc.driver_error)
    if "Failed to load the driver" in text:
        # The wheel's ODBC driver needs the system's libltdl; without it nothing can connect.
        return MissingDriverError(
            f"{product}'s driver cannot load its ODBC library: apt-get install libltdl7 (Debian, Ubuntu), "
            f"or your system's libltdl package ({text})"
        )
    number = _number(text)
    mapped = (
        _login_error(number, text, where, settings)
        if connecting
        else _query_error(exc, number, text, where, settings, subject)
    )
    return scrub_secrets(mapped, settings)


def _number(text: str) -> int | None:
    return next((number for number, pattern in _NUMBERED if pattern.search(text)), None)


def _login_error(number: int | None, text: str, where: str, settings: _TdsSettings) -> SourceError:
    if number == 4060:
        message = (
            f"{where} has no database {settings.database!r} that the login may open (check database, or add the "
            f"login to it: CREATE USER [{settings.user}] FOR LOGIN [{settings.user}]): {text}"
        )
        return source_error(SourceConnectionError, message, transient=False)
    if number == 18456 or _ENTRA.search(text):
        credential = "user and password" if settings.authentication == "sql" else "the client ID and secret"
        if settings.authentication == "managed_identity":
            credential = "the identity's access to the database"
        return SourceAuthError(
            f"{where} refused the login of {settings.user or 'the identity'} (check {credential}): {text}"
        )
    if _CERTIFICATE.search(text):
        message = (
            f"{where} showed a certificate that is not trusted (install its CA, or set trust_server_certificate): "
            f"{text}"
        )
        return source_error(SourceConnectionError, message, transient=False)
    if number in _TRANSIENT_NUMBERS:
        return source_error(SourceError, f"{where} failed temporarily: {text}", transient=True)
    return SourceConnectionError(f"cannot reach {where}: {text}")


def _query_error(
    exc: MssqlError, number: int | None, text: str, where: str, settings: _TdsSettings, subject: str
) -> SourceError:
    if number in _PRIVILEGE_NUMBERS:
        return SourceAuthError(f"the login may not read {subject}: {text}; fix: {_grant(text, settings)}")
    if "Timeout expired" in exc.driver_error:
        return query_timeout_error(subject, settings.query_timeout_seconds, text)
    if number in _TRANSIENT_NUMBERS or _UNREACHABLE.search(text):
        return source_error(SourceError, f"{where} failed temporarily: {text}", transient=True)
    if number in _WRITE_NUMBERS:
        return ModelError(f"{subject} would write, which the source refuses: {text}")
    if number in _SYNTAX_NUMBERS:
        return ModelError(f"{subject} has a syntax error: {text}")
    if number in (207, 208) or isinstance(exc, ProgrammingError | DataError):
        return ModelError(f"{subject} cannot be read: {text}")
    return SourceError(f"{where} failed: {text}")


def _grant(text: str, settings: _TdsSettings) -> str:
    """The GRANT that lets the login read the object the message names (every table of its schema)."""
    found = _OBJECT.search(text)
    schema = found[2] if found else "dbo"
    return f"GRANT SELECT ON SCHEMA::[{schema}] TO [{settings.user or '<identity>'}]"


__all__ = ["SqlServerSettings", "SqlServerSource", "SynapseSettings", "SynapseSource", "map_sqlserver_error"]
