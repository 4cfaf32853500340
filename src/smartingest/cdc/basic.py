"""The Basic CDC engine: snapshots as Parquet files in our state directory, the diff in DuckDB.

Per sync, ``<state_dir>/<sync>/snapshot.parquet`` holds primary key -> row hash of what Iterable
acknowledged. A run streams the model into a staging DuckDB file (its pages evicted to disk past a
memory limit), keeping every row's key and hash but whole rows only for candidate changes, and diffs
against the snapshot. During the run, each checkpoint writes only the rows acknowledged since the
previous one, as ``checkpoint-NNNNNN.parquet`` beside the snapshot. The run's commit writes its last
acknowledged rows as one more checkpoint while the checkpoints stay small beside the base file (a run
that changed 1% writes 1%); past that, it writes a new base file (old state, checkpoints, this run's
rows) beside the old one, renames it into place and records the checkpoints it folded in, which are then
deleted. The snapshot is read as the base file plus the checkpoints it has not folded in, later ones
winning, so a crash at any point leaves every acknowledged row of a finished checkpoint committed. Only
read access to the source is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from smartingest.cdc.base import (
    HASH,
    IDENT,
    OP,
    PK,
    SAME_BEFORE,
    HashSpec,
)
from smartingest.cdc.hashing import HASH_SCHEME, hash_sql, literal, quote, row_hash_sql
from smartingest.cdc.staging import KEY, Feed, StagedChangeSet, one, open_staging
from smartingest.cdc.state_store import LocalStateStore, StateStore
from smartingest.config.models import DEFAULT_CDC_MEMORY_LIMIT, ModelConfig
from smartingest.errors import ModelError, StateError
from smartingest.sources.base import DEFAULT_BATCH_ROWS, Source

SNAPSHOT_FILE = "snapshot.parquet"
CHECKPOINT_GLOB = "checkpoint-*.parquet"
REMOVED = "__removed"  # in a checkpoint: the key left the snapshot
# A run's commit adds its acknowledged rows as one more checkpoint while the checkpoints stay under a tenth
# of the base file (and few): a run that changed 1% costs 1%, not a rewrite of the whole snapshot. Past
# that, the commit folds them into a new base file.
FOLD_SHARE_INVERSE = 10
MAX_DELTA_FILES = 50
RESERVED_COLUMNS = (PK, OP, HASH, KEY, IDENT, SAME_BEFORE, "__row", "__before")
# snapshot path -> (its files' names, mtimes and sizes; its row count)
_SIZES: dict[str, tuple[tuple[tuple[str, int, int], ...], int]] = {}


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


class BasicChangeDetector:
    """Change detection in a local (or mounted) state directory; see the module docstring."""

    def __init__(
        self,
        state_dir: Path,
        memory_limit: str = DEFAULT_CDC_MEMORY_LIMIT,
        threads: int = 2,
        store: StateStore | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.store: StateStore = store or LocalStateStore()  # where the snapshot files last (state_dir caches them)
        self.memory_limit = memory_limit
        self.threads = threads

    def sync_dir(self, sync_key: str) -> Path:
        path = self.state_dir / sync_key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def snapshot_path(self, sync_key: str) -> Path:
        return self.sync_dir(sync_key) / SNAPSHOT_FILE

    def plan(
        self,
        sync_key: str,
        source: Source,
        model: ModelConfig,
        spec: HashSpec,
        full_resync: bool = False,
        on_rows: Callable[[int], None] | None = None,
    ) -> BasicChangeSet:
        """Stream the model into staging and diff it against the snapshot (see ChangeDetector.plan)."""
        sync_dir = self.sync_dir(sync_key)
        _remove_stale_staging(sync_dir)
        self.store.pull(sync_key, sync_dir)
        staging = sync_dir / f"staging-{uuid.uuid4().hex}"
        con = open_staging(staging, self.memory_limit, self.threads)
        try:
            change_set = BasicChangeSet(con, staging, self.snapshot_path(sync_key), spec, self.store, sync_key)
            change_set.stage(source, model, full_resync, on_rows)
            change_set.diff()
            return change_set
        except duckdb.OutOfMemoryException as exc:
            con.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise StateError(
                f"computing the change set needs more memory than cdc_memory_limit ({self.memory_limit}) allows: "
                f"raise cdc_memory_limit in the project file ({exc})"
            ) from exc
        except BaseException:
            con.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def replace_snapshot(
        self, sync_key: str, con: duckdb.DuckDBPyConnection, rows_sql: str, written: dict[str, str]
    ) -> None:
        """Make the rows of ``rows_sql`` (__key, __pk, __hash, __ident) the sync's whole snapshot, its file
        saying it was ``written`` under those pairs (see ``written_pairs``); its checkpoints are dropped."""
        path = self.snapshot_path(sync_key)
        self.store.pull(sync_key, path.parent)
        folded = max([0, *checkpoint_numbers(path.parent)])
        tmp = path.with_name(path.name + ".tmp")
        kv = kv_clause(written, folded_through=str(folded))
        con.execute(f"COPY ({rows_sql}) TO {literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd, KV_METADATA {kv})")
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
        self.store.push(sync_key, path)
        stale = [checkpoint_path(path.parent, n) for n in checkpoint_numbers(path.parent) if n <= folded]
        for checkpoint in stale:
            checkpoint.unlink(missing_ok=True)
        self.store.delete(sync_key, [checkpoint.name for checkpoint in stale])

    def reset(self, sync_key: str, others: bool = True) -> bool:
        """Forget the snapshot (see ChangeDetector.reset); ``others``: also every other file the state store
        keeps for the sync. Returns whether a snapshot existed."""
        path = self.snapshot_path(sync_key)
        self.store.pull(sync_key, path.parent)
        files = [path, *path.parent.glob(CHECKPOINT_GLOB)]
        existed = any(f.exists() for f in files)
        if others:
            self.store.delete_all(sync_key)
        else:
            self.store.delete(sync_key, [f.name for f in files if f.exists()])
        for file in files:
            file.unlink(missing_ok=True)
        return existed

    def snapshot_size(self, sync_key: str) -> int:
        path = self.snapshot_path(sync_key)
        self.store.pull(sync_key, path.parent)
        # Sync lists ask for every sync's size on each call: count a snapshot once per state of its files.
        files = tuple(
            (p.name, stat.st_mtime_ns, stat.st_size)
            for p in sorted([path, *path.parent.glob(CHECKPOINT_GLOB)])
            if (stat := _stat(p)) is not None
        )
        cached = _SIZES.get(str(path))
        if cached is not None and cached[0] == files:
            return cached[1]
        with duckdb.connect() as con:
            con.execute("SET enable_progress_bar = false")
            query = snapshot_query(con, path, None)
            size = 0 if query is None else int(one(con.execute(f"SELECT count(*) FROM ({query.sql})"))[0])
        if len(_SIZES) > 4096:
            _SIZES.clear()
        _SIZES[str(path)] = (files, size)
        return size


class BasicChangeSet(StagedChangeSet):
    """A planned change set staged in a DuckDB file; see ChangeSet for the contract."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        staging: Path,
        snapshot: Path,
        spec: HashSpec,
        store: StateStore | None = None,
        sync_key: str = "",
    ) -> None:
        super().__init__(con, staging, spec)
        self.store: StateStore = store or LocalStateStore()
        self.sync_key = sync_key
        self.snapshot = snapshot
        self.folded_through = 0  # the last checkpoint the loaded snapshot includes
        self.loaded: SnapshotQuery | None = None

    # -- planning ---------------------------------------------------------------------------------

    def load_snapshot(self, key_type: str) -> None:
        """Load the committed snapshot as table ``snap`` (empty when there is none, or when it belongs to
        another baseline): the key as text, as stored, and in the model's own key type (``__key``), so
        the diff joins on native values.

        A stored key that no longer converts to the model's key type gets a null ``__key``: it matches
        no row, so it counts as removed, and the rows of the new type are sent as added.
        """
        try:
            query = snapshot_query(self.con, self.snapshot, key_type, self.spec.baseline)
        except duckdb.Error as exc:
            raise StateError(f"the CDC snapshot {self.snapshot} is unreadable ({exc}): run `sync reset`") from exc
        if query is None:
            self.con.execute(f"CREATE TABLE snap ({KEY} {key_type}, {PK} VARCHAR, {HASH} UBIGINT, {IDENT} VARCHAR)")
            return
        self.loaded = query
        self.new_baseline = query.new_baseline
        self.folded_through = query.folded_through
        if query.written_under.fingerprint not in (None, self.spec.fingerprint) and query.new_baseline is None:
            self.remapped = (
                "the mappings (or settings that shape requests) changed since the snapshot was written: every row "
                "is compared under the new ones, and sent again"
            )
        # Files are read where they lie (each use reads only the columns it needs) unless the checkpoints
        # weigh enough to be worth merging once.
        kind = "TABLE" if query.worth_materializing else "VIEW"
        try:
            self.con.execute(f"CREATE {kind} snap AS {query.sql}")
        except duckdb.Error as exc:
            raise StateError(f"the CDC snapshot {self.snapshot} is unreadable ({exc}): run `sync reset`") from exc

    def stage(
        self, source: Source, model: ModelConfig, full_resync: bool, on_rows: Callable[[int], None] | None
    ) -> None:
        """Stream the model through one DuckDB query that keeps, per row, its key, its hash, and the
        whole row only when the key is new or the hash differs from the snapshot's (table ``staged``).

        DuckDB pulls the batches itself and probes a hash table of the snapshot built once, so an
        unchanged row costs a key and a hash whatever the model's width, and memory stays bounded.
        """
        with source.read(model, DEFAULT_BATCH_ROWS) as batches:
            iterator = iter(batches)
            first = next(iterator, None)
            schema = first.schema if first is not None else source.schema(model)
            self._check_columns(schema, model)
            self.load_snapshot(self._key_type(schema))
            if not full_resync:
                self.added_parts = self._parts_added(schema.names)
            feed = Feed(first, iterator, on_rows)
            self.con.register("source_rows", pa.RecordBatchReader.from_batches(schema, feed))
            try:
                # The join's hash table is built on the snapshot (keys and hashes): left to itself, DuckDB
                # builds it on the model's rows, whose stream it cannot size, holding every column of every
                # row (about 200 MB at a million rows of the benchmark's model, against 30 MB).
                self.con.execute("SET disabled_optimizers = 'build_side_probe_side'")
                try:
                    self.con.execute(self._staging_sql(schema.names, full_resync))
                finally:
                    self.con.execute("RESET disabled_optimizers")
            except duckdb.OutOfMemoryException:
                raise
            except duckdb.Error as exc:
                if feed.error is not None:  # the source failed mid-stream: report its error, not DuckDB's
                    raise feed.error from None
                raise StateError(f"staging the model failed: {exc}") from exc
            finally:
                self.con.unregister("source_rows")
            if feed.error is not None:
                raise feed.error

    def _parts_added(self, columns: list[str]) -> tuple[str, ...]:
        """The parts the mappings added since the snapshot was written, when that is all they changed and
        the snapshot's own hashes can be recomputed from the model (else ``()``: every row goes whole)."""
        if self.loaded is None or self.remapped is None:
            return ()
        before = self.loaded.written_under
        now = dict(self.spec.parts)
        if not before.parts or not now or before.hash_columns is None:
            return ()
        if any(now.get(name) != digest for name, digest in before.parts.items()):
            return ()
        if any(column not in columns for column in before.hash_columns):
            return ()
        return tuple(sorted(set(now) - set(before.parts)))

    def _key_type(self, schema: pa.Schema) -> str:
        """DuckDB's name for the type of the model's primary key (a STRUCT for a composite key)."""
        self.con.register("empty_model", schema.empty_table())
        try:
            description = self.con.execute(f"SELECT {self._key_sql('empty_model')} FROM empty_model").description
            return str(description[0][1])
        finally:
            self.con.unregister("empty_model")

    def _staging_sql(self, columns: list[str], full_resync: bool) -> str:
        # Keys stay in their native type (an integer join is much cheaper than a text one); only the
        # candidates, usually few, get their text form, in diff().
        row = ", ".join(f"{quote(c)} := b.{quote(c)}" for c in columns)
        differs = "TRUE" if full_resync else f"s.{HASH} IS DISTINCT FROM b.{HASH}"
        # When the mappings only added parts, a changed row is also hashed as the snapshot's mappings would:
        # equal to the stored hash, its columns are as they were and only the added parts need sending.
        before, same = "", f"NULL::BOOLEAN AS {SAME_BEFORE}"
        if self.added_parts and self.loaded is not None:
            written = self.loaded.written_under
            assert written.fingerprint is not None and written.hash_columns is not None
            before = f", {hash_sql(written.fingerprint, written.hash_columns)} AS __before"
            same = f"CASE WHEN {differs} AND s.{KEY} IS NOT NULL THEN s.{HASH} = b.__before END AS {SAME_BEFORE}"
        return f"""CREATE TABLE staged AS
            SELECT b.{KEY}, b.{HASH}, b.{IDENT},
                   CASE WHEN {differs} THEN (CASE WHEN s.{KEY} IS NULL THEN 'added' ELSE 'changed' END) END AS {OP},
                   {same},
                   CASE WHEN {differs} THEN struct_pack({row}) END AS __row
            FROM (SELECT *, {self._key_sql("source_rows")} AS {KEY}, {row_hash_sql(self.spec)} AS {HASH},
                         {self._ident_sql("source_rows")} AS {IDENT}{before}
                  FROM source_rows) b
            LEFT JOIN snap s ON s.{KEY} = b.{KEY}"""

    def _check_columns(self, schema: pa.Schema, model: ModelConfig) -> None:
        names = schema.names
        missing = [c for c in (*self.spec.key_columns, *self.spec.columns) if c not in names]
        if missing:
            raise ModelError(f"the model has no column {missing[0]!r} (columns: {', '.join(names)})")
        clash = [c for c in names if c in RESERVED_COLUMNS]
        if clash:
            raise ModelError(f"the model's column {clash[0]!r} uses a reserved name: rename it in the model")

    def diff(self) -> None:
        """Find the invalid rows, define ``changes`` (the valid candidates, unpacked, and the removed keys),
        and count.

        A row is invalid when its key is null, when its key appears more than once, or when another
        row with a valid key has the same identifier (both would update one user in the destination).
        """
        con = self.con
        con.execute(
            f"""CREATE TABLE dup_keys AS SELECT {KEY}, count(*) AS n FROM staged
                WHERE {KEY} IS NOT NULL GROUP BY {KEY} HAVING count(*) > 1"""
        )
        # Shared identifiers are found first and their keys listed after: listing every identifier's keys
        # to keep the few shared ones costs more than the whole diff. The first pass groups the identifiers'
        # hashes (integers group much faster than text); the second checks the few candidates' text.
        candidates = f"""FROM staged st WHERE {IDENT} IS NOT NULL AND {KEY} IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM dup_keys d WHERE d.{KEY} = st.{KEY})"""
        con.execute(
            f"""CREATE TABLE dup_idents AS
                WITH shared AS (SELECT hash({IDENT}) AS h {candidates} GROUP BY h HAVING count(*) > 1)
                SELECT {IDENT}, list({self._pk_text_sql(KEY)} ORDER BY {KEY}) AS keys
                {candidates} AND hash({IDENT}) IN (SELECT h FROM shared)
                GROUP BY {IDENT} HAVING count(*) > 1"""
        )
        valid = f"""{KEY} IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM dup_keys d WHERE d.{KEY} = st.{KEY})
                  AND NOT EXISTS (SELECT 1 FROM dup_idents i WHERE i.{IDENT} = st.{IDENT})"""
        matched = f"{KEY} IS NOT NULL AND ({OP} IS NULL OR {OP} = 'changed')"
        queried, valid_rows, matched_rows = one(
            con.execute(f"SELECT count(*), count(*) FILTER ({valid}), count(*) FILTER ({matched}) FROM staged st")
        )
        # The candidates are a view over staging, not a copy of it (on a first run, a copy of every row),
        # checked for validity only when some row is invalid.
        keep = f"{OP} IS NOT NULL" + ("" if queried == valid_rows else f" AND {valid}")
        # When every snapshot row met its one model row (keys unique), nothing was removed: no anti join.
        unique = not one(con.execute("SELECT count(*) FROM dup_keys"))[0]
        everyone_met = unique and matched_rows == one(con.execute("SELECT count(*) FROM snap"))[0]
        con.execute(
            f"""CREATE TABLE removed AS SELECT s.{KEY}, s.{PK}, s.{HASH}, s.{IDENT}
                FROM snap s {"WHERE false" if everyone_met else f"ANTI JOIN staged k ON k.{KEY} = s.{KEY}"}"""
        )
        con.execute(f"CREATE VIEW candidates AS SELECT * FROM staged st WHERE {keep}")
        self.define_changes(int(queried), int(queried) - int(valid_rows))
        self.rows_read = int(queried)

    # -- reading ----------------------------------------------------------------------------------

    def _invalid_sql(self) -> str:
        return f"""SELECT {self._null_key_line()} FROM staged WHERE {KEY} IS NULL
                UNION ALL
                SELECT {self._duplicate_key_line(f"k.{KEY}", "d.n")}
                FROM staged k JOIN dup_keys d ON d.{KEY} = k.{KEY}
                UNION ALL
                SELECT {self._shared_identifier_line(f"k.{KEY}", f"i.{IDENT}", "i.keys")}
                FROM staged k JOIN dup_idents i ON i.{IDENT} = k.{IDENT}
                WHERE k.{KEY} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dup_keys d WHERE d.{KEY} = k.{KEY})"""

    # -- committing -------------------------------------------------------------------------------

    def checkpoint(self) -> int:
        """Make the rows acknowledged since the last checkpoint durable: one checkpoint file of them
        (their key, hash and identifier, or that their key left), written beside the snapshot and renamed
        into place. Returns how many rows it holds."""
        con = self.con
        written = 0
        with self._acknowledged_rows() as acked:
            rows = f"SELECT {KEY}, {PK}, {HASH}, {IDENT}, {OP} = 'removed' AS {REMOVED} FROM ({acked})"
            if one(con.execute(f"SELECT count(*) FROM ({acked})"))[0]:  # nothing acknowledged: no file
                number = max([self.folded_through, *checkpoint_numbers(self.snapshot.parent)]) + 1
                path = checkpoint_path(self.snapshot.parent, number)
                tmp = path.with_name(path.name + ".tmp")
                con.execute(
                    f"COPY ({rows}) TO {literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd, KV_METADATA {self._kv()})"
                )
                _fsync(tmp)
                os.replace(tmp, path)
                _fsync(path.parent)
                self.store.push(self.sync_key, path)
                written = _parquet_rows(con, literal(str(path)))
        return written

    def commit(self) -> None:
        if self._fits_in_a_checkpoint():
            self.checkpoint()
            return
        tmp = self.snapshot.with_name(self.snapshot.name + ".tmp")
        folded = max([self.folded_through, *checkpoint_numbers(self.snapshot.parent)])
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW acks AS SELECT {PK}, {OP} FROM verdicts WHERE commits")
        # A snapshot says the mappings of the last run that committed a row to it (or made it): a run that
        # had nothing acknowledged leaves that as it was.
        kept = self.loaded.written_under if self.loaded is not None and self.new_baseline is None else None
        if (
            kept is not None
            and kept.fingerprint is not None
            and not one(self.con.execute("SELECT count(*) FROM acks"))[0]
        ):
            kv = kv_clause(
                written_pairs(
                    self.spec.baseline,
                    kept.fingerprint,
                    tuple(sorted((kept.parts or {}).items())),
                    kept.hash_columns or (),
                ),
                folded_through=str(folded),
            )
        else:
            kv = self._kv(folded_through=str(folded))
        self.con.execute(
            f"""COPY (
                  SELECT s.{KEY}, s.{PK}, s.{HASH}, s.{IDENT} FROM snap s ANTI JOIN acks a ON a.{PK} = s.{PK}
                  UNION ALL
                  SELECT c.{KEY}, c.{PK}, c.{HASH}, c.{IDENT}
                  FROM change_keys c SEMI JOIN acks a ON a.{PK} = c.{PK} AND a.{OP} = c.{OP}
                  WHERE c.{OP} <> 'removed'
                ) TO {literal(str(tmp))}
                (FORMAT parquet, COMPRESSION zstd, KV_METADATA {kv})"""
        )
        _fsync(tmp)
        os.replace(tmp, self.snapshot)
        _fsync(self.snapshot.parent)
        self.store.push(self.sync_key, self.snapshot)
        # The snapshot says which checkpoints it holds: deleting them is tidying, not a step to get right.
        folded_in = [checkpoint_path(self.snapshot.parent, n) for n in checkpoint_numbers(self.snapshot.parent)]
        folded_in = [path for path in folded_in if int(path.stem.removeprefix("checkpoint-")) <= folded]
        for path in folded_in:
            path.unlink(missing_ok=True)
        self.store.delete(self.sync_key, [path.name for path in folded_in])

    def _fits_in_a_checkpoint(self) -> bool:
        """Whether the base file serves as is and this run's last acknowledged rows, with the checkpoints
        already on top of it, stay small beside it (see FOLD_SHARE_INVERSE)."""
        loaded = self.loaded
        if loaded is None or not loaded.base_rows:
            return False
        directory = self.snapshot.parent
        pending = [checkpoint_path(directory, n) for n in checkpoint_numbers(directory) if n > self.folded_through]
        if len(pending) + 1 > MAX_DELTA_FILES:
            return False
        written = sum(_parquet_rows(self.con, literal(str(path))) for path in pending)
        fresh = f"SELECT count(*) FROM verdicts WHERE commits AND generation = {self._generation}"
        return (written + int(one(self.con.execute(fresh))[0])) * FOLD_SHARE_INVERSE <= loaded.base_rows

    def _kv(self, **extra: str) -> str:
        """The KV_METADATA clause of a snapshot or checkpoint file: what its hashes and keys belong to."""
        return kv_clause(
            written_pairs(self.spec.baseline, self.spec.fingerprint, self.spec.parts, self.spec.columns), **extra
        )


def written_pairs(
    baseline: str, fingerprint: str, parts: tuple[tuple[str, str], ...], columns: tuple[str, ...]
) -> dict[str, str]:
    """What a snapshot file says it was written under."""
    return {
        "hash_scheme": HASH_SCHEME,
        "baseline": baseline,
        "mapping_fingerprint": fingerprint,
        # What a later run needs to recompute this file's hashes when its mappings only add parts.
        "mapping_parts": json.dumps(dict(parts), sort_keys=True),
        "hash_columns": json.dumps(list(columns)),
    }


def kv_clause(pairs: dict[str, str], **extra: str) -> str:
    """The KV_METADATA clause of a snapshot or checkpoint file."""
    return "{" + ", ".join(f"{name}: {literal(value)}" for name, value in {**pairs, **extra}.items()) + "}"


@dataclass(frozen=True)
class WrittenUnder:
    """The mappings a snapshot file was written under, as far as its metadata says (None: not said)."""

    fingerprint: str | None = None
    parts: dict[str, str] | None = None
    hash_columns: tuple[str, ...] | None = None

    @classmethod
    def of(cls, meta: dict[str, str]) -> WrittenUnder:
        try:
            parts = json.loads(meta["mapping_parts"]) if "mapping_parts" in meta else None
            columns = tuple(json.loads(meta["hash_columns"])) if "hash_columns" in meta else None
        except ValueError:  # not ours to fail on: the rows are then sent whole
            parts, columns = None, None
        return cls(meta.get("mapping_fingerprint"), parts, columns)


@dataclass(frozen=True)
class SnapshotQuery:
    """The SELECT that reads a sync's snapshot (base file plus later checkpoints), and what loading found."""

    sql: str
    new_baseline: str | None  # why the base file was set aside, if it was
    folded_through: int  # the last checkpoint the base file holds
    written_under: WrittenUnder = WrittenUnder()  # the mappings of the newest file
    base_rows: int = 0  # rows of the base file, when it serves as is (0 when set aside or missing)
    delta_rows: int = 0  # rows of the checkpoints read on top of it
    delta_files: int = 0

    @property
    def worth_materializing(self) -> bool:
        """Whether the checkpoints weigh enough that merging them once beats merging them at every use."""
        return self.delta_files > 0 and self.delta_rows * FOLD_SHARE_INVERSE > self.base_rows


def checkpoint_path(directory: Path, number: int) -> Path:
    return directory / f"checkpoint-{number:06d}.parquet"


def checkpoint_numbers(directory: Path) -> list[int]:
    """The checkpoint files of a sync directory, by number, in order."""
    return sorted(int(p.stem.removeprefix("checkpoint-")) for p in directory.glob(CHECKPOINT_GLOB))


def snapshot_query(
    con: duckdb.DuckDBPyConnection, base: Path, key_type: str | None, baseline: str | None = None
) -> SnapshotQuery | None:
    """How to read the snapshot at ``base`` with the checkpoints written after it, or None when there is
    nothing to read. ``key_type`` casts stored keys to the model's key type (None keeps them as stored);
    ``baseline`` sets aside a base file or checkpoint made for another one (None takes every file).

    A checkpoint applies when its number is past the base file's ``folded_through`` and it was made for
    the same baseline and hash scheme; for a key in several files the last one decides.
    """

    def key(column: str) -> str:
        return f"TRY_CAST({column} AS {key_type}) AS {KEY}" if key_type else f"{column} AS {KEY}"

    base_select = None
    new_baseline = None
    folded_through = 0
    base_rows = 0
    written_under = WrittenUnder()
    if base.exists():
        path = literal(str(base))
        meta = _kv_metadata(con, path)
        folded_through = int(meta.get("folded_through") or 0)
        new_baseline = baseline_change(meta.get("baseline"), baseline) if baseline is not None else None
        if new_baseline is None:
            # Hashes of another scheme cannot be compared: keep the keys, send every row once more.
            current = meta.get("hash_scheme") == HASH_SCHEME
            hash_column = HASH if current else f"NULL::UBIGINT AS {HASH}"
            names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()]
            stored_key = KEY if KEY in names else PK  # snapshots of older versions hold the text form only
            ident = IDENT if IDENT in names else f"NULL::VARCHAR AS {IDENT}"
            base_select = f"SELECT {key(stored_key)}, {PK}, {hash_column}, {ident} FROM read_parquet({path})"
            written_under = WrittenUnder.of(meta)
            if current and stored_key == KEY and ident == IDENT:
                base_rows = _parquet_rows(con, path)
    deltas: list[str] = []  # SELECTs of KEY, PK, HASH, IDENT, REMOVED and the file's number
    delta_rows = 0
    for number in checkpoint_numbers(base.parent):
        path = literal(str(checkpoint_path(base.parent, number)))
        meta = _kv_metadata(con, path)
        stale = baseline is not None and baseline_change(meta.get("baseline"), baseline) is not None
        if number <= folded_through or meta.get("hash_scheme") != HASH_SCHEME or stale:
            continue
        deltas.append(f"SELECT {key(KEY)}, {PK}, {HASH}, {IDENT}, {REMOVED}, {number} AS __n FROM read_parquet({path})")
        delta_rows += _parquet_rows(con, path)
        if "mapping_fingerprint" in meta:
            written_under = WrittenUnder.of(meta)

    def found(sql: str) -> SnapshotQuery:
        return SnapshotQuery(sql, new_baseline, folded_through, written_under, base_rows, delta_rows, len(deltas))

    columns = f"{KEY}, {PK}, {HASH}, {IDENT}"
    if not deltas:
        if base_select is not None:
            return found(base_select)
        if new_baseline is None:
            return None
        empty = f"SELECT NULL::{key_type or 'VARCHAR'} AS {KEY}, NULL::VARCHAR AS {PK}, NULL::UBIGINT AS {HASH}"
        return found(f"{empty}, NULL::VARCHAR AS {IDENT} WHERE false")
    # The last word on each key (its latest checkpoint) replaces the base file's, unless that word is that
    # the key left. The base file is only probed against the checkpoints' keys, never re-sorted or copied.
    latest = f"""SELECT * FROM ({" UNION ALL ".join(deltas)})
                 QUALIFY row_number() OVER (PARTITION BY {PK} ORDER BY __n DESC) = 1"""
    sql = f"SELECT {columns} FROM ({latest}) WHERE NOT {REMOVED}"
    if base_select is not None:
        sql = f"""WITH latest AS ({latest})
                  SELECT {columns} FROM ({base_select}) b ANTI JOIN latest l ON l.{PK} = b.{PK}
                  UNION ALL SELECT {columns} FROM latest WHERE NOT {REMOVED}"""
    return found(sql)


def _parquet_rows(con: duckdb.DuckDBPyConnection, path_literal: str) -> int:
    """A Parquet file's row count, from its footer."""
    return int(one(con.execute(f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({path_literal})"))[0])


def _kv_metadata(con: duckdb.DuckDBPyConnection, path_literal: str) -> dict[str, str]:
    rows = con.execute(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata({path_literal})").fetchall()
    return {str(k): str(v) for k, v in rows}


def baseline_change(stored: str | None, current: str) -> str | None:
    """Why a snapshot made for ``stored`` cannot serve ``current`` (both JSON objects of what the
    snapshot belongs to), or None when it can. Snapshots of older versions carry no baseline: they
    are taken as belonging to the current one."""
    if not stored or not current or stored == current:
        return None
    try:
        before, after = json.loads(stored), json.loads(current)
    except ValueError:
        before, after = {}, {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)) or ["baseline"]
    described = ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in changed)
    return (
        f"new baseline: the snapshot was made for another {' and '.join(changed)} ({described}); "
        "every row is sent as added and nothing is removed"
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_staging(sync_dir: Path) -> None:
    # Left behind by a run that was killed; the caller holds the sync's lock, so none is in use.
    for leftover in sync_dir.glob("staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    (sync_dir / (SNAPSHOT_FILE + ".tmp")).unlink(missing_ok=True)
    for torn in sync_dir.glob(CHECKPOINT_GLOB + ".tmp"):
        torn.unlink(missing_ok=True)
