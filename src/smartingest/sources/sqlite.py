"""SQLite connector: the stdlib ``sqlite3`` module, ``fetchmany`` into record batches with an explicit schema.

Why not ADBC's SQLite driver: it infers each column's Arrow type from the first batch and then fails the whole
read ("Type mismatch in column 0: expected INT64 but got STRING/BINARY") when a later row holds another storage
class, e.g. a column that is NULL for the first 1024 rows and text afterwards, or an untyped column that mixes
integers and text. SQLite's dynamic typing makes that common, and the only knob (batch_rows) just moves the
cliff. So the schema is decided before the first row is yielded, for the whole result:

* a column declared with an INT, CHAR/CLOB/TEXT, REAL/FLOA/DOUB or BOOL type (SQLite's affinity rules) gets
  int64, string, float64 or bool;
* any other column (no declared type, expressions, BLOB, NUMERIC/DECIMAL, DATE/DATETIME, JSON, ANY...) gets
  the type its stored values need, found by one ``typeof()`` scan of the model: integers only -> int64,
  integers and reals -> float64, any text -> string (numbers rendered as text), blobs -> binary, nothing
  but NULLs -> string.

A value that does not fit its declared type (text in an INTEGER column of a non-STRICT table) fails the read
with a ModelError naming the column; cast it in the model's SQL.

The database is opened read-only (``mode=ro`` URI), one connection per call.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
from pydantic import Field

from smartingest.config.models import ModelConfig, Strict
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import BatchStream, close_quietly, query_timeout_error, source_error, translate_errors
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector, limited

_VIEW = "smartingest_model"

# SQLite primary result codes (sqlite3 exceptions carry them as sqlite_errorcode; the low byte is primary).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOMEM, _SQLITE_READONLY = 3, 5, 6, 7, 8
_SQLITE_INTERRUPT, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 9, 10, 11, 13, 14
_SQLITE_AUTH, _SQLITE_NOTADB = 23, 26


class SqliteSettings(Strict):
    """Settings of a SQLite source (the keys of ``sources.NAME`` besides type and engine)."""

    path: str = Field(description="Path of the SQLite database file (must exist; opened read-only).")
    busy_timeout_seconds: float = Field(
        5.0, ge=0, description="How long to wait for a writer's lock before failing with 'database is locked'."
    )
    query_timeout_seconds: float | None = Field(
        None, gt=0, description="Stop a call whose queries run longer than this (no limit when unset)."
    )


class SqliteSource(SqlConnector[SqliteSettings, sqlite3.Connection]):
    """A SQLite database file, read with the stdlib driver; see the module docstring for the typing rules."""

    Settings = SqliteSettings
    DIALECT = "sqlite"
    PING = "SELECT count(*) FROM sqlite_master"  # opening a file that is not a database fails only here

    def __repr__(self) -> str:
        return f"SqliteSource(path={self.settings.path!r})"

    @property
    def path(self) -> Path:
        """The database file (``~`` expanded; relative paths are relative to the working directory)."""
        return Path(self.settings.path).expanduser()

    def schema(self, model: ModelConfig) -> pa.Schema:
        """The model's Arrow schema (scans the model once when some column has no usable declared type)."""
        query = self.model_sql(model)
        with self._session() as conn, translate_errors(lambda e: self._translate(e, model)):
            return self._schema(conn, query, model)

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        path = self.path
        if not path.is_file():
            what = "is a directory, not" if path.is_dir() else "does not exist; expected"
            raise source_error(
                SourceConnectionError, f"SQLite path {str(path)!r} {what} a database file", transient=not path.is_dir()
            )
        # mode=ro: never write, never create. quote() escapes '?', '#' and '%' that would end the path.
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        with translate_errors(self._translate):
            # check_same_thread=False: the engine may iterate the stream in a worker thread; the connection is
            # used by one call at a time only.
            conn = sqlite3.connect(uri, uri=True, timeout=self.settings.busy_timeout_seconds, check_same_thread=False)
        timeout = self.settings.query_timeout_seconds
        if timeout is not None:
            # SQLite has no statement timeout: its progress handler, called every few thousand steps of the
            # virtual machine, interrupts the statement once the call's time is up.
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            yield conn
        finally:
            close_quietly(conn.close)

    def _schema(self, conn: sqlite3.Connection, query: str, model: ModelConfig) -> pa.Schema:
        """Column names from the query, types from declared types or a typeof() scan (module docstring)."""
        # EXPLAIN compiles the model's own text without reading data, so SQLite's message about a syntax
        # error or a missing table points into the user's SQL rather than into our wrapper.
        conn.execute(f"EXPLAIN {query}\n").close()
        cur = conn.execute(limited(query, 0, self.DIALECT))
        names = [d[0] for d in cur.description or []]
        cur.close()
        if not names:
            raise ModelError(f"model {describe_model(model)} returns no columns")
        # A temporary view with positional column names gives each column's declared type (PRAGMA table_info)
        # and lets the scan address duplicate or odd names. TEMP objects live in the connection's temp
        # database, so this works on a read-only file and vanishes with the connection.
        columns = ", ".join(f"c{i}" for i in range(len(names)))
        conn.execute(f"DROP VIEW IF EXISTS temp.{_VIEW}")
        conn.execute(f"CREATE TEMP VIEW {_VIEW} ({columns}) AS {query}\n")
        declared = [row[2] or "" for row in conn.execute(f"PRAGMA temp.table_info({_VIEW})")]
        types: list[pa.DataType | None] = [_declared_type(d) for d in declared]
        undecided = [i for i, t in enumerate(types) if t is None]
        if undecided:
            scan = ", ".join(f"group_concat(DISTINCT typeof(c{i}))" for i in undecided)
            row = conn.execute(f"SELECT {scan} FROM temp.{_VIEW}").fetchone()
            for i, classes in zip(undecided, row, strict=True):
                types[i] = _type_from_storage(set((classes or "").split(",")) - {"", "null"})
        return pa.schema([pa.field(name, typ) for name, typ in zip(names, types, strict=True)])

    def _stream(self, conn: sqlite3.Connection, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        """Plan the schema on the whole model (a preview is typed as the model is), run ``query`` and batch it."""

        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        with translate_errors(translate):
            schema = self._schema(conn, self.model_sql(model), model)
            cur = conn.execute(query)

        def batches() -> Iterator[pa.RecordBatch]:
            while rows := cur.fetchmany(batch_rows):
                columns = list(zip(*rows, strict=True))
                arrays = [_to_arrow(col, field, model) for col, field in zip(columns, schema, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

        return BatchStream(schema, batches(), translate, on_close=cur.close)

    def _rows(self, conn: sqlite3.Connection, query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query).fetchall()

    def _tables_sql(self, limit: int) -> str:
        return (
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
            f"ORDER BY name LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_sqlite_error(exc, self.path, model, self.settings.query_timeout_seconds)


# ------------------------------------------------------------------------------------------------- type rules


def _declared_type(declared: str) -> pa.DataType | None:
    """Arrow type of a declared column type, following SQLite's affinity rules; None: decide from the data."""
    d = declared.upper()
    if "INT" in d:
        return pa.int64()
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return pa.string()
    if "REAL" in d or "FLOA" in d or "DOUB" in d:
        return pa.float64()
    if d.startswith("BOOL"):
        return pa.bool_()
    return None


def _type_from_storage(classes: set[str]) -> pa.DataType:
    """Arrow type that holds every storage class seen in a column (typeof(): integer, real, text, blob)."""
    if "blob" in classes:
        return pa.binary()
    if "text" in classes or not classes:
        return pa.string()
    if "real" in classes:
        return pa.float64()
    return pa.int64()


def _to_arrow(values: Sequence[object], field: pa.Field, model: ModelConfig) -> pa.Array:
    """One column of Python values as an array of the planned type; ModelError when a value does not fit.

    Arrow infers the values' own type first and then casts *safely*: pa.array([2.5], pa.int64()) would
    silently truncate to 2, a safe cast refuses. Text and blob columns accept every storage class (mixed
    columns were planned as such), converting the odd values in Python.
    """
    target = field.type
    try:
        arr = pa.array(values)
        return arr if arr.type == target else arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        if target == pa.string():
            return pa.array([_as_text(v) for v in values], pa.string())
        if target == pa.binary():
            return pa.array([_as_bytes(v) for v in values], pa.binary())
        raise _mismatch(values, field, model) from None


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


# Python types a column of each planned type naturally holds; the first other value is the one reported.
_NATURAL: dict[pa.DataType, tuple[type, ...]] = {
    pa.int64(): (int,),
    pa.float64(): (int, float),
    pa.bool_(): (int,),
    pa.string(): (str,),
    pa.binary(): (bytes,),
}


def _mismatch(values: Sequence[object], field: pa.Field, model: ModelConfig) -> ModelError:
    natural = _NATURAL.get(field.type, (object,))
    bad = next((v for v in values if v is not None and not isinstance(v, natural)), None)
    return ModelError(
        f"model {describe_model(model)}: column {field.name!r} is read as {field.type} but holds "
        f"{type(bad).__name__} value {bad!r}; cast it in the model's SQL, e.g. CAST({field.name} AS TEXT)"
    )


# ---------------------------------------------------------------------------------------------- error mapping


def map_sqlite_error(
    exc: BaseException, path: Path, model: ModelConfig | None = None, query_timeout: float | None = None
) -> SourceError | None:
    """Translate a sqlite3 error into the error tree (None for exceptions that are not the driver's).

    The one place that decides transient vs permanent for SQLite, on the primary result code:

    * CANTOPEN, IOERR, PERM -> SourceConnectionError (the file cannot be opened or read now);
    * BUSY, LOCKED -> SourceConnectionError (a writer holds the lock longer than busy_timeout_seconds);
    * NOTADB, CORRUPT -> SourceConnectionError marked permanent (the file is not a usable database);
    * INTERRUPT with ``query_timeout`` set (only the timeout's progress handler interrupts) -> the query
      timeout's permanent SourceError;
    * NOMEM, FULL, INTERRUPT -> SourceError marked transient;
    * AUTH (an authorizer refused) -> SourceAuthError;
    * READONLY -> ModelError (the model tries to write; sources are opened read-only);
    * anything else (SQLITE_ERROR: no such table/column, syntax error, ...) -> ModelError with SQLite's text.
    """
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    detail = str(exc)
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    where = f"SQLite file {str(path)!r}"
    if primary in (_SQLITE_CANTOPEN, _SQLITE_IOERR, _SQLITE_PERM):
        return SourceConnectionError(f"cannot open {where}: {detail}")
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return SourceConnectionError(f"{where} is locked by a writer: {detail}")
    if primary in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
        return source_error(
            SourceConnectionError, f"{where} is not a usable SQLite database: {detail}", transient=False
        )
    if primary == _SQLITE_INTERRUPT and query_timeout is not None:
        return query_timeout_error(subject, query_timeout, detail)
    if primary in (_SQLITE_NOMEM, _SQLITE_FULL, _SQLITE_INTERRUPT):
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    if primary == _SQLITE_AUTH:
        return SourceAuthError(f"{where} refused {subject}: {detail}")
    if primary == _SQLITE_READONLY:
        return ModelError(f"{subject} tries to write, but sources are read-only: {detail}")
    return ModelError(f"{subject} cannot be read: {detail}")


__all__ = ["SqliteSettings", "SqliteSource", "map_sqlite_error"]
