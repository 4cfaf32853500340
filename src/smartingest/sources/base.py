"""The Source seam: what every connector provides, as small Protocols.

A source knows nothing of Iterable, CDC or mappings: it turns a model (table, view or SQL query)
into a stream of Arrow record batches, and translates its driver's errors into the error tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError
from smartingest.sources._common import BatchStream

DEFAULT_BATCH_ROWS = 65_536
PREVIEW_ROWS = 100


MAX_TABLES = 2000  # a table picker lists this many at most


@runtime_checkable
class Source(Protocol):
    """A connection to one data source.

    Implementations open their driver lazily (constructing a Source never connects) and raise only
    errors of ``smartingest.errors.SourceError``'s subtree.
    """

    def test_connection(self) -> None:
        """Connect and run a trivial query; raise SourceConnectionError or SourceAuthError on failure."""
        ...

    def read(
        self, model: ModelConfig, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> AbstractContextManager[Iterator[pa.RecordBatch]]:
        """Stream every row of the model as record batches of at most about ``batch_rows`` rows.

        Memory stays bounded whatever the model's size (server-side cursor or COPY stream). Column
        types are normalised to plain Arrow types (no extension types). Raises ModelError for bad SQL
        or a missing table, SourceConnectionError/SourceAuthError when the source cannot be used.
        """
        ...

    def schema(self, model: ModelConfig) -> pa.Schema:
        """Column names and Arrow types of the model, without reading its rows."""
        ...

    def preview(self, model: ModelConfig, limit: int = PREVIEW_ROWS) -> pa.Table:
        """The first ``limit`` rows of the model."""
        ...

    def tables(self, limit: int = MAX_TABLES) -> list[str]:
        """The tables and views a model could read (``schema.name``, or the bare name where the source has
        one namespace), sorted, at most ``limit``; system catalogs left out."""
        ...


class Planner(Protocol):
    """A read-write session on a SQL source, for the Lightning engine's own schema in it.

    It runs the SQL the engine writes; a model's own SQL only ever appears in it as a subquery of a
    SELECT. Errors are the connector's, translated as ``read`` translates them (a missing privilege is a
    SourceAuthError).
    """

    dialect: str

    def quote(self, identifier: str) -> str:
        """An identifier quoted the dialect's way, as the database stores it (a name written in lower case is
        stored in upper case where the database folds unquoted names so: sources/names.py)."""
        ...

    def stored(self, name: str) -> str:
        """A name as the database stores it (what its catalog's tables list), as ``quote`` resolves it."""
        ...

    def shown(self, name: str) -> str:
        """A name the catalog lists, as results and models name it (the converse of ``stored``)."""
        ...

    def execute(self, sql: str) -> None:
        """Run one statement that returns no rows."""
        ...

    def schema_exists(self, name: str) -> bool | None:
        """Whether the schema (its name as stored) exists, where the connector asks its API rather than SQL
        (None: ask the database's catalog in SQL)."""
        ...

    def create_schema(self, quoted: str) -> str | None:
        """The statement creating a schema, where the connector words it (None: the database's own words)."""
        ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a small query."""
        ...

    def stream(self, sql: str, model: ModelConfig, batch_rows: int = DEFAULT_BATCH_ROWS) -> BatchStream:
        """A query's rows as Arrow batches typed as ``read`` types the model's (errors name ``model``)."""
        ...

    def load(self, schema: str, table: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Replace table ``schema.table`` with ``data`` (created with the columns' Arrow types), streamed."""
        ...


@runtime_checkable
class SqlSource(Source, Protocol):
    """A source that can run SQL the engine writes (the Lightning engine's planner needs it)."""

    def dialect(self) -> str:
        """sqlglot's name of the source's SQL dialect (postgres, sqlite, duckdb, mysql...)."""
        ...

    def model_sql(self, model: ModelConfig) -> str:
        """The query that reads a model (its SQL, or every column of its table)."""
        ...

    def table_sql(self, model: ModelConfig) -> str:
        """A model's table (one defined by its table) as this database's SQL names it, quoted."""
        ...

    def planner(self) -> AbstractContextManager[Planner]:
        """A read-write session for the Lightning engine; ConfigError where this connector has none."""
        ...


def quote_double(identifier: str) -> str:
    """Quote an identifier the SQL-standard way ("name", with embedded quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


def describe_model(model: ModelConfig) -> str:
    """A short human name for a model in messages: ``table "public.users"`` or ``query "SELECT id, ..."``."""
    if model.table is not None:
        return f'table "{model.table}"'
    text = " ".join((model.sql or "").split())
    return f'query "{text[:60]}..."' if len(text) > 60 else f'query "{text}"'


def check_primary_key(schema: pa.Schema, model: ModelConfig) -> None:
    """Raise ModelError unless every primary-key column is one of the result's columns.

    Connectors call this in ``read`` before yielding any batch, so a typo in ``primary_key`` fails
    before a sync starts rather than after rows were diffed.
    """
    for column in model.key_columns:
        if column not in schema.names:
            raise ModelError(
                f"model {describe_model(model)} has no column {column!r} (columns: {', '.join(schema.names)})"
            )
