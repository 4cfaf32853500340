"""Row outcomes stored in bulk: Parquet files in the state directory, written a batch at a time and read
with DuckDB.

A run's outcomes are parts, ``<root>/<sync id>/<run id>/part-NNNNNN.parquet``, each written whole (a temporary
file, then a rename) when the run flushes (every 50,000 rows, before each checkpoint, at its end): a reader never sees a
half-written part, and a run killed midway keeps every part it finished, so its counts can still be
settled from them. Outcomes keep the order they were settled in (part, then row within the part).

Why not rows in the metadata database: one INSERT per row cost more than everything else a first run
does, and a million-row run left 47 MB in it. Compressed columns take a few bytes per row, and DuckDB
pages and filters them as fast as an index would.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from smartingest.cdc.hashing import literal
from smartingest.errors import StateError

SCHEMA = pa.schema(
    [
        ("primary_key", pa.string()),
        ("operation", pa.string()),  # added | changed | removed | invalid
        ("status", pa.string()),  # a RowStatus
        ("reason", pa.string()),
        ("reason_code", pa.string()),  # a ReasonCode
    ]
)
PART_GLOB = "part-*.parquet"
_FEW_VALUES = ["operation", "status", "reason", "reason_code"]  # dictionary-encoded; keys are mostly unique


@dataclass(frozen=True)
class RowOutcome:
    """One row's fate in a run."""

    pk: str | None
    operation: str  # added | changed | removed | invalid
    status: str  # a RowStatus
    reason: str | None = None
    code: str | None = None  # a ReasonCode: groups outcomes (invalid_email, type_mismatch, daily_cap...)


@dataclass(frozen=True)
class OutcomeFilter:
    """Which outcomes of a run to read: every given criterion must hold."""

    status: str | None = None
    operation: str | None = None
    reason_code: str | None = None
    primary_key: str | None = None  # the key's text exactly (a composite key: its JSON array)

    def where(self) -> tuple[str, list[str]]:
        """A WHERE clause with its parameters."""
        given = [
            (column, value)
            for column, value in (
                ("status", self.status),
                ("operation", self.operation),
                ("reason_code", self.reason_code),
                ("primary_key", self.primary_key),
            )
            if value is not None
        ]
        return " AND ".join(f"{column} = ?" for column, _ in given) or "true", [value for _, value in given]


def outcome_table(outcomes: Sequence[RowOutcome]) -> pa.Table:
    """Row outcomes as a table of SCHEMA."""
    return pa.table(
        [
            [o.pk for o in outcomes],
            [o.operation for o in outcomes],
            [str(o.status) for o in outcomes],
            [o.reason for o in outcomes],
            [None if o.code is None else str(o.code) for o in outcomes],
        ],
        schema=SCHEMA,
    )


class OutcomeFiles:
    """The row outcomes of every run under one directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, sync_id: str, run_id: int) -> Path:
        return self.root / sync_id / str(run_id)

    def parts(self, sync_id: str, run_id: int) -> list[Path]:
        return sorted(self.run_dir(sync_id, run_id).glob(PART_GLOB))

    def write(self, sync_id: str, run_id: int, table: pa.Table) -> None:
        """Add one part to a run's outcomes (``table`` has SCHEMA's columns)."""
        if table.num_rows == 0:
            return
        directory = self.run_dir(sync_id, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        existing = self.parts(sync_id, run_id)
        number = int(existing[-1].stem.removeprefix("part-")) + 1 if existing else 1
        path = directory / f"part-{number:06d}.parquet"
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table.select(SCHEMA.names).cast(SCHEMA), tmp, compression="zstd", use_dictionary=_FEW_VALUES)
        os.replace(tmp, path)

    def delete(self, sync_id: str, run_ids: Iterable[int]) -> None:
        for run_id in run_ids:
            shutil.rmtree(self.run_dir(sync_id, run_id), ignore_errors=True)

    def size(self, sync_id: str, run_id: int) -> int:
        """Bytes a run's outcomes take on disk."""
        return sum(part.stat().st_size for part in self.parts(sync_id, run_id))

    # -- reading ------------------------------------------------------------------------------

    def tally(self, sync_id: str, run_id: int) -> dict[str, int]:
        """A run's outcomes counted by status."""
        rows = self._query(sync_id, run_id, "SELECT status, count(*) FROM {parts} GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    def count(self, sync_id: str, run_id: int, where: OutcomeFilter | None = None) -> int:
        """How many of a run's outcomes ``where`` selects."""
        clause, params = (where or OutcomeFilter()).where()
        rows = self._query(sync_id, run_id, f"SELECT count(*) FROM {{parts}} WHERE {clause}", params)
        return int(rows[0][0]) if rows else 0

    def read(
        self, sync_id: str, run_id: int, where: OutcomeFilter | None = None, limit: int = 100, offset: int = 0
    ) -> list[RowOutcome]:
        """A page of a run's outcomes in the order they were settled."""
        clause, params = (where or OutcomeFilter()).where()
        rows = self._query(
            sync_id,
            run_id,
            # No ORDER BY: DuckDB keeps the scan's order (parts as listed, rows as written), which is the
            # settling order; sorting a million outcomes to page through them would cost more than the page.
            "SELECT primary_key, operation, status, reason, reason_code FROM {parts} "
            f"WHERE {clause} LIMIT {int(limit)} OFFSET {int(offset)}",
            params,
        )
        return [RowOutcome(*row) for row in rows]

    def _query(self, sync_id: str, run_id: int, sql: str, params: Sequence[str] = ()) -> list[tuple]:
        parts = self.parts(sync_id, run_id)
        if not parts:
            return []
        files = "[" + ", ".join(literal(str(p)) for p in parts) + "]"
        source = f"read_parquet({files})"
        try:
            with _reader() as con:
                return con.execute(sql.format(parts=source), list(params)).fetchall()
        except duckdb.Error as exc:  # a part damaged or removed by hand: say which run, not a traceback
            directory = self.run_dir(sync_id, run_id)
            raise StateError(f"the row outcomes of run {run_id} in {directory} cannot be read: {exc}") from exc


_shared: tuple[int, duckdb.DuckDBPyConnection] | None = None
_shared_lock = threading.Lock()


def _reader() -> duckdb.DuckDBPyConnection:
    """A cursor on this process's one in-memory DuckDB database (close it after use).

    Opening a database costs about 15 ms, several times a page of outcomes, and a run's page reads three
    (the rows, their count, the tally); a cursor costs nothing and is safe to use in its own thread. A
    forked child (a worker) makes its own: a database is not carried over a fork.
    """
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            _shared = (os.getpid(), duckdb.connect(config={"threads": 1, "preserve_insertion_order": True}))
        cursor = _shared[1].cursor()
    cursor.execute("SET enable_progress_bar = false")  # it would draw on stdout, which --json owns
    return cursor
