"""The SQL family of connectors: what every connector that reads models through a SQL database shares.

A connector of the family provides its driver's parts: a session (opened read-only where the database
allows it), the stream of a query's Arrow batches, the query that lists its tables, and its one error
translation; a small query's rows come through a DB-API cursor unless it says otherwise, and a database that
stores unquoted names in upper case says so (``NAMES``). It inherits the rest, the same for every database:

* ``read`` streams the model and checks its primary key before the first batch; the session closes with
  the call, also after an error or an early exit;
* ``schema`` runs the model with no rows, ``preview`` with its first rows, each in the dialect's own
  syntax (``LIMIT``, ``TOP``, ``FETCH FIRST``): sqlglot writes the wrapper, the model's SQL stays as the
  user wrote it, so SQL that sqlglot cannot parse still runs;
* a model's SQL that would write (INSERT, DELETE, CREATE... anywhere in it) or holds several statements
  is refused before it reaches a database that has no read-only session to refuse it;
* table names are quoted the dialect's way;
* ``planner`` opens the read-write session the Lightning engine plans in, where the connector provides one
  (``_planner_session``, and ``_load`` for a table of Arrow rows).

sqlglot is imported when a connector first needs it: the command line starts without it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa

from smartingest.config.models import ModelConfig, Strict
from smartingest.errors import ConfigError, ModelError, SourceError
from smartingest.sources._common import BatchStream, close_quietly, translate_errors
from smartingest.sources.base import DEFAULT_BATCH_ROWS, MAX_TABLES, PREVIEW_ROWS, check_primary_key, describe_model
from smartingest.sources.names import UpperCaseNames

Conn = TypeVar("Conn")
SettingsT = TypeVar("SettingsT", bound=Strict)

_PLACEHOLDER = "smartingest_model_"  # where the model's SQL goes in a wrapper sqlglot wrote


def limited(query: str, limit: int, dialect: str) -> str:
    """``query``'s first ``limit`` rows, in the dialect's syntax; the query itself is left as written (a
    newline ends it, so a trailing ``-- comment`` cannot swallow the wrapper's closing parenthesis)."""
    return _limit_template(int(limit), dialect).replace(_PLACEHOLDER, f"(\n{query}\n) m", 1)


@cache
def _limit_template(limit: int, dialect: str) -> str:
    import sqlglot

    return sqlglot.select("*").from_(_PLACEHOLDER).limit(limit).sql(dialect=dialect)


@cache
def quote_identifier(identifier: str, dialect: str) -> str:
    """An identifier quoted the dialect's way ("x", `x`, [x]), its quote characters escaped."""
    from sqlglot import exp

    return exp.to_identifier(identifier, quoted=True).sql(dialect=dialect)


def loaded_type(arrow: pa.DataType, dialect: str) -> str:
    """The column type, in the dialect's words, of a table the Lightning engine loads from Arrow values of
    ``arrow`` (keys in the model's types, hashes, identifiers, flags)."""
    return _loaded_type_name(_generic_type(arrow), dialect)


def _generic_type(arrow: pa.DataType) -> str:
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_uint64(arrow):
        return "DECIMAL(20, 0)"
    if pa.types.is_integer(arrow):
        return "BIGINT"
    if pa.types.is_floating(arrow):
        return "DOUBLE"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({min(arrow.precision, 38)}, {min(arrow.scale, 37)})"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMPTZ" if arrow.tz else "TIMESTAMP"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "VARBINARY"
    return "TEXT"


def loading_statements(
    connector: SqlConnector[Any, Any], schema: str, table: str, data: pa.RecordBatchReader, rows_per_insert: int
) -> Iterator[str]:
    """The statements that load ``data`` into a new table ``schema.table``, for databases that take rows only
    as a statement's text: CREATE TABLE, then multi-row INSERTs of literals, ``rows_per_insert`` rows each."""
    qualified = f"{connector.quote(schema)}.{connector.quote(table)}"
    fields = list(data.schema)
    dialect = connector.DIALECT
    declared = ", ".join(f"{connector.quote(f.name)} {loaded_type(f.type, dialect)}" for f in fields)
    yield f"CREATE TABLE {qualified} ({declared})"
    names = ", ".join(connector.quote(f.name) for f in fields)
    for batch in data:
        for start in range(0, batch.num_rows, rows_per_insert):
            part = batch.slice(start, rows_per_insert)
            rows = zip(*(column.to_pylist() for column in part.columns), strict=True)
            values = ", ".join("(" + ", ".join(sql_literal(v, dialect) for v in row) + ")" for row in rows)
            yield f"INSERT INTO {qualified} ({names}) VALUES {values}"


def sql_literal(value: Any, dialect: str) -> str:
    """A Python value (as Arrow's ``to_pylist`` gives it) as a literal of the dialect's SQL, for the loads of
    databases that take rows only as statements' text."""
    import datetime as dt
    from decimal import Decimal

    from sqlglot import exp

    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):  # NaN and the infinities only as a cast of their text
        finite = value == value and abs(value) != float("inf")
        return repr(value) if finite else exp.cast(exp.Literal.string(str(value)), "DOUBLE").sql(dialect=dialect)
    if isinstance(value, dt.datetime):  # an instant as its UTC wall time (the sessions run in UTC)
        text = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value
        return f"CAST({exp.Literal.string(text.isoformat(sep=' ')).sql(dialect=dialect)} AS TIMESTAMP)"
    if isinstance(value, dt.date):
        return f"CAST({exp.Literal.string(value.isoformat()).sql(dialect=dialect)} AS DATE)"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    return exp.Literal.string(str(value)).sql(dialect=dialect)


@cache
def _loaded_type_name(generic: str, dialect: str) -> str:
    from sqlglot import exp

    return exp.DataType.build(generic).sql(dialect=dialect)


def refuse_writes(sql: str, dialect: str, model: ModelConfig) -> None:
    """Raise ModelError when a model's SQL holds several statements or would write. SQL that sqlglot
    cannot parse passes: the database judges it (and a read-only session refuses a write)."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, dialect=dialect) if s is not None]
    except sqlglot.errors.SqlglotError:
        return
    if len(statements) > 1:
        raise ModelError(f"model {describe_model(model)} holds {len(statements)} statements: a model is one query")
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
    for statement in statements:
        found = statement if isinstance(statement, writes) else statement.find(*writes)
        if found is not None:
            verb = found.key.upper().replace("TRUNCATETABLE", "TRUNCATE")
            raise ModelError(
                f"model {describe_model(model)} would write ({verb}): sources are only read, so a model is a query"
            )


class SqlConnector(ABC, Generic[SettingsT, Conn]):
    """A source read through a SQL database; see the module docstring for what a connector provides."""

    Settings: ClassVar[type[Strict]]
    DIALECT: ClassVar[str]  # sqlglot's name of the database's SQL
    PING: ClassVar[str] = "SELECT 1"  # the trivial query a connection test runs
    # Set for a database that stores unquoted names in upper case: names are shown in lower case and
    # resolved back when SQL is written (see sources/names.py).
    NAMES: ClassVar[UpperCaseNames | None] = None

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    def dialect(self) -> str:
        """The SQL dialect's name (sqlglot's), for SQL written for this source."""
        return self.DIALECT

    def quote(self, identifier: str) -> str:
        """An identifier quoted the dialect's way (as the database stores it, where it folds names)."""
        if self.NAMES is not None:
            identifier = self.NAMES.resolved(identifier)
        return quote_identifier(identifier, self.DIALECT)

    # ------------------------------------------------------------------------------------------------ public API

    def test_connection(self) -> None:
        """Connect and run a trivial query; SourceConnectionError or SourceAuthError when that fails."""
        with self._session() as conn, translate_errors(self._translate):
            self._rows(conn, self.PING)

    @contextlib.contextmanager
    def read(self, model: ModelConfig, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[BatchStream]:
        """Stream the model as record batches of at most ``batch_rows`` rows; an empty model yields none."""
        query = self.model_sql(model)
        with self._session() as conn:
            stream = self._stream(conn, query, model, max(int(batch_rows), 1))
            try:
                check_primary_key(stream.schema, model)
                yield stream
            finally:
                stream.close()

    def schema(self, model: ModelConfig) -> pa.Schema:
        """The model's columns and types as ``read`` gives them (the model run for no rows)."""
        query = self._limited(self.model_sql(model), 0)
        with self._session() as conn:
            stream = self._stream(conn, query, model, 1)
            stream.close()
            return stream.schema

    def preview(self, model: ModelConfig, limit: int = PREVIEW_ROWS) -> pa.Table:
        """The model's first ``limit`` rows, typed as ``read`` types them."""
        query = self._limited(self.model_sql(model), limit)
        with self._session() as conn:
            stream = self._stream(conn, query, model, max(int(limit), 1))
            try:
                return pa.Table.from_batches(list(stream), schema=stream.schema)
            finally:
                stream.close()

    def tables(self, limit: int = MAX_TABLES) -> list[str]:
        """The tables and views a model could read, sorted, at most ``limit``; system schemas left out."""
        with self._session() as conn, translate_errors(self._translate):
            listed = [str(row[0]) for row in self._rows(conn, self._tables_sql(int(limit)))]
        if self.NAMES is None:
            return listed
        return sorted(self.NAMES.shown_qualified(name) for name in listed)

    def model_sql(self, model: ModelConfig) -> str:
        """The query that reads a model: its SQL (refused when it would write), or every column of its table."""
        if model.sql is not None:
            sql = model.sql.strip().rstrip(";")
            refuse_writes(sql, self.DIALECT, model)
            return sql
        return f"SELECT * FROM {self.table_sql(model)}"

    def table_sql(self, model: ModelConfig) -> str:
        return ".".join(self.quote(part) for part in (model.table or "").split("."))

    def _limited(self, query: str, limit: int) -> str:
        """``query``'s first ``limit`` rows (none: only its columns) in this database's SQL; sqlglot's
        wrapper unless the database needs another (Teradata refuses ``TOP 0``)."""
        return limited(query, limit, self.DIALECT)

    @contextlib.contextmanager
    def planner(self) -> Iterator[SqlPlanner[Conn]]:
        """A read-write session for the Lightning engine (see sources.base.Planner), closed on exit."""
        with self._planner_session() as conn:
            yield SqlPlanner(self, conn)

    # ------------------------------------------------------------------------------------------ the driver's parts

    @abstractmethod
    def _session(self) -> AbstractContextManager[Conn]:
        """A connection for one call, read-only where the database allows it, closed on exit."""

    @abstractmethod
    def _stream(self, conn: Conn, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        """Start ``query`` (the model's, or a limited form of it) and return its normalised batches."""

    def _rows(self, conn: Conn, query: str) -> list[tuple[Any, ...]]:
        """The rows of a small query (a connection test, the table list): through a DB-API cursor, unless the
        connector's driver has another way."""
        cursor = conn.cursor()  # type: ignore[attr-defined]
        try:
            cursor.execute(query)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            close_quietly(cursor.close)

    def _planner_session(self) -> AbstractContextManager[Conn]:
        """A read-write connection for the Lightning engine (same settings as ``_session`` otherwise)."""
        name = type(self).__name__.removesuffix("Source")
        raise ConfigError(f"the Lightning engine does not run on {name} sources yet: set the source's engine to basic")

    def _execute(self, conn: Conn, sql: str) -> None:
        """Run one statement that returns no rows."""
        cursor = conn.cursor()  # type: ignore[attr-defined]
        try:
            cursor.execute(sql)
        finally:
            close_quietly(cursor.close)

    def _schema_exists(self, conn: Conn, name: str) -> bool | None:
        """Whether a schema exists, asked of the database's API (None: the Lightning engine asks in SQL)."""
        return None

    def _create_schema(self, quoted: str) -> str | None:
        """The statement creating the Lightning engine's schema, where settings of the source shape it."""
        return None

    def _load(self, conn: Conn, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        """Create table ``schema.table`` (names as written) with ``data``'s columns and rows."""
        raise ConfigError(
            f"the Lightning engine cannot write to {type(self).__name__.removesuffix('Source')} sources yet"
        )

    @abstractmethod
    def _tables_sql(self, limit: int) -> str:
        """One column of table names (``schema.name``, or the bare name where there is one namespace)."""

    @abstractmethod
    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        """The driver's error as one of the error tree's (None for an exception that is not the driver's)."""


class SqlPlanner(Generic[Conn]):
    """A read-write session on a SqlConnector's database (sources.base.Planner), for the Lightning engine."""

    def __init__(self, connector: SqlConnector[Any, Conn], conn: Conn) -> None:
        self.connector = connector
        self.conn = conn
        self.dialect = connector.DIALECT

    def quote(self, identifier: str) -> str:
        return self.connector.quote(identifier)

    def stored(self, name: str) -> str:
        names = self.connector.NAMES
        return names.resolved(name) if names is not None else name

    def shown(self, name: str) -> str:
        names = self.connector.NAMES
        return names.shown(name) if names is not None else name

    def execute(self, sql: str) -> None:
        with translate_errors(self.connector._translate):
            self.connector._execute(self.conn, sql)

    def schema_exists(self, name: str) -> bool | None:
        with translate_errors(self.connector._translate):
            return self.connector._schema_exists(self.conn, name)

    def create_schema(self, quoted: str) -> str | None:
        return self.connector._create_schema(quoted)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with translate_errors(self.connector._translate):
            return self.connector._rows(self.conn, sql)

    def stream(self, sql: str, model: ModelConfig, batch_rows: int = DEFAULT_BATCH_ROWS) -> BatchStream:
        return self.connector._stream(self.conn, sql, model, max(int(batch_rows), 1))

    def load(self, schema: str, table: str, data: pa.Table | pa.RecordBatchReader) -> None:
        qualified = f"{self.quote(schema)}.{self.quote(table)}"
        reader = data.to_reader() if isinstance(data, pa.Table) else data
        with translate_errors(self.connector._translate):
            self.connector._execute(self.conn, f"DROP TABLE IF EXISTS {qualified}")
            self.connector._load(self.conn, schema, table, reader)
