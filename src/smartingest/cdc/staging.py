"""What both CDC engines share once a run's candidates are found: the change set staged in a local DuckDB file.

An engine fills the staging database with the tables a change set is read from, then calls
``define_changes``:

* ``candidates``: the rows to send (added or changed, their key valid), each with ``__key`` (the primary
  key in its own type, a struct for a composite key), ``__hash``, ``__ident``, ``__op``, ``__same_before``
  and ``__row`` (the model's columns, packed);
* ``removed``: the snapshot's keys no model row has (``__key``, ``__pk``, ``__hash``, ``__ident``);
* ``dup_keys`` (``__key``, ``n``) and ``dup_idents`` (``__ident``, ``keys``): what made rows invalid.

From there on, reading the changes, sampling them, settling verdicts and listing the unsettled rows are
the same for both; only where the snapshot lives (and so ``checkpoint`` and ``commit``) differs.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from smartingest.cdc.base import (
    HASH,
    IDENT,
    OP,
    PK,
    SAME_BEFORE,
    ChangeCounts,
    Column,
    HashSpec,
    InvalidRow,
    as_arrow,
)
from smartingest.cdc.hashing import key_text_sql, literal, quote
from smartingest.codes import ReasonCode
from smartingest.errors import StateError

KEY = "__key"  # the primary key in its own type (a struct for a composite key)
ROW = "__row"  # the model's columns of a candidate, packed in a struct
_CHECKPOINTED = (KEY, PK, HASH, IDENT, OP)  # what a checkpoint needs of each row


def open_staging(path: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """A staging DuckDB database at ``path`` (a directory of its own, made here).

    A database file, not :memory:: DuckDB evicts a file's table pages under memory_limit, so the run's
    memory stays bounded however large the model grows (in-memory tables cannot be evicted).
    """
    path.mkdir()
    con = duckdb.connect(str(path / "staging.duckdb"))
    try:
        # No progress bar: DuckDB would draw it on stdout, into `sync run --json` output.
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = {literal(memory_limit)}")
        con.execute(f"SET threads = {int(threads)}")
        con.execute(f"SET temp_directory = {literal(str(path / 'tmp'))}")
        con.execute("SET preserve_insertion_order = false")
    except BaseException:
        con.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    return con


class StagedChangeSet:
    """A change set staged in a local DuckDB database; see the module docstring and ChangeSet."""

    # Columns of ``candidates`` an engine keeps for itself (name: DuckDB type): ``changes`` reads them for
    # each row it hands out, for the checkpoints, but does not hand them out.
    PRIVATE: ClassVar[dict[str, str]] = {}

    def __init__(self, con: duckdb.DuckDBPyConnection, staging: Path, spec: HashSpec) -> None:
        self.con = con
        self.staging = staging
        self.spec = spec
        self.counts = ChangeCounts(0, 0, 0, 0, 0, 0)
        self.new_baseline: str | None = None
        self.remapped: str | None = None
        self.added_parts: tuple[str, ...] = ()
        self.same_before = 0
        self.rows_read = 0
        self._generation = 0  # verdicts settled since the last checkpoint carry this number
        self._out: list[pa.Table] = []  # what checkpoints need of the rows changes() handed out, not yet taken
        self._out_lock = threading.Lock()  # changes() and checkpoint() run on different threads

    # -- SQL of a row's key and identifier ---------------------------------------------------------

    def _key_sql(self, alias: str) -> str:
        """The key of a row of ``alias``: its column, or a struct of its columns (null if any part is)."""
        columns = self.spec.key_columns
        if len(columns) == 1:
            return f"{alias}.{quote(columns[0])}"
        parts = ", ".join(f"{quote(c)} := {alias}.{quote(c)}" for c in columns)
        any_null = " OR ".join(f"{alias}.{quote(c)} IS NULL" for c in columns)
        return f"CASE WHEN {any_null} THEN NULL ELSE struct_pack({parts}) END"

    def _pk_text_sql(self, key: str) -> str:
        """The text form of a key, as the ledger and the snapshot store it: a JSON array for a composite key."""
        return key_text_sql(self.spec.key_columns, key)

    def _ident_sql(self, alias: str) -> str:
        """The identifier of a row of ``alias`` as the destination compares it, or NULL without one."""
        identity = self.spec.identity
        if identity is None:
            return "NULL::VARCHAR"
        text = f"CAST({alias}.{quote(identity.column)} AS VARCHAR)"
        if identity.trim:
            text = f"trim({text})"
        if identity.ignore_case:
            text = f"lower({text})"
        return f"nullif({text}, '')"

    # -- planning ---------------------------------------------------------------------------------

    def define_changes(self, queried: int, invalid: int) -> None:
        """Define ``change_keys`` and ``changes`` over the staged tables, the verdicts table, and count."""
        con = self.con
        # ``change_keys`` leaves the rows packed, for what needs only keys, hashes and operations. BY NAME
        # leaves the model's columns null for removed rows: only the key and the identifier the destination
        # knows them by are left of them.
        columns = f"{KEY}, {self._pk_text_sql(KEY)} AS {PK}, {HASH}, {IDENT}, {OP}, {SAME_BEFORE}"
        removed_rows = f"""SELECT {KEY}, {PK}, {HASH}, {IDENT}, 'removed' AS {OP}, NULL::BOOLEAN AS {SAME_BEFORE}
                           FROM removed"""
        con.execute(f"CREATE VIEW change_keys AS SELECT {columns} FROM candidates UNION ALL {removed_rows}")
        private = "".join(f", {name}" for name in self.PRIVATE)
        con.execute(
            f"""CREATE VIEW changes AS SELECT unnest({ROW}), {columns}{private} FROM candidates
                UNION ALL BY NAME {removed_rows}"""
        )
        # Each verdict carries the checkpoint it belongs to (``_generation``): a checkpoint takes the current
        # generation's and starts the next, without moving rows.
        con.execute(f"CREATE TEMP TABLE verdicts ({PK} VARCHAR, {OP} VARCHAR, commits BOOLEAN, generation INTEGER)")
        tallies = con.execute(
            f"SELECT {OP}, count(*), count(*) FILTER ({SAME_BEFORE}) FROM change_keys GROUP BY {OP}"
        ).fetchall()
        ops = {op: n for op, n, _ in tallies}
        self.same_before = sum(int(same) for _, _, same in tallies)
        added, changed, removed = (int(ops.get(op, 0)) for op in ("added", "changed", "removed"))
        self.counts = ChangeCounts(
            queried=queried,
            invalid=invalid,
            unchanged=queried - invalid - added - changed,
            added=added,
            changed=changed,
            removed=removed,
        )

    # -- reading ----------------------------------------------------------------------------------

    def _invalid_sql(self) -> str:
        """One row per invalid model row: its key's text (null for a null key), the reason, its code."""
        raise NotImplementedError

    def invalid_rows(self) -> Iterator[InvalidRow]:
        cursor = self.con.execute(self._invalid_sql())
        while rows := cursor.fetchmany(10_000):
            for pk_text, reason, code in rows:
                yield InvalidRow(pk_text, reason, ReasonCode(code))

    def _null_key_line(self) -> str:
        """The columns of the line of a row whose key is null."""
        name = ", ".join(self.spec.key_columns)
        return f"NULL AS pk, 'primary key ' || {literal(name)} || ' is null' AS reason, {literal(ReasonCode.NULL_KEY)}"

    def _duplicate_key_line(self, key: str, n: str) -> str:
        """The columns of the line of one copy of a key that ``n`` rows have."""
        name = ", ".join(self.spec.key_columns)
        pk = self._pk_text_sql(key)
        return f"""{pk}, 'primary key ' || {literal(name)} || ' = ' || {pk}
                   || ' appears ' || {n} || ' times in the model (every copy is skipped until it is unique)',
                   {literal(ReasonCode.DUPLICATE_KEY)}"""

    def _shared_identifier_line(self, key: str, ident: str, keys: str) -> str:
        """The columns of the line of a row whose identifier ``ident`` the rows of ``keys`` (a list) share."""
        identity = self.spec.identity
        field = literal(identity.field if identity else "identifier")
        compared = " (compared ignoring case)" if identity and identity.ignore_case else ""
        pk = self._pk_text_sql(key)
        return f"""{pk}, {field} || ' ''' || {ident} || '''' || {literal(compared)}
                   || ' is also the identifier of the row(s) with primary key '
                   || array_to_string(list_filter({keys}[:11], lambda x: x <> {pk})[:10], ', ')
                   || CASE WHEN len({keys}) > 11 THEN ' and ' || (len({keys}) - 11) || ' more' ELSE '' END
                   || ': rows sharing an identifier would overwrite each other in Iterable '
                   || '(every copy is skipped until it is unique)',
                   {literal(ReasonCode.SHARED_IDENTIFIER)}"""

    def changes(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # A cursor of its own: verdicts are written on the main connection while this result streams.
        with self.con.cursor() as cursor:
            for batch in cursor.sql("SELECT * FROM changes").to_arrow_reader(batch_rows):
                # What a checkpoint needs of each row is kept aside until the row is checkpointed or
                # settled otherwise, so that a checkpoint joins its verdicts with those rows only, not
                # with the whole change set.
                kept = pa.Table.from_batches([batch.select([*_CHECKPOINTED, *self.PRIVATE])])
                with self._out_lock:
                    self._out.append(kept)
                yield batch.drop_columns([KEY, *self.PRIVATE])

    def sample(self, limit: int) -> pa.Table:
        """A few added or changed rows, for plans."""
        return self.con.sql(
            f"SELECT * EXCLUDE ({', '.join([KEY, *self.PRIVATE])}) FROM changes WHERE {OP} <> 'removed' "
            f"LIMIT {int(limit)}"
        ).to_arrow_table()

    # -- verdicts ---------------------------------------------------------------------------------

    def settle(self, pks: Column[str], ops: Column[str], commit: Column[bool]) -> None:
        if not len(pks):
            return
        settled = pa.table(
            {PK: as_arrow(pks, pa.string()), OP: as_arrow(ops, pa.string()), "commits": as_arrow(commit, pa.bool_())}
        )
        self.con.register("settled", settled)
        self.con.execute(f"INSERT INTO verdicts SELECT *, {self._generation} FROM settled")
        self.con.unregister("settled")

    @contextmanager
    def _acknowledged_rows(self) -> Iterator[str]:
        """A query of the rows acknowledged since the last checkpoint (their ``__key``, ``__pk``, ``__hash``,
        ``__ident`` and ``__op``, and the engine's PRIVATE columns), for a checkpoint to make durable. Once
        it is, the checkpoint's verdicts are done: rows handed out and still without one wait for the next."""
        with self._out_lock:
            taken = len(self._out)
            out = pa.concat_tables(self._out) if self._out else None
        con = self.con
        private = "".join(f", NULL::{kind} AS {name}" for name, kind in self.PRIVATE.items())
        looked_up = f"SELECT {', '.join(f'c.{c}' for c in _CHECKPOINTED)}{private} FROM change_keys c"
        con.register("handed_out", out if out is not None else con.sql(f"{looked_up} LIMIT 0").to_arrow_table())
        try:
            fresh = f"(SELECT {PK}, {OP}, commits FROM verdicts WHERE generation = {self._generation})"
            acks = f"(SELECT {PK}, {OP} FROM {fresh} WHERE commits)"
            rows = f"SELECT * FROM handed_out c SEMI JOIN {acks} a ON a.{PK} = c.{PK} AND a.{OP} = c.{OP}"
            # Rows settled without being handed out by changes() (a caller that knew their keys) are looked up
            # in the whole change set: rare, and only then the larger join (their PRIVATE columns unknown).
            others = f"SELECT {PK}, {OP} FROM {acks} a ANTI JOIN handed_out h ON h.{PK} = a.{PK} AND h.{OP} = a.{OP}"
            if one(con.execute(f"SELECT count(*) FROM ({others})"))[0]:
                rows += f" UNION ALL BY NAME {looked_up} SEMI JOIN ({others}) o ON o.{PK} = c.{PK} AND o.{OP} = c.{OP}"
            yield rows
            waiting = con.sql(
                f"SELECT * FROM handed_out h ANTI JOIN {fresh} f ON f.{PK} = h.{PK} AND f.{OP} = h.{OP}"
            ).to_arrow_table()
            with self._out_lock:
                self._out = [waiting, *self._out[taken:]]
            self._generation += 1
        finally:
            con.unregister("handed_out")

    def unsettled(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # Read whole before yielding (keys and operations only): the verdicts live in this connection's
        # temporary tables, and the caller settles (writes to it) while it goes through them.
        table = self.con.sql(
            f"SELECT c.{PK}, c.{OP} FROM change_keys c ANTI JOIN verdicts v ON v.{PK} = c.{PK} AND v.{OP} = c.{OP}"
        ).to_arrow_table()
        yield from table.to_batches(max_chunksize=batch_rows)

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


class Feed:
    """A source's batches as an iterator DuckDB can pull, keeping the source's own error if it fails."""

    def __init__(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch], on_rows: Callable[[int], None] | None
    ) -> None:
        self.first = first
        self.rest = rest
        self.on_rows = on_rows
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            if self.first is not None:
                yield self._counted(self.first)
                self.first = None
            for batch in self.rest:
                yield self._counted(batch)
        except BaseException as exc:
            self.error = exc
            raise

    def _counted(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self.on_rows:
            self.on_rows(batch.num_rows)
        return batch


def one(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The one row an aggregate query returns (read to the end: the connection is used again after it)."""
    rows = cursor.fetchall()
    if not rows:
        raise StateError("DuckDB returned no row for an aggregate query")
    return tuple(rows[0])
