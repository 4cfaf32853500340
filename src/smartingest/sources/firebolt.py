"""Firebolt connector: a query's rows streamed over Firebolt's HTTP query API by the official SDK
(``firebolt-sdk``), each chunk of rows built into an Arrow record batch column by column.

The SDK logs the service account in (client id and secret, exchanged for a token at the identity endpoint
that goes with ``api_endpoint``), asks the API for the account's system engine, and there selects the
database and the engine (``USE DATABASE``, ``USE ENGINE``), which gives the engine's URL. A model's query is
then posted to that engine with ``output_format=JSONLines_Compact``: the answer streams as JSON lines, a
START record with the columns and their Firebolt types, DATA records of rows, and a FINISH record (or the
error that ended the query). The SDK's cursor would turn every value into a Python object one call at a
time; the connector reads the SDK's response itself (the cursor's request, its error checks) and turns each
DATA record into a record batch: the rows transposed once, each column converted in one call, numbers read
exactly as the text they were sent as (decimals stay exact).

Firebolt has no read-only session: a model's SQL that would write is refused before it is sent, and the
service account's role keeps it to SELECT (see docs/sources.md). ``query_timeout_seconds`` becomes
Firebolt's ``statement_timeout`` setting, which the engine enforces.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import firebolt.db
import httpx
import pyarrow as pa
import pyarrow.compute as pc
from firebolt.client.auth import ClientCredentials
from firebolt.utils import exception as fb
from pydantic import Field, SecretStr

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, Strict
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

_UTC_US = pa.timestamp("us", tz="UTC")
_MAX_DECIMAL128_PRECISION = 38


class FireboltSettings(Strict):
    """Connection settings of a Firebolt source (the keys of ``sources.NAME`` besides type and engine)."""

    client_id: str = Field(description="The service account's client id.")
    client_secret: SecretStr = Field(description="The service account's client secret.")
    account_name: str = Field(description="Firebolt account the database and the engine belong to.")
    database: str = Field(description="Database whose tables and views models read.")
    engine_name: str = Field(description="Engine that runs the queries (it must be running, or start on demand).")
    api_endpoint: str = Field(
        "api.app.firebolt.io",
        description="Firebolt's API host (another region or environment); the identity host goes with it.",
    )
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a model's query that runs longer than this (statement_timeout; no limit unset)."
    )


# --------------------------------------------------------------------------------------------- Firebolt's types


@dataclass(frozen=True)
class _Column:
    """How one result column becomes Arrow: its field and the conversion of a chunk's values."""

    field: pa.Field
    convert: Callable[[list[Any]], pa.Array]


def plan_column(name: str, firebolt_type: str) -> _Column:
    """The Arrow field of a result column (from the type START names) and how its JSON values become it."""
    text = firebolt_type.strip()
    base = text.removesuffix(" null").removesuffix(" NULL").strip().lower()
    if base in _NUMBERS:
        return _Column(pa.field(name, _NUMBERS[base]), partial(_number, typ=_NUMBERS[base]))
    if base.startswith(("numeric(", "decimal(")):
        precision, scale = (int(part) for part in base[base.index("(") + 1 : -1].split(","))
        typ = pa.decimal128(precision, scale) if precision <= _MAX_DECIMAL128_PRECISION else pa.float64()
        return _Column(pa.field(name, typ), partial(_number, typ=typ))
    if base == "boolean":
        return _Column(pa.field(name, pa.bool_()), _boolean)
    if base in ("date", "pgdate", "date_ext"):
        return _Column(pa.field(name, pa.date32()), partial(_number, typ=pa.date32()))
    if base in ("timestamp", "timestampntz", "timestamp_ext"):
        return _Column(pa.field(name, pa.timestamp("us")), _local_time)
    if base == "timestamptz":
        return _Column(pa.field(name, _UTC_US), _instants)
    if base == "bytea":
        return _Column(pa.field(name, pa.binary()), _bytea)
    if base.startswith(("array(", "struct(")):
        return _Column(pa.field(name, pa.string(), metadata=JSON_TEXT), _json_text)
    return _Column(pa.field(name, pa.string()), _text)  # text, geography, types not known here


_NUMBERS: dict[str, pa.DataType] = {
    "int": pa.int32(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "long": pa.int64(),
    "real": pa.float32(),
    "float": pa.float32(),
    "double": pa.float64(),
    "double precision": pa.float64(),
}


def _text(values: list[Any]) -> pa.Array:
    """Values as text: JSON strings as they are, numbers as the text they were sent as."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # integers (and booleans) come as JSON numbers
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())


def _number(values: list[Any], typ: pa.DataType) -> pa.Array:
    """Numbers (read as their text, so decimals stay exact) and dates, parsed by Arrow's cast kernel."""
    try:
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pc.cast(_text(values), typ)


def _boolean(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # 0 and 1
        return pc.not_equal(_number(values, pa.int64()), 0)


def _local_time(values: list[Any]) -> pa.Array:
    """``2024-01-02 03:04:05.123456`` as a timestamp to the microsecond."""
    return pc.cast(pc.utf8_slice_codeunits(_text(values), 0, 26), pa.timestamp("us"))


def _instants(values: list[Any]) -> pa.Array:
    """``2024-01-02 03:04:05.123456+00`` (the session's zone, UTC unless set) as the UTC instant."""
    text = pc.replace_substring_regex(_text(values), r"([+-]\d\d)$", r"\1:00")  # +00 -> +00:00, as ISO 8601
    return pc.cast(text, _UTC_US)


def _bytea(values: list[Any]) -> pa.Array:
    # ``\x0001ff``; Arrow has no hex kernel, and bytea columns are rare in models.
    return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in values], pa.binary())


def _json_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string())


def chunk_batch(rows: list[list[Any]], columns: list[_Column], schema: pa.Schema) -> pa.RecordBatch:
    """A DATA record's rows as one record batch: transposed once, each column converted in one call."""
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = [c.convert(list(v)) for c, v in zip(columns, values, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------------------------- the protocol


class _Result:
    """A streamed JSONLines_Compact answer: its columns (START), then its DATA records, until FINISH."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._lines = response.iter_lines()
        start = self._record()
        if start is None or start.get("message_type") != "START":
            raise fb.OperationalError(f"Firebolt answered without the result's columns: {start}")
        self.columns: list[dict[str, str]] = start["result_columns"]

    def chunks(self) -> Iterator[list[list[Any]]]:
        while (record := self._record()) is not None:
            kind = record.get("message_type")
            if kind == "DATA":
                yield record["data"]
            elif kind == "FINISH_SUCCESSFULLY":
                return
        raise fb.OperationalError("the result ended before Firebolt said it had finished")

    def close(self) -> None:
        self._response.close()

    def _record(self) -> dict[str, Any] | None:
        for line in self._lines:
            if line.strip():
                # Floats as their text: DECIMALs stay exact, doubles are parsed by Arrow.
                record: dict[str, Any] = json.loads(line, parse_float=str)
                if record.get("message_type") == "FINISH_WITH_ERRORS":
                    raise fb.FireboltStructuredError({"errors": record.get("errors", [])})
                return record
        return None


@dataclass
class _Session:
    """One call's connection to the engine and the cursor its statements go through."""

    connection: firebolt.db.Connection
    cursor: firebolt.db.Cursor

    def result(self, sql: str) -> _Result:
        # The cursor's own request (the engine's URL, the database, the session's settings) and its error
        # checks; the answer is read here rather than by its row set, which makes each value a Python object.
        response = self.cursor._api_request(sql, {"output_format": "JSONLines_Compact"})
        try:
            self.cursor._raise_if_error(response)
            return _Result(response)
        except BaseException:
            response.close()
            raise


# ------------------------------------------------------------------------------------------------ the connector


class FireboltSource(SqlConnector[FireboltSettings, _Session]):
    """A Firebolt database read through one of its engines; see the module docstring for how."""

    Settings = FireboltSettings
    DIALECT = "postgres"  # sqlglot has no Firebolt dialect; Firebolt's SQL follows PostgreSQL's

    def __repr__(self) -> str:  # never show the secret
        s = self.settings
        return (
            f"FireboltSource(account_name={s.account_name!r}, database={s.database!r}, engine_name={s.engine_name!r})"
        )

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Session]:
        s = self.settings
        with translate_errors(self._translate):
            connection = firebolt.db.connect(
                # No token cache on disk: the secret is kept encrypted by smartingest, not by the SDK.
                auth=ClientCredentials(s.client_id, s.client_secret.get_secret_value(), use_token_cache=False),
                account_name=s.account_name,
                database=s.database,
                engine_name=s.engine_name,
                api_endpoint=s.api_endpoint,
                disable_cache=True,
            )
        try:
            with translate_errors(self._translate):
                cursor = connection.cursor()
                if s.query_timeout_seconds is not None:
                    cursor.execute(f"SET statement_timeout = {max(round(s.query_timeout_seconds * 1000), 1)}")
            yield _Session(connection, cursor)
        finally:
            close_quietly(connection.close)

    def _stream(self, conn: _Session, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            result = conn.result(query)
        columns = [plan_column(str(c["name"]), str(c["type"])) for c in result.columns]
        schema = pa.schema([c.field for c in columns])

        def batches() -> Iterator[pa.RecordBatch]:
            for rows in result.chunks():
                yield chunk_batch(rows, columns, schema)

        return BatchStream(schema, rebatch(batches(), batch_rows), translate, on_close=result.close)

    def _rows(self, conn: _Session, query: str) -> list[tuple[Any, ...]]:
        result = conn.result(query)
        try:
            return [tuple(row) for rows in result.chunks() for row in rows]
        finally:
            result.close()

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1"
            f" LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_firebolt_error(exc, self.settings, model)


# ---------------------------------------------------------------------------------------------- error mapping

# (SQLSTATE, words of the description), by what they mean for a sync; the code is checked first.
_SYNTAX = ("42601", "syntax error")
_NO_RELATION = ("42P01", "does not exist")
_NO_COLUMN = ("42703", "column")
_DENIED = ("42501", "permission denied")
_TIMEOUT = ("57014", "statement timeout")
_GRANT = (
    "GRANT USAGE ON DATABASE {database} TO <role>; GRANT USAGE ON SCHEMA public TO <role>; "
    "GRANT SELECT ON TABLE <table> TO <role>; GRANT USAGE ON ENGINE {engine} TO <role>, "
    "the role granted to the service account's user"
)


def map_firebolt_error(
    exc: BaseException, settings: FireboltSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a Firebolt SDK (or its HTTP client's) error into the error tree (None for others).

    The one place that decides transient vs permanent for Firebolt:

    * cannot reach the API, the identity service or the engine (refused, unknown host, timeout, connection
      lost), a 5xx answer -> SourceConnectionError (transient);
    * the identity service refused the client id or secret -> SourceAuthError;
    * the account unknown, or the database or the engine unknown (or not granted) -> SourceConnectionError
      marked permanent, naming the setting;
    * permission denied -> SourceAuthError naming the grants;
    * the statement timeout reached -> SourceError marked permanent, naming query_timeout_seconds;
    * a syntax error, an unknown table or column, anything else the engine says about the model's SQL ->
      ModelError with Firebolt's text.

    An error's SQLSTATE (its ``code``) decides where it has one; else the words of its description.
    """
    where = f"Firebolt account {settings.account_name!r}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    mapped: SourceError
    if isinstance(exc, fb.AuthorizationError | fb.AuthenticationError):
        message = f"{where} refused service account {settings.client_id!r} (check client_id and client_secret): {exc}"
        mapped = SourceAuthError(message)
    elif isinstance(exc, fb.AccountNotFoundOrNoAccessError | fb.AccountNotFoundError):
        mapped = source_error(SourceConnectionError, f"{one_line(str(exc))} (check account_name)", transient=False)
    elif isinstance(exc, fb.FireboltStructuredError):
        mapped = _structured(exc, settings, subject, where)
    elif (isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500) or isinstance(
        exc, fb.OperationalError | fb.InterfaceError
    ):
        mapped = source_error(SourceError, f"{where} failed temporarily: {one_line(str(exc))}", transient=True)
    elif isinstance(exc, httpx.TransportError):
        mapped = SourceConnectionError(f"cannot reach {where} through {settings.api_endpoint}: {one_line(str(exc))}")
    elif isinstance(exc, fb.FireboltError | httpx.HTTPError):
        mapped = _described(one_line(str(exc)), None, settings, subject, where)
    else:
        return None
    return scrub_secrets(mapped, settings)


def _structured(exc: fb.FireboltStructuredError, settings: FireboltSettings, subject: str, where: str) -> SourceError:
    first = exc.errors[0] if exc.errors else {}
    code = str(first.get("code") or "")
    return _described(one_line(str(exc)), code, settings, subject, where)


def _described(text: str, code: str | None, settings: FireboltSettings, subject: str, where: str) -> SourceError:
    lowered = text.lower()

    def means(kind: tuple[str, str]) -> bool:
        return code == kind[0] or (not code and kind[1] in lowered)

    if "does not exist or not authorized" in lowered and subject == "the query":
        setting = "engine_name" if "engine" in lowered else "database"
        message = f"{where}: {text} (check {setting}: {getattr(settings, setting)!r})"
        return source_error(SourceConnectionError, message, transient=False)
    if means(_DENIED):
        grants = _GRANT.format(database=settings.database, engine=settings.engine_name)
        return SourceAuthError(f"{where} denied {subject}: {text}; fix: {grants}")
    if means(_TIMEOUT):
        timeout = settings.query_timeout_seconds
        message = f"{subject} ran longer than query_timeout_seconds ({timeout}): {text}; raise it or make it faster"
        return source_error(SourceError, message, transient=False)
    if means(_SYNTAX):
        return ModelError(f"{subject} has a syntax error: {text}")
    if means(_NO_RELATION) or means(_NO_COLUMN) or subject != "the query":
        return ModelError(f"{subject} cannot be read: {text}")
    return SourceError(f"{where} failed: {text}")


__all__ = ["FireboltSettings", "FireboltSource", "chunk_batch", "map_firebolt_error", "plan_column"]
