"""DuckDB connector: a DuckDB database file opened ``read_only=True``, streamed as Arrow record batches.

DuckDB 2.0 streams a relation with ``con.sql(query).to_arrow_reader(batch_rows)`` (the 1.x
``execute(...).fetch_record_batch`` is gone from connections; the DB-API result path copies every row once more).
Sessions use TimeZone UTC so timestamptz columns come out as ``timestamp[us, tz=UTC]`` whatever the host's
zone, like PostgreSQL's, and never auto-install extensions (no network access at read time).

One connection per call, closed when it ends: a read-only DuckDB connection holds a shared lock on the file
that keeps writers out while it is open.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import Field

from smartingest.config.models import ModelConfig, Strict
from smartingest.errors import ModelError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    Normaliser,
    close_quietly,
    query_timeout_error,
    rebatch,
    source_error,
    translate_errors,
)
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector

_SESSION_CONFIG: dict[str, str | bool] = {"TimeZone": "UTC", "autoinstall_known_extensions": False}

# DuckDB exception classes whose cause is the model's SQL or its data.
_MODEL_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.CatalogException,
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
    duckdb.TypeMismatchException,
    duckdb.NotImplementedException,
    duckdb.ConstraintException,
    duckdb.PermissionException,
    duckdb.DataError,
    duckdb.ProgrammingError,
)
# Errors met while streaming come through Arrow as OSError with DuckDB's "<Kind> Error: ..." text.
_KIND = re.compile(r"^\s*([A-Za-z ]+?) Error:")
_MODEL_KINDS = frozenset(
    {"Catalog", "Parser", "Binder", "Conversion", "Invalid Input", "Out of Range", "Type Mismatch", "Not implemented"}
    | {"Constraint", "Permission", "Syntax", "Invalid type"}
)
_TRANSIENT_KINDS = frozenset({"Out of Memory", "INTERRUPT", "Interrupt"})
# IO errors that retrying cannot fix: the file exists but is not a DuckDB database.
_PERMANENT_IO = re.compile(r"not a valid DuckDB database|Extension .* not found|Failed to download extension", re.I)


class DuckDBSettings(Strict):
    """Settings of a DuckDB source (the keys of ``sources.NAME`` besides type and engine)."""

    path: str = Field(description="Path of the DuckDB database file (must exist; opened read-only).")
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a call whose queries run longer than this (no limit when unset)."
    )


class DuckDBSource(SqlConnector[DuckDBSettings, duckdb.DuckDBPyConnection]):
    """A DuckDB database file; see the module docstring."""

    Settings = DuckDBSettings
    DIALECT = "duckdb"

    def __repr__(self) -> str:
        return f"DuckDBSource(path={self.settings.path!r})"

    @property
    def path(self) -> Path:
        """The database file (``~`` expanded; relative paths are relative to the working directory)."""
        return Path(self.settings.path).expanduser()

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.path
        if not path.is_file():
            what = "is a directory, not" if path.is_dir() else "does not exist; expected"
            # DuckDB would say the same in read-only mode; checking first gives a clearer message.
            raise source_error(
                SourceConnectionError, f"DuckDB path {str(path)!r} {what} a database file", transient=not path.is_dir()
            )
        with translate_errors(self._translate):
            conn = duckdb.connect(str(path), read_only=read_only, config=dict(_SESSION_CONFIG))
            # DuckDB draws a progress bar on stdout for long queries, which would corrupt `--json` output.
            conn.execute("SET enable_progress_bar = false")
        timeout = self.settings.query_timeout_seconds
        # DuckDB has no statement timeout: a timer interrupts the connection once the call's time is up.
        timer = threading.Timer(timeout, conn.interrupt) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            yield conn
        finally:
            if timer is not None:
                timer.cancel()
            close_quietly(conn.close)

    def _stream(self, conn: duckdb.DuckDBPyConnection, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            relation = conn.sql(query)
            if relation is None:  # a statement that returns no rows (SET, ATTACH, ...) ran instead of a query
                raise ModelError(f"model {describe_model(model)} is not a query that returns rows")
            reader = relation.to_arrow_reader(batch_rows)
        normalise = Normaliser(reader.schema)
        batches = rebatch((normalise(b) for b in reader), batch_rows)
        return BatchStream(normalise.schema, batches, translate, on_close=reader.close)

    def _planner_session(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._session(read_only=False)

    def _execute(self, conn: duckdb.DuckDBPyConnection, sql: str) -> None:
        conn.execute(sql)

    def _load(self, conn: duckdb.DuckDBPyConnection, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        conn.register("smartingest_load", data)
        try:
            conn.execute(f"CREATE TABLE {self.quote(schema)}.{self.quote(table)} AS SELECT * FROM smartingest_load")
        finally:
            conn.unregister("smartingest_load")

    def _rows(self, conn: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
        return conn.sql(query).fetchall()

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT CASE WHEN table_schema = 'main' THEN table_name ELSE table_schema || '.' || table_name END "
            "FROM information_schema.tables WHERE table_schema NOT IN ('information_schema', 'pg_catalog') "
            f"ORDER BY 1 LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_duckdb_error(exc, self.path, model, self.settings.query_timeout_seconds)


def map_duckdb_error(
    exc: BaseException, path: Path, model: ModelConfig | None = None, query_timeout: float | None = None
) -> SourceError | None:
    """Translate a DuckDB error into the error tree (None for exceptions that are not the driver's).

    The one place that decides transient vs permanent for DuckDB:

    * IOException: missing or locked file (a writer holds it) -> SourceConnectionError (transient); a file
      that is not a DuckDB database -> SourceConnectionError marked permanent;
    * Catalog/Parser/Binder/Conversion/InvalidInput... (missing table, bad SQL, a write attempted on the
      read-only file, bad data) -> ModelError with DuckDB's message;
    * interrupted with ``query_timeout`` set (only the timeout's timer interrupts) -> the query timeout's
      permanent SourceError;
    * out of memory, interrupted -> SourceError marked transient.

    Errors raised while streaming arrive as OSError/ArrowInvalid carrying "<Kind> Error: ..." text; the kind
    is classified the same way.
    """
    where = f"DuckDB file {str(path)!r}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    detail = str(exc).strip()
    if isinstance(exc, duckdb.IOException):
        if _PERMANENT_IO.search(detail):
            return source_error(
                SourceConnectionError, f"{where} is not a usable DuckDB database: {detail}", transient=False
            )
        return SourceConnectionError(f"cannot open {where}: {detail}")
    interrupted = isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, OSError | pa.ArrowException) and "INTERRUPT" in detail.upper()
    )
    if interrupted and query_timeout is not None:
        return query_timeout_error(subject, query_timeout, detail)
    if isinstance(exc, duckdb.OutOfMemoryException | duckdb.InterruptException):
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    if isinstance(exc, _MODEL_ERRORS):
        return ModelError(f"{subject} cannot be read: {detail}")
    if isinstance(exc, duckdb.Error):
        return SourceError(f"{where} failed: {detail}")
    if isinstance(exc, OSError | pa.ArrowException):
        match = _KIND.match(detail)
        kind = match[1] if match else None
        if kind in _MODEL_KINDS:
            return ModelError(f"{subject} cannot be read: {detail}")
        if kind in _TRANSIENT_KINDS:
            return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
        if kind == "IO":
            return SourceConnectionError(f"cannot read {where}: {detail}")
        return SourceError(f"{where} failed: {detail}")
    return None


__all__ = ["DuckDBSettings", "DuckDBSource", "map_duckdb_error"]
