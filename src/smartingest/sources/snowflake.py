"""Snowflake connector: rows streamed as Arrow through snowflake-connector-python's result chunks.

A query's result arrives as Snowflake's Arrow chunks, which ``cursor.fetch_arrow_batches()`` hands over one
at a time (downloaded a few ahead by the driver's threads), so memory holds a few chunks, never the whole
result. Each chunk is cut to ``batch_rows`` and conformed to the types planned from the query's description
before the first row (``_plan``): the driver's own types vary from chunk to chunk (a NUMBER column comes as
int8 in one chunk and int64 in the next, whatever its values need), and an empty result has no chunk to
show its types.

**Identifiers.** Snowflake stores an unquoted name in upper case (``people`` is ``PEOPLE``). Names are shown
as a model's author writes them unquoted: a name Snowflake stores in upper case is shown in lower case
(columns ``id``, ``email``; tables ``public.people``), any other is shown as stored (``"firstName"``). A
table name is resolved the same way back: ``public.people`` reads ``"PUBLIC"."PEOPLE"``, ``MyTable`` reads
``"MyTable"``.

**Sessions.** One connection per call, closed when it ends. Snowflake has no read-only session: the base
class refuses a model that would write, and the role should hold only USAGE and SELECT (see
docs/sources.md). Sessions run in UTC, tagged ``smartingest``, with ``STATEMENT_TIMEOUT_IN_SECONDS`` from
``query_timeout_seconds``; the login asks Snowflake to check that the database, schema and warehouse exist,
so a typo fails there, naming the setting.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Self

import pyarrow as pa
import snowflake.connector
import snowflake.connector.errors as sf_errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import Field, SecretStr, model_validator
from snowflake.connector.connection import SnowflakeConnection
from snowflake.connector.constants import FIELD_ID_TO_NAME

from smartingest.config.models import ModelConfig, Strict
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
from smartingest.sources._result_plan import ResultColumn, conformed
from smartingest.sources.base import describe_model
from smartingest.sources.names import SNOWFLAKE
from smartingest.sources.sql import SqlConnector, loaded_type

Protocol = Literal["https", "http"]
_LOAD_ROWS = 2000  # rows per INSERT of the Lightning engine's loads (a statement's text is at most 1 MB)


# ``schema`` is Snowflake's own word for the key; it shadows BaseModel's deprecated schema() method, never used on
# settings, and pydantic would warn about that at every import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class SnowflakeSettings(Strict):
        """Connection settings of a Snowflake source (the keys of ``sources.NAME`` besides type and engine)."""

        account: str = Field(
            description="Account identifier: orgname-accountname, or the account locator with its region "
            "(xy12345.eu-west-1), as in <account>.snowflakecomputing.com."
        )
        user: str = Field(description="User to log in as; its role needs only USAGE and SELECT (see the docs).")
        password: SecretStr | None = Field(None, description="The user's password; exclusive with private_key_path.")
        private_key_path: str | None = Field(
            None,
            description="PEM file of the user's private key, for key-pair authentication; exclusive with password.",
        )
        private_key_passphrase: SecretStr | None = Field(
            None, description="Passphrase of an encrypted private key (private_key_path)."
        )
        warehouse: str | None = Field(
            None, description="Warehouse that runs the queries (default: the user's default)."
        )
        database: str = Field(description="Database whose tables and views models read; the table picker lists them.")
        schema: str = Field(  # type: ignore[assignment]
            "PUBLIC", description="Schema in which unqualified table names are looked up."
        )
        role: str | None = Field(None, description="Role the session uses (default: the user's default role).")
        login_timeout_seconds: int = Field(60, ge=1, le=3600, description="Seconds to keep trying to log in.")
        query_timeout_seconds: int | None = Field(
            None,
            ge=1,
            description="Stop a query that runs longer than this (STATEMENT_TIMEOUT_IN_SECONDS; unset: the account's).",
        )
        host: str | None = Field(
            None,
            description="Host to connect to instead of <account>.snowflakecomputing.com (private link, an emulator).",
        )
        port: int | None = Field(None, ge=1, le=65535, description="Port to connect to (default: 443).")
        protocol: Protocol = Field("https", description="https, or http for a local emulator only.")

        @model_validator(mode="after")
        def _one_credential(self) -> Self:
            if (self.password is None) == (self.private_key_path is None):
                raise ValueError("give exactly one of password and private_key_path (key-pair authentication)")
            if self.private_key_passphrase is not None and self.private_key_path is None:
                raise ValueError("private_key_passphrase is given without private_key_path")
            return self


# ---------------------------------------------------------------------------------------------- identifiers

shown_name = SNOWFLAKE.shown  # ``EMAIL`` -> ``email`` (see sources/names.py)
stored_name = SNOWFLAKE.resolved  # ``email`` -> ``EMAIL``


# ------------------------------------------------------------------------------------------------- the plan

_JSON_KINDS = frozenset({"VARIANT", "OBJECT", "ARRAY", "MAP"})
_PLAIN_KINDS: dict[str, pa.DataType] = {
    "REAL": pa.float64(),
    "TEXT": pa.string(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP_NTZ": pa.timestamp("us"),
    "TIMESTAMP_LTZ": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP_TZ": pa.timestamp("us", tz="UTC"),
    "TIME": pa.time64("us"),
    "BINARY": pa.binary(),
}


def _column(name: str, kind: str, precision: int | None, scale: int | None, subject: str) -> ResultColumn:
    if kind == "FIXED":
        # NUMBER(p, 0), INT included (NUMBER(38, 0)), as int64: a value beyond it fails the read, named.
        return ResultColumn(name, pa.int64() if not scale else pa.decimal128(precision or 38, scale))
    if kind in _JSON_KINDS:
        return ResultColumn(name, pa.string(), json=True)
    if kind in _PLAIN_KINDS:
        return ResultColumn(name, _PLAIN_KINDS[kind])
    raise ModelError(
        f"{subject}: column {name!r} is of Snowflake type {kind}, which is not read as such: cast it in the "
        f"model's SQL (TO_VARCHAR({stored_name(name)}), or ST_ASGEOJSON for GEOGRAPHY and GEOMETRY)"
    )


def _plan(description: list[Any] | None, subject: str) -> list[ResultColumn]:
    """Each column's name and plain type, from the driver's description of the result (no rows read)."""
    if not description:
        raise ModelError(f"{subject} is not a query that returns rows")
    names = SNOWFLAKE.shown_all([meta.name for meta in description])
    return [
        _column(name, FIELD_ID_TO_NAME[meta.type_code] or f"#{meta.type_code}", meta.precision, meta.scale, subject)
        for name, meta in zip(names, description, strict=True)
    ]


def _conformed(tables: Iterator[pa.Table], columns: list[ResultColumn], subject: str) -> Iterator[pa.RecordBatch]:
    """The driver's chunks as the planned types (Snowflake keeps up to nanoseconds, the plan microseconds: the
    extra digits are cut)."""
    batches = (batch for table in tables for batch in table.to_batches())
    return conformed(batches, columns, subject, lambda name: f"TO_VARCHAR({stored_name(name)})")


# ------------------------------------------------------------------------------------------------ the connector


class SnowflakeSource(SqlConnector[SnowflakeSettings, SnowflakeConnection]):
    """A Snowflake database; see the module docstring for how it is read."""

    Settings = SnowflakeSettings
    DIALECT = "snowflake"
    NAMES = SNOWFLAKE

    def __repr__(self) -> str:  # never show the password or the key's passphrase
        s = self.settings
        return f"SnowflakeSource(account={s.account!r}, user={s.user!r}, database={s.database!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[SnowflakeConnection]:
        with translate_errors(self._translate):
            conn = snowflake.connector.connect(**self._connect_arguments())
        try:
            yield conn
        finally:
            close_quietly(conn.close)

    def _stream(self, conn: SnowflakeConnection, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        subject = f"model {describe_model(model)}"
        with translate_errors(translate):
            cur = conn.cursor()
            try:
                cur.execute(query)
                columns = _plan(cur.description, subject)
                # Microseconds, the planned unit, for every chunk (the driver would pick it chunk by chunk).
                tables = cur.fetch_arrow_batches(force_microsecond_precision=True)
            except BaseException:
                close_quietly(cur.close)
                raise
        batches = rebatch(_conformed(tables, columns, subject), batch_rows)
        return BatchStream(pa.schema([c.field for c in columns]), batches, translate, on_close=cur.close)

    def _planner_session(self) -> contextlib.AbstractContextManager[SnowflakeConnection]:
        return self._session()  # nothing makes the session read-only

    def _load(self, conn: SnowflakeConnection, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        # Names resolved as the planner's SQL resolves them (``id`` is ``ID``).
        qualified = f"{self.quote(schema)}.{self.quote(table)}"
        fields = list(data.schema)
        declared = ", ".join(f"{self.quote(f.name)} {loaded_type(f.type, self.DIALECT)}" for f in fields)
        names = ", ".join(self.quote(f.name) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        cur = conn.cursor()
        try:
            cur.execute(f"CREATE TABLE {qualified} ({declared})")
            # The driver writes executemany's rows into one multi-row INSERT (pyformat binds on the client),
            # under Snowflake's limit on a statement's length.
            for batch in data:
                for start in range(0, batch.num_rows, _LOAD_ROWS):
                    part = batch.slice(start, _LOAD_ROWS)
                    rows = list(zip(*(column.to_pylist() for column in part.columns), strict=True))
                    cur.executemany(f"INSERT INTO {qualified} ({names}) VALUES ({marks})", rows)
        finally:
            close_quietly(cur.close)

    def _tables_sql(self, limit: int) -> str:
        # Snowflake's information_schema.tables lists views too; the union with .views costs nothing and also
        # finds them where an information schema lists only tables (the emulator the tests run against).
        return (
            "SELECT table_schema || '.' || table_name FROM (SELECT table_schema, table_name FROM "
            "information_schema.tables UNION SELECT table_schema, table_name FROM information_schema.views) "
            f"WHERE table_schema <> 'INFORMATION_SCHEMA' ORDER BY 1 LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_snowflake_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _connect_arguments(self) -> dict[str, Any]:
        s = self.settings
        parameters: dict[str, Any] = {
            "TIMEZONE": "UTC",
            "QUERY_TAG": "smartingest",
            "PYTHON_CONNECTOR_QUERY_RESULT_FORMAT": "ARROW",
        }
        if s.query_timeout_seconds is not None:
            parameters["STATEMENT_TIMEOUT_IN_SECONDS"] = s.query_timeout_seconds
        arguments: dict[str, Any] = {
            "account": s.account,
            "user": s.user,
            "database": s.database,
            "schema": s.schema,
            "warehouse": s.warehouse,
            "role": s.role,
            "login_timeout": s.login_timeout_seconds,
            "protocol": s.protocol,
            "session_parameters": parameters,
            "autocommit": True,
            # Fail the login on a database, schema or warehouse that does not exist (or the role may not use).
            "validate_default_parameters": True,
            # NUMBER(p, s) as exact decimals: without it, the driver turns them into float64.
            "arrow_number_to_decimal": True,
            # No probes of cloud metadata services (169.254.169.254...) at each login: what platform we run on
            # is no business of a sync's, and those probes would leave the machine.
            "platform_detection_timeout_seconds": 0.0,
        }
        if s.host is not None:
            arguments["host"] = s.host
        if s.port is not None:
            arguments["port"] = s.port
        if s.password is not None:
            arguments["password"] = s.password.get_secret_value()
        else:
            arguments["private_key"] = self._private_key()
        return arguments

    def _private_key(self) -> RSAPrivateKey:
        """The key-pair authentication's private key, read from ``private_key_path``."""
        s = self.settings
        path = Path(s.private_key_path or "").expanduser()
        passphrase = s.private_key_passphrase.get_secret_value().encode() if s.private_key_passphrase else None
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
        except OSError as exc:
            raise SourceAuthError(f"cannot read private_key_path {str(path)!r}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:  # not PEM, a wrong passphrase, or one missing or not needed
            raise SourceAuthError(
                f"private_key_path {str(path)!r} is not a PEM private key that private_key_passphrase opens: {exc}"
            ) from exc
        if not isinstance(key, RSAPrivateKey):
            raise SourceAuthError(f"private_key_path {str(path)!r} holds no RSA key: Snowflake's key pairs are RSA")
        return key


# ---------------------------------------------------------------------------------------------- error mapping

# Snowflake's error numbers (errno; the server's are the 6-digit codes in its messages), by what they mean.
_CREDENTIALS = frozenset({390100, 390101, 390102, 390144, 390302, 390303} | set(range(394300, 394310)))
_ROLE_NOT_GRANTED = 390189
_DEFAULT_NOT_FOUND = 390201  # the login's database, schema or warehouse does not exist or is not authorized
_UNREACHABLE = frozenset({250001, 250003, 251011, 251012, 390114})  # 390114: the session's token expired
_NO_WAREHOUSE = 606
_NO_DATABASE = 90105
_TIMEOUT = 630
_CANCELLED = 604
_NO_PRIVILEGE = 3001
_NOT_FOUND = 2003
_SYNTAX = 1003
_LOGIN_ANSWERS = (390000, 400000)  # the codes Snowflake answers a login with
_DEFAULT_SETTING = re.compile(r"requested (database|schema|warehouse)", re.I)
_MODEL_STATES = ("42", "22", "21", "0A", "02")


def map_snowflake_error(
    exc: BaseException, settings: SnowflakeSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a snowflake-connector-python error into the error tree (None for exceptions not the driver's).

    The one place that decides transient vs permanent for Snowflake, on the error number and SQLSTATE:

    * wrong user, password or key (390100, JWT 3943xx, SQLSTATE 28000) -> SourceAuthError;
    * the role not granted to the user (390189) -> SourceAuthError naming ``role``;
    * the login's database, schema or warehouse unknown (390201), no warehouse in use (606), no current
      database (90105) -> SourceConnectionError marked permanent, naming the setting;
    * cannot reach Snowflake, login or request retries exhausted, session expired -> SourceConnectionError
      (transient); the account refused by its host (HTTP 403) -> permanent, naming ``account``;
    * the statement timeout reached (630) -> SourceError marked permanent, naming ``query_timeout_seconds``;
      a query cancelled otherwise (604) -> SourceError marked transient;
    * insufficient privileges (3001, 42501) -> SourceAuthError with the GRANT that fixes it;
    * an object that does not exist or is not authorized (2003) -> ModelError with the GRANT it may need;
    * a syntax error (1003), other SQL compilation and data errors -> ModelError with Snowflake's text.
    """
    if not isinstance(exc, sf_errors.Error):
        return None
    errno, state = exc.errno, exc.sqlstate or ""
    detail = one_line(exc.raw_msg or str(exc))
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    mapped = _login_error(errno, state, detail, settings) or _query_error(errno, state, detail, settings, subject)
    return scrub_secrets(mapped, settings)


def _login_error(errno: int, state: str, detail: str, settings: SnowflakeSettings) -> SourceError | None:
    where = f"Snowflake account {settings.account!r}" + (f" at {settings.host}" if settings.host else "")
    if errno in _CREDENTIALS or state == "28000":
        credential = "password" if settings.password is not None else "private key (its public key set for the user)"
        return SourceAuthError(f"{where} refused user {settings.user!r} (check user and {credential}): {detail}")
    if errno == _ROLE_NOT_GRANTED:
        return SourceAuthError(
            f"role {settings.role!r} is not granted to user {settings.user!r}: {detail}; fix role, or "
            f"GRANT ROLE {settings.role} TO USER {settings.user}"
        )
    found = _DEFAULT_SETTING.search(detail)
    if errno == _DEFAULT_NOT_FOUND or (found and "not authorized" in detail):
        setting = found[1].lower() if found else "database, schema or warehouse"
        return _missing(setting, detail, settings)
    if errno in _UNREACHABLE or (state.startswith("08") and not _LOGIN_ANSWERS[0] <= errno < _LOGIN_ANSWERS[1]):
        if "Verify the account name" in detail:
            return source_error(
                SourceConnectionError, f"{where} refused the connection (check account): {detail}", transient=False
            )
        return SourceConnectionError(f"cannot reach {where}: {detail}")
    if _LOGIN_ANSWERS[0] <= errno < _LOGIN_ANSWERS[1]:  # Snowflake answered the login with a refusal
        return SourceAuthError(f"{where} refused the login of user {settings.user!r}: {detail}")
    return None


def _query_error(errno: int, state: str, detail: str, settings: SnowflakeSettings, subject: str) -> SourceError:
    if errno == _NO_WAREHOUSE:
        return _missing("warehouse", detail, settings)
    if errno == _NO_DATABASE:
        return _missing("database", detail, settings)
    if errno == _TIMEOUT or (state == "57014" and "timeout" in detail.lower()):
        return query_timeout_error(subject, settings.query_timeout_seconds, detail)
    if errno == _CANCELLED or state == "57014":
        return source_error(SourceError, f"Snowflake cancelled {subject}: {detail}", transient=True)
    if errno == _NO_PRIVILEGE or state == "42501":
        return SourceAuthError(f"the role may not read {subject}: {detail}; fix: {_grants(settings)}")
    if errno == _NOT_FOUND:
        return ModelError(f"{subject} cannot be read: {detail} (if it exists, the role needs: {_grants(settings)})")
    if errno == _SYNTAX:
        return ModelError(f"{subject} has a syntax error: {detail}")
    if state.startswith(_MODEL_STATES) or 1000 <= errno < 3000 or 100000 <= errno < 101000:
        return ModelError(f"{subject} cannot be read: {detail}")
    return SourceError(f"Snowflake account {settings.account!r} failed: {detail}")


def _missing(setting: str, detail: str, settings: SnowflakeSettings) -> SourceConnectionError:
    value = getattr(settings, setting, None) if setting in {"database", "schema", "warehouse"} else None
    named = f"{setting} {value!r}" if value is not None else setting
    return source_error(
        SourceConnectionError,
        f"Snowflake has no {named} that the role may use: {detail}; check {setting}, or {_grants(settings)}",
        transient=False,
    )


def _grants(settings: SnowflakeSettings) -> str:
    """The GRANTs a read-only role needs on this source's database and schema."""
    role = settings.role or "<role>"
    schema = f"{settings.database}.{settings.schema}"
    warehouse = f"GRANT USAGE ON WAREHOUSE {settings.warehouse} TO ROLE {role}; " if settings.warehouse else ""
    return (
        f"{warehouse}GRANT USAGE ON DATABASE {settings.database} TO ROLE {role}; GRANT USAGE ON SCHEMA {schema} "
        f"TO ROLE {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO ROLE {role}; GRANT SELECT ON ALL VIEWS "
        f"IN SCHEMA {schema} TO ROLE {role}"
    )


__all__ = ["SnowflakeSettings", "SnowflakeSource", "map_snowflake_error", "shown_name", "stored_name"]
