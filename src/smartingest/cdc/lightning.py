"""The Lightning CDC engine: the snapshot in a schema of ours inside the source, the diff there as SQL.

Per sync, the planner schema (``smartingest_planner`` unless the source says otherwise) holds
``snapshot_<sync>`` (the primary key's columns, in the model's own types, with ``__hash`` and
``__ident``: what Iterable acknowledged), ``plan_<sync>`` (the acknowledged changes of the run being
committed) and one row of ``smartingest_syncs`` saying what the snapshot was written under (hash scheme,
baseline, mappings); in PostgreSQL also a row of ``smartingest_horizons`` and ``pending_<sync>``, with
which a run on a table reads only the rows written since the last one (cdc/row_versions.py). The schema
and the tables are created on first use.

A run asks the database, in queries that only read the model, for the rows whose hash differs from the
snapshot's (added or changed: their own columns, hash and identifier) and for the count of rows and of
null keys; then, unless the answer is known without reading every row again, for the keys more than one
row has (none where the model is a table whose primary key is the model's), the snapshot's keys no row
has any more (none where the keys are unique and as many rows met a snapshot key as it holds), and the
rows whose identifier another row has too (while the snapshot records that no two of its keys share one,
only the snapshot's other keys holding a changed row's identifier can: those are looked up). When every
row came out (a first run, a full resync), duplicates and shared identifiers are found locally. Only
those rows leave the database, as Arrow; the change set is then staged locally as the Basic engine stages
its own (cdc/staging.py), so reading and settling it are the same for both engines and so are the invalid
rows and their reasons.

Committing loads the keys Iterable acknowledged, with their new hash and identifier (or that they left),
into ``plan_<sync>`` and merges them into the snapshot in one transaction of set-based statements
(delete the removed keys, update the changed rows, insert the added ones), with the sync's row of
``smartingest_syncs``: a run that
stops before leaves the snapshot as it was; a checkpoint is such a merge of what was acknowledged since
the last one. Where the database has no transactions across statements (ClickHouse, Databricks,
BigQuery), a merge makes the snapshot's next
generation instead, a table of its own, and the one INSERT of the sync's row naming it commits it
(``_rebuild``). The model's own tables are only ever read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.cdc import row_versions
from smartingest.cdc.base import HASH, IDENT, OP, PK, SAME_BEFORE, HashSpec
from smartingest.cdc.basic import RESERVED_COLUMNS, BasicChangeDetector, baseline_change, snapshot_query, written_pairs
from smartingest.cdc.hashing import hash_sql, quote
from smartingest.cdc.staging import KEY, ROW, Feed, StagedChangeSet, one, open_staging
from smartingest.cdc.warehouse import Warehouse, warehouse_for
from smartingest.config.models import DEFAULT_CDC_MEMORY_LIMIT, DEFAULT_PLANNER_SCHEMA, ModelConfig
from smartingest.errors import ConfigError, ModelError, SourceAuthError, SourceError, StateError
from smartingest.sources.base import DEFAULT_BATCH_ROWS, Planner, Source, SqlSource

SYNCS_TABLE = "smartingest_syncs"
REMOVED = "__removed"
ADDED = "__added"
BEFORE = "__before"
WAS = "__was"  # a changed row's identifier as the snapshot holds it
NEW_IDENT = "__new_ident"  # in the plan table: the row's identifier is not the one its key held
_MODEL = "m"  # the alias the model's query has in the planner's SQL
_PROBE_VIEW = "smartingest_model_probe"
_NULL_INTEGER = "CASE WHEN 1 = 0 THEN 1 END"  # a null integer every dialect types (MySQL casts to no INTEGER)


def table_names(sync_key: str) -> tuple[str, str]:
    """The snapshot and plan tables of a sync: its key made a plain lower-case name, with a digest of it
    so that two keys never share a table, within the 63 characters every database allows."""
    slug = re.sub(r"[^a-z0-9_]+", "_", sync_key.lower()).strip("_")[:40]
    digest = hashlib.sha256(sync_key.encode()).hexdigest()[:8]
    return f"snapshot_{slug}_{digest}", f"plan_{slug}_{digest}"


def pending_table(sync_key: str) -> str:
    """The table of the keys a sync's last run left unacknowledged (see cdc/row_versions.py)."""
    base, _ = table_names(sync_key)
    return "pending_" + base.removeprefix("snapshot_")


def snapshot_table(sync_key: str, generation: int = 0) -> str:
    """The snapshot table of a sync's generation (see ``Warehouse.transactions``: where a merge cannot be
    one transaction, each makes the snapshot's next generation, a table of its own)."""
    base, _ = table_names(sync_key)
    return f"{base}_{generation}" if generation else base


@dataclass(frozen=True)
class WrittenUnder:
    """The sync's row of ``smartingest_syncs``: what its snapshot was written under."""

    hash_scheme: str
    baseline: str
    fingerprint: str
    parts: dict[str, str]
    hash_columns: tuple[str, ...]
    key_types: dict[str, str]  # the snapshot's key columns and their declared types
    # Whether two of the snapshot's keys may hold one identifier (then shared identifiers are looked for
    # among every row; else among the changed rows and the snapshot rows with their identifiers).
    idents_shared: bool = True
    generation: int = 0  # the snapshot table's generation, where merges make new ones

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> WrittenUnder:
        scheme, baseline, fingerprint, parts, columns, key_types, shared = (str(v or "") for v in row[:7])
        generation = int(row[7] or 0) if len(row) > 7 else 0
        try:
            return cls(
                scheme,
                baseline,
                fingerprint,
                json.loads(parts or "{}"),
                tuple(json.loads(columns or "[]")),
                json.loads(key_types or "{}"),
                shared != "no",
                generation,
            )
        except ValueError:  # not ours to fail on: then nothing is known of the mappings
            return cls(scheme, baseline, fingerprint, {}, (), {}, generation=generation)


class LightningChangeDetector:
    """Change detection inside the source's own database; see the module docstring."""

    def __init__(
        self,
        source: Source,
        source_type: str,
        state_dir: Path,
        planner_schema: str = DEFAULT_PLANNER_SCHEMA,
        memory_limit: str = DEFAULT_CDC_MEMORY_LIMIT,
        threads: int = 2,
    ) -> None:
        if not isinstance(source, SqlSource):
            raise ConfigError(f"the Lightning engine needs a SQL source; {source_type} sources are read with basic")
        self.source = source
        self.warehouse = warehouse_for(source.dialect(), source_type)
        self.state_dir = Path(state_dir)
        self.schema = planner_schema
        self.memory_limit = memory_limit
        self.threads = threads

    def plan(
        self,
        sync_key: str,
        source: Source,
        model: ModelConfig,
        spec: HashSpec,
        full_resync: bool = False,
        on_rows: Callable[[int], None] | None = None,
    ) -> LightningChangeSet:
        """Diff the model against the snapshot in the database (see ChangeDetector.plan)."""
        directory = self.state_dir / sync_key
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("staging-*"):  # a killed run's; the caller holds the sync's lock
            _remove_tree(leftover)
        change_set = self._change_set(sync_key, spec)
        try:
            change_set.stage(model, full_resync, on_rows)
        except duckdb.OutOfMemoryException as exc:
            change_set.close()
            raise StateError(
                f"staging the change set needs more memory than cdc_memory_limit ({self.memory_limit}) allows: "
                f"raise cdc_memory_limit in the project file ({exc})"
            ) from exc
        except BaseException:
            change_set.close()
            raise
        return change_set

    def reset(self, sync_key: str) -> bool:
        _, plan = table_names(sync_key)
        with self.session("forget the snapshot") as planner:
            if not self._schema_exists(planner):
                return False
            under = self.written_under(planner, sync_key)
            existed = under is not None
            tables = {snapshot_table(sync_key), plan, pending_table(sync_key)}
            if under is not None:  # and the next generation, which a merge that stopped may have left
                tables |= {snapshot_table(sync_key, under.generation), snapshot_table(sync_key, under.generation + 1)}
            for table in sorted(tables):
                planner.execute(f"DROP TABLE IF EXISTS {self.table(planner, table)}")
            if existed:
                planner.execute(
                    f"DELETE FROM {self.table(planner, SYNCS_TABLE)} "
                    f"WHERE sync_key = {self.warehouse.literal(sync_key)}"
                )
            if self.has_table(planner, row_versions.HORIZONS_TABLE):
                horizons = self.table(planner, row_versions.HORIZONS_TABLE)
                planner.execute(row_versions.forget(horizons, self.warehouse.literal(sync_key)))
            return existed

    def snapshot_size(self, sync_key: str) -> int:
        try:
            with self.source.planner() as planner:
                under = self.written_under(planner, sync_key) if self._schema_exists(planner) else None
                if under is None:
                    return 0
                snapshot = self.table(planner, snapshot_table(sync_key, under.generation))
                return int(planner.rows(f"SELECT count(*) FROM {snapshot}")[0][0])
        except SourceError as exc:
            raise StateError(f"the Lightning snapshot could not be counted: {exc}") from exc

    # -- carrying a snapshot over from the Basic engine, and back --------------------------------------

    def _change_set(self, sync_key: str, spec: HashSpec) -> LightningChangeSet:
        """An empty change set with a staging database of its own in the sync's state directory."""
        staging = self.state_dir / sync_key / f"staging-{uuid.uuid4().hex}"
        staging.parent.mkdir(parents=True, exist_ok=True)
        con = open_staging(staging, self.memory_limit, self.threads)
        return LightningChangeSet(con, staging, spec, self, sync_key)

    @contextmanager
    def _helper(self, sync_key: str, spec: HashSpec) -> Iterator[LightningChangeSet]:
        """A change set that plans nothing, for its SQL and its local staging database."""
        helper = self._change_set(sync_key, spec)
        try:
            yield helper
        finally:
            helper.close()

    def carry_from_basic(self, basic: BasicChangeDetector, sync_key: str, model: ModelConfig, spec: HashSpec) -> int:
        """Make the Basic engine's snapshot of the sync this engine's, so that switching sends nothing twice.

        Each key of the Basic snapshot keeps, as its hash, this database's hash of its row when the row
        is as the Basic snapshot holds it (the Basic hash of the row, computed here on the rows read out
        once, is the one stored), and no hash otherwise (the row is then sent as changed, as it would
        have been). The hashes are taken under the mappings the Basic snapshot was written under, which
        the new snapshot records, so a later run judges mapping changes as the Basic engine would have.
        Returns how many keys were carried over (0: the Basic engine had no snapshot for this baseline; a
        snapshot an earlier switch left in the database is then dropped).
        """
        source = self.source
        assert isinstance(source, SqlSource)
        schema = source.schema(model)
        with self._helper(sync_key, spec) as helper:
            con = helper.con
            path = basic.snapshot_path(sync_key)
            basic.store.pull(sync_key, path.parent)
            try:
                found = snapshot_query(con, path, helper.key_type(schema), spec.baseline)
                if found is None or found.new_baseline is not None:
                    self.reset(sync_key)  # what an earlier switch left here is older than what Basic sent since
                    return 0
                con.execute(f"CREATE TABLE snap AS {found.sql}")
            except duckdb.Error as exc:
                raise StateError(f"the CDC snapshot {path} is unreadable ({exc}): run `sync reset`") from exc
            under = found.written_under
            fingerprint, columns = under.fingerprint, under.hash_columns
            model_sql = source.model_sql(model)
            with self.session("carry the Basic engine's snapshot over") as planner:
                self.ensure_schema(planner)
                helper.scheme = self.warehouse.scheme(str(planner.rows(self.warehouse.version)[0][0]))
                if fingerprint is not None and columns is not None and set(columns) <= set(schema.names):
                    helper.stage_hashed_rows(planner, model, model_sql, fingerprint, columns)
                    kept = f"CASE WHEN s.{HASH} = h.basic_hash THEN h.lightning_hash END"
                    joined = f"snap s LEFT JOIN hashed h ON h.{KEY} = s.{KEY}"
                else:  # the Basic snapshot does not say how its hashes were made: keep the keys
                    kept, joined = f"CAST(NULL AS {self.warehouse.hash_type})", "snap s"
                kept_rows = (
                    f"SELECT {helper.unpacked_keys('s')}, {kept} AS {HASH}, s.{IDENT} FROM {joined} "
                    f"WHERE s.{KEY} IS NOT NULL"
                )
                carried = int(one(con.execute(f"SELECT count(*) FROM ({kept_rows})"))[0])
                written = WrittenUnder(
                    helper.scheme, spec.baseline, fingerprint or "", under.parts or {}, columns or (), {}
                )
                with con.cursor() as cursor:  # streamed into the database: the snapshot may be large
                    helper.replace_snapshot(planner, model_sql, cursor.sql(kept_rows).to_arrow_reader(), written)
            return carried

    def carry_to_basic(self, basic: BasicChangeDetector, sync_key: str, model: ModelConfig, spec: HashSpec) -> int:
        """Make this engine's snapshot of the sync the Basic engine's (the mirror of ``carry_from_basic``,
        reading only: the snapshot in the database is left as it is). Returns how many keys were carried."""
        source = self.source
        assert isinstance(source, SqlSource)
        schema = source.schema(model)
        with self._helper(sync_key, spec) as helper, source.planner() as planner:
            con = helper.con
            if not self._schema_exists(planner):
                return 0
            under = self.written_under(planner, sync_key)
            if under is None:
                return 0
            q = planner.quote
            snapshot = self.table(planner, snapshot_table(sync_key, under.generation))
            keys = ", ".join(q(c) for c in spec.key_columns)
            stream = planner.stream(f"SELECT {keys}, {q(HASH)}, {q(IDENT)} FROM {snapshot}", model)
            try:
                con.register("found", pa.RecordBatchReader.from_batches(stream.schema, stream))
                key_type = helper.key_type(schema)
                con.execute(
                    f"""CREATE TABLE lsnap AS SELECT TRY_CAST({helper._key_sql("found")} AS {key_type}) AS {KEY},
                               {HASH}, {IDENT} FROM found"""
                )
                con.unregister("found")
            finally:
                stream.close()
            scheme = self.warehouse.scheme(str(planner.rows(self.warehouse.version)[0][0]))
            columns = under.hash_columns
            if under.hash_scheme == scheme and columns and set(columns) <= set(schema.names):
                helper.stage_hashed_rows(planner, model, source.model_sql(model), under.fingerprint, columns)
                kept = f"CASE WHEN l.{HASH} = h.lightning_hash THEN h.basic_hash END"
                joined = f"lsnap l LEFT JOIN hashed h ON h.{KEY} = l.{KEY}"
            else:
                kept, joined = "NULL::UBIGINT", "lsnap l"
            rows = (
                f"SELECT l.{KEY}, {helper._pk_text_sql(f'l.{KEY}')} AS {PK}, {kept} AS {HASH}, l.{IDENT} "
                f"FROM {joined} WHERE l.{KEY} IS NOT NULL"
            )
            carried = int(one(con.execute(f"SELECT count(*) FROM ({rows})"))[0])
            parts = tuple(sorted(under.parts.items()))
            written = written_pairs(under.baseline, under.fingerprint, parts, columns)
            basic.replace_snapshot(sync_key, con, rows, written)
            return carried

    # -- the planner schema -----------------------------------------------------------------------

    def table(self, planner: Planner, name: str) -> str:
        return f"{planner.quote(self.schema)}.{planner.quote(name)}"

    @contextmanager
    def session(self, doing: str) -> Iterator[Planner]:
        """A planner session; a missing privilege becomes an error naming the GRANT that gives it."""
        with self.source.planner() as planner:
            try:
                for setting in self.warehouse.session:
                    planner.execute(setting)
                yield planner
            except SourceAuthError as exc:
                raise self._privilege_error(planner, doing, exc) from exc

    def _privilege_error(self, planner: Planner, doing: str, exc: SourceAuthError) -> SourceAuthError:
        w = self.warehouse
        try:
            user = str(planner.rows(w.current_user)[0][0])
            exists = self._schema_exists(planner)
            database = str(planner.rows(w.current_database)[0][0]) if w.current_database else ""
        except SourceError:
            user, exists, database = "<the source's user>", True, ""
        grant = w.grant(planner.stored(self.schema), exists, user, database)
        return SourceAuthError(
            f"the Lightning engine cannot {doing} in the {w.schema_noun} {self.schema!r} of this source, where it "
            f"keeps its snapshots ({exc}). Run `{grant}` as an administrator, or set the source's planner_schema "
            f"to a {w.schema_noun} this user may write, or its engine to basic (read-only)"
        )

    def _schema_exists(self, planner: Planner) -> bool:
        stored = planner.stored(self.schema)
        found = planner.schema_exists(stored)
        return found if found is not None else bool(planner.rows(self.warehouse.schema_exists(stored))[0][0])

    def ensure_schema(self, planner: Planner) -> None:
        """Create the planner schema and its table of syncs when they are missing."""
        w = self.warehouse
        if not self._schema_exists(planner):
            current = planner.rows(w.current_schema)[0][0] if w.current_schema else None
            quoted = planner.quote(self.schema)
            planner.execute(planner.create_schema(quoted) or w.create_schema(quoted))
            if current:  # the model's unqualified names resolve in the schema they did
                planner.execute(w.use_schema(str(current)))
        text = w.key_text_type
        columns = ", ".join(
            f"{name} {self.warehouse.ident_type}"
            for name in (
                "hash_scheme",
                "baseline",
                "fingerprint",
                "parts",
                "hash_columns",
                "key_types",
                "idents_shared",
            )
        )
        if not w.transactions:  # a row per generation: the one written last is the snapshot's
            columns += f", generation {w.generation_type}"
        planner.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table(planner, SYNCS_TABLE)} "
            f"(sync_key {text} {'PRIMARY KEY' if w.transactions else 'NOT NULL'}, {columns}, committed_at {text})"
        )
        if w.row_versions:
            planner.execute(row_versions.create_table(self.table(planner, row_versions.HORIZONS_TABLE), text))

    def columns_of(self, planner: Planner, table: str) -> list[tuple[Any, ...]]:
        """The columns of a table of the planner schema and their declared types, in order (none: no table)."""
        return planner.rows(self.warehouse.column_types(planner.stored(self.schema), planner.stored(table)))

    def has_table(self, planner: Planner, table: str) -> bool:
        return bool(self.columns_of(planner, table))

    def written_under(self, planner: Planner, sync_key: str) -> WrittenUnder | None:
        """The sync's row of smartingest_syncs, or None when it has no snapshot (or the schema no such table)."""
        if not self.has_table(planner, SYNCS_TABLE):
            return None
        w = self.warehouse
        latest = "" if w.transactions else ", generation"
        rows = planner.rows(
            f"SELECT hash_scheme, baseline, fingerprint, parts, hash_columns, key_types, idents_shared{latest} "
            f"FROM {self.table(planner, SYNCS_TABLE)} WHERE sync_key = {w.literal(sync_key)}"
            + ("" if w.transactions else " ORDER BY generation DESC LIMIT 1")
        )
        if not rows:
            return None
        under = WrittenUnder.of(rows[0])
        return under if self.has_table(planner, snapshot_table(sync_key, under.generation)) else None


class LightningChangeSet(StagedChangeSet):
    """A change set the database planned, staged locally; see the module docstring and ChangeSet."""

    PRIVATE: ClassVar[dict[str, str]] = {WAS: "VARCHAR"}  # whether a merged row's identifier is new to its key

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        staging: Path,
        spec: HashSpec,
        detector: LightningChangeDetector,
        sync_key: str,
    ) -> None:
        super().__init__(con, staging, spec)
        self.detector = detector
        self.warehouse: Warehouse = detector.warehouse
        self.sync_key = sync_key
        self.snapshot_table, self.plan_table = table_names(sync_key)
        self.scheme = ""
        self.key_types: dict[str, str] = {}
        self.start_over = False  # the first merge empties the snapshot (another baseline or key type)
        self.recorded = False  # whether smartingest_syncs has the sync's row
        self.idents_shared = True  # see WrittenUnder.idents_shared: what the next merge records
        self.fresh = False  # the snapshot holds nothing from before this run (it is new, or starts over)
        self.retype: str | None = None  # the model's SQL, when the snapshot table must be made for new key types
        self.null_keys = 0
        self.generation = 0  # of the snapshot table (see snapshot_table)
        self.version: row_versions.TableVersion | None = None  # where the run may record a horizon
        self.held: int | None = None  # the snapshot's keys as planning found them, where it counted them

    # -- planning ---------------------------------------------------------------------------------

    def stage(self, model: ModelConfig, full_resync: bool, on_rows: Callable[[int], None] | None) -> None:
        detector, w = self.detector, self.warehouse
        source = detector.source
        assert isinstance(source, SqlSource)
        schema = source.schema(model)
        self._check_columns(schema)
        model_sql = source.model_sql(model)
        with detector.session("create its tables") as planner:
            detector.ensure_schema(planner)
            self.scheme = w.scheme(str(planner.rows(w.version)[0][0]))
            written = detector.written_under(planner, self.sync_key)
            self.recorded = written is not None
            if written is not None:
                self.generation = written.generation
                self.snapshot_table = snapshot_table(self.sync_key, written.generation)
            self._ensure_snapshot(planner, model_sql, written)
            compare = self._compare(written, schema, full_resync)
            hashed = {*self.spec.columns, *(written.hash_columns if written and self.added_parts else ())}
            hashable = self._hashable(planner, model_sql, sorted(hashed))
            unique = self._keys_unique(planner, model)
            self.version = self._table_version(planner, model, unique)
            fresh = self._stage_fresh(planner, model, compare)
            try:
                read = f"SELECT * FROM {fresh}" if fresh else model_sql
                self._stage_candidates(planner, model, read, schema, hashable, written, compare, on_rows)
            finally:
                if fresh:
                    planner.execute(f"DROP TABLE IF EXISTS {fresh}")
            self._stage_counts(planner, model_sql, unique)
            # Without a comparison every row with a key came out: what is left to find is found locally. (Not
            # so under other mappings: rows left unacknowledged by a run under these mappings hold hashes
            # made under them, and unchanged, stay in.)
            everything = not compare
            if everything:
                self._local_duplicates()
            elif not unique:
                self._stage_duplicates(planner, model, model_sql)
            removals = written is not None and not self.start_over
            if not removals:
                self.held = 0  # the snapshot is new, or emptied by the first merge
            if removals and not self._all_met(planner, unique):
                self._stage_removed(planner, model, model_sql)
            else:
                self._no_removed()
            self.fresh = written is None or self.start_over
            self.idents_shared = False if self.fresh else written is not None and written.idents_shared
            if self.spec.identity is not None:
                covered = self.spec.identity.column in self.spec.columns
                if everything:
                    self.con.execute(f"CREATE TABLE ident_rows AS SELECT {KEY}, {IDENT} FROM cand")
                elif covered and not self.idents_shared:
                    self._stage_identifiers_of_changes(planner, model)
                else:
                    self._stage_identifiers(planner, model, model_sql)
                if self.idents_shared:  # a full look at the snapshot can say again whether it holds one
                    self._recheck_snapshot_identifiers(planner)
        self._diff()

    def _check_columns(self, schema: pa.Schema) -> None:
        names = schema.names
        missing = [c for c in (*self.spec.key_columns, *self.spec.columns) if c not in names]
        if missing:
            raise ModelError(f"the model has no column {missing[0]!r} (columns: {', '.join(names)})")
        clash = [c for c in names if c in (*RESERVED_COLUMNS, BEFORE, REMOVED, ADDED, WAS, NEW_IDENT)]
        if clash:
            raise ModelError(f"the model's column {clash[0]!r} uses a reserved name: rename it in the model")

    def _hashable(self, planner: Planner, model_sql: str, columns: list[str]) -> dict[str, bool]:
        """Whether the database hashes each of ``columns``' type itself (where it can say; else its text is
        hashed). The same columns give the same answer run after run, so hashes stay comparable."""
        probe = self.warehouse.hashable(_PROBE_VIEW)
        if probe is None or not columns:
            return dict.fromkeys(columns, True)
        listed = ", ".join(f"{_MODEL}.{planner.quote(c)}" for c in columns)
        try:
            planner.execute(
                f"CREATE OR REPLACE TEMPORARY VIEW {_PROBE_VIEW} AS SELECT {listed} FROM (\n{model_sql}\n) {_MODEL}"
            )
            found = {str(name): bool(ok) for name, ok in planner.rows(probe)}
            planner.execute(f"DROP VIEW IF EXISTS {_PROBE_VIEW}")
        except SourceError:  # the model's SQL is not a view's (it fails below with its own error if it is bad)
            return dict.fromkeys(columns, False)
        return {c: found.get(c, False) for c in columns}

    def _ensure_snapshot(self, planner: Planner, model_sql: str, written: WrittenUnder | None) -> None:
        """Create the snapshot table when the sync has none, its key columns typed as the model's are."""
        self.new_baseline = baseline_change(written.baseline, self.spec.baseline) if written else None
        key_types = self._model_key_types(planner, model_sql)
        if written is not None and written.key_types and written.key_types != key_types:
            self.retype = model_sql  # the first merge makes the snapshot table again, for the new key types
            self.new_baseline = (
                "new snapshot: the model's primary key changed type since the snapshot was written "
                f"({written.key_types} -> {key_types}); every row is sent as added and nothing is removed"
            )
        if written is not None and self.new_baseline is None:
            self.key_types = written.key_types or key_types
            return
        self.start_over = written is not None
        self.key_types = key_types
        if written is None:
            self._create_snapshot(planner, model_sql)

    def _model_key_types(self, planner: Planner, model_sql: str) -> dict[str, str]:
        """The declared types of the model's key columns, as a table made from them gets them."""
        probe = f"{self.plan_table}_types"
        keys = ", ".join(f"{_MODEL}.{planner.quote(c)}" for c in self.spec.key_columns)
        table = self.detector.table(planner, probe)
        planner.execute(f"DROP TABLE IF EXISTS {table}")
        planner.execute(f"CREATE TABLE {table} AS SELECT {keys} FROM (\n{model_sql}\n) {_MODEL} WHERE 1 = 0")
        try:
            return {planner.shown(str(name)): str(type_) for name, type_ in self.detector.columns_of(planner, probe)}
        finally:
            planner.execute(f"DROP TABLE IF EXISTS {table}")

    def _create_snapshot(self, planner: Planner, model_sql: str, name: str | None = None) -> None:
        """Create the snapshot table (or table ``name``, a next generation of it), empty."""
        name = name or self.snapshot_table
        w, table = self.warehouse, self.detector.table(planner, name)
        keys = ", ".join(f"{_MODEL}.{planner.quote(c)}" for c in self.spec.key_columns)
        planner.execute(f"DROP TABLE IF EXISTS {table}")
        planner.execute(f"CREATE TABLE {table} AS SELECT {keys} FROM (\n{model_sql}\n) {_MODEL} WHERE 1 = 0")
        planner.execute(f"ALTER TABLE {table} ADD COLUMN {planner.quote(HASH)} {w.hash_type}")
        planner.execute(f"ALTER TABLE {table} ADD COLUMN {planner.quote(IDENT)} {w.ident_type}")
        for statement in w.after_create(table):
            planner.execute(statement)
        if w.indexes:
            try:
                planner.execute(w.primary_key(table, [planner.quote(c) for c in self.spec.key_columns]))
            except SourceAuthError:
                raise
            except SourceError:  # a key type the database cannot index whole (MySQL's TEXT): joins still work
                pass
            if self.spec.identity is not None:  # looked up by the changed rows' identifiers
                planner.execute(w.index(table, planner.quote(f"{name}_ident"), planner.quote(IDENT)))

    def _compare(self, written: WrittenUnder | None, schema: pa.Schema, full_resync: bool) -> bool:
        """Whether rows are compared with the snapshot's hashes (else every matched row is changed)."""
        if written is None or self.new_baseline is not None:
            return False
        if written.hash_scheme != self.scheme:
            return False  # hashes of another scheme cannot be compared: keep the keys, send every row once more
        if written.fingerprint != self.spec.fingerprint:
            self.remapped = (
                "the mappings (or settings that shape requests) changed since the snapshot was written: every row "
                "is compared under the new ones, and sent again"
            )
            if not full_resync:
                self.added_parts = self._parts_added(written, schema.names)
        return not full_resync

    def _parts_added(self, written: WrittenUnder, columns: list[str]) -> tuple[str, ...]:
        """The parts the mappings added since the snapshot was written, when that is all they changed
        (see BasicChangeSet._parts_added)."""
        now = dict(self.spec.parts)
        if not written.parts or not now or not written.hash_columns:
            return ()
        if any(now.get(name) != digest for name, digest in written.parts.items()):
            return ()
        if any(column not in columns for column in written.hash_columns):
            return ()
        return tuple(sorted(set(now) - set(written.parts)))

    def _hash(self, planner: Planner, fingerprint: str, columns: tuple[str, ...], hashable: dict[str, bool]) -> str:
        quoted = [f"{_MODEL}.{planner.quote(c)}" for c in columns]
        return self.warehouse.row_hash(fingerprint, quoted, [hashable[c] for c in columns])

    def _ident(self, planner: Planner) -> str:
        identity = self.spec.identity
        if identity is None:
            return f"CAST(NULL AS {self.warehouse.text_type})"
        return self.warehouse.ident(f"{_MODEL}.{planner.quote(identity.column)}", identity)

    def _keys_match(self, planner: Planner, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{planner.quote(c)} = {b}.{planner.quote(c)}" for c in self.spec.key_columns)

    def _key_present(self, planner: Planner, alias: str) -> str:
        return " AND ".join(f"{alias}.{planner.quote(c)} IS NOT NULL" for c in self.spec.key_columns)

    def _stage_candidates(
        self,
        planner: Planner,
        model: ModelConfig,
        model_sql: str,
        schema: pa.Schema,
        hashable: dict[str, bool],
        written: WrittenUnder | None,
        compare: bool,
        on_rows: Callable[[int], None] | None,
    ) -> None:
        """Stream the rows to send out of the database into table ``cand``."""
        w, q = self.warehouse, planner.quote
        snapshot = self.detector.table(planner, self.snapshot_table)
        extra = ""
        if self.added_parts and written is not None:
            before = self._hash(planner, written.fingerprint, written.hash_columns, hashable)
            extra = f", {before} AS {q(BEFORE)}"
        row_hash = self._hash(planner, self.spec.fingerprint, self.spec.columns, hashable)
        rows = (
            f"SELECT {_MODEL}.*, {row_hash} AS {q(HASH)}, {self._ident(planner)} AS {q(IDENT)}{extra} "
            f"FROM (\n{model_sql}\n) {_MODEL}"
        )
        columns = ", ".join(f"r.{q(c)}" for c in schema.names)
        first_key = q(self.spec.key_columns[0])
        if written is None or self.start_over:
            query = (
                f"SELECT {columns}, r.{q(HASH)}, r.{q(IDENT)}, 'added' AS {q(OP)}, "
                f"{_NULL_INTEGER} AS {q(SAME_BEFORE)}, CAST(NULL AS {w.text_type}) AS {q(WAS)} "
                f"FROM ({rows}) r WHERE {self._key_present(planner, 'r')}"
            )
        else:
            same = (
                f"CASE WHEN s.{first_key} IS NOT NULL THEN CASE WHEN s.{q(HASH)} = r.{q(BEFORE)} THEN 1 ELSE 0 END END"
                if extra
                else _NULL_INTEGER
            )
            differs = w.distinct(f"s.{q(HASH)}", f"r.{q(HASH)}") if compare else "1 = 1"
            query = (
                f"SELECT {columns}, r.{q(HASH)}, r.{q(IDENT)}, "
                f"CASE WHEN s.{first_key} IS NULL THEN 'added' ELSE 'changed' END AS {q(OP)}, "
                f"{same} AS {q(SAME_BEFORE)}, s.{q(IDENT)} AS {q(WAS)} "
                f"FROM ({rows}) r LEFT JOIN {snapshot} s ON {self._keys_match(planner, 's', 'r')} "
                f"WHERE {self._key_present(planner, 'r')} AND {differs}"
            )
        stream = planner.stream(query, model, DEFAULT_BATCH_ROWS)
        try:
            feed = Feed(None, iter(stream), on_rows)
            self.con.register("found", pa.RecordBatchReader.from_batches(stream.schema, feed))
            packed = ", ".join(f"{quote(c)} := f.{quote(c)}" for c in schema.names)
            try:
                self.con.execute(
                    f"""CREATE TABLE cand AS SELECT {self._key_sql("f")} AS {KEY}, f.{HASH}, f.{IDENT}, f.{OP},
                               CAST(f.{SAME_BEFORE} AS BOOLEAN) AS {SAME_BEFORE}, struct_pack({packed}) AS {ROW},
                               CAST(f.{WAS} AS VARCHAR) AS {WAS}
                        FROM found f"""
                )
            except duckdb.OutOfMemoryException:
                raise  # plan() says which setting to raise
            except duckdb.Error as exc:
                if feed.error is not None:
                    raise feed.error from None
                raise StateError(f"staging the change set failed: {exc}") from exc
            finally:
                self.con.unregister("found")
            self.rows_read += int(one(self.con.execute("SELECT count(*) FROM cand"))[0])
        finally:
            stream.close()

    def _load(self, name: str, stream: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        """A small result of the database as local table ``name``."""
        table = pa.Table.from_batches(list(stream), schema=schema)
        self.rows_read += table.num_rows
        self.con.register("loaded", table)
        try:
            self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM loaded")
        finally:
            self.con.unregister("loaded")

    def _fetch(self, planner: Planner, model: ModelConfig, name: str, query: str) -> None:
        stream = planner.stream(query, model, DEFAULT_BATCH_ROWS)
        try:
            self._load(name, stream, stream.schema)
        finally:
            stream.close()

    def _table_version(self, planner: Planner, model: ModelConfig, unique: bool) -> row_versions.TableVersion | None:
        """What the model's table is as this run begins reading it, where its row versions can tell the rows
        written since the last run (cdc/row_versions.py): a table whose primary key is the model's."""
        query = self.warehouse.table_version(model.table) if model.table is not None else None
        if query is None or not unique or model.sql is not None:
            return None
        try:
            rows = planner.rows(query)
        except SourceError:  # a catalog function this role may not call: every row is read
            return None
        return row_versions.TableVersion.of(rows[0]) if rows else None

    def _stage_fresh(self, planner: Planner, model: ModelConfig, compare: bool) -> str | None:
        """A scratch table of the rows written since the last run's horizon and of the keys it left pending,
        when the horizon covers this run (else None: every row is read)."""
        version, detector, w, q = self.version, self.detector, self.warehouse, planner.quote
        if version is None or not compare or self.remapped is not None or self.added_parts:
            return None
        horizons = detector.table(planner, row_versions.HORIZONS_TABLE)
        recorded = row_versions.horizon_of(planner.rows(row_versions.select(horizons, w.literal(self.sync_key))))
        if recorded is None or not recorded.covers(version, self.scheme, self.spec):
            return None
        if not detector.has_table(planner, pending_table(self.sync_key)):
            return None
        self.held = recorded.snapshot_rows
        source = detector.source
        assert isinstance(source, SqlSource)
        fresh = detector.table(planner, f"{self.plan_table}_fresh")
        pending = detector.table(planner, pending_table(self.sync_key))
        keys_match = " AND ".join(f"t.{q(c)} = p.{q(c)}" for c in self.spec.key_columns)
        rows = row_versions.fresh_rows(
            source.table_sql(model), pending, w.written_since("t", recorded.horizon), keys_match
        )
        planner.execute(f"DROP TABLE IF EXISTS {fresh}")
        planner.execute(f"{w.scratch_table} {fresh} AS {rows}")
        if w.analyze:  # the diff's join is planned for the rows there are, not a guess at the filter's share
            planner.execute(f"{w.analyze} {fresh}")
        return fresh

    def _stage_counts(self, planner: Planner, model_sql: str, unique: bool) -> None:
        null_key = " OR ".join(f"{_MODEL}.{planner.quote(c)} IS NULL" for c in self.spec.key_columns)
        # A primary key has no nulls: then the rows are counted without reading a value of them.
        null_keys = "0" if unique else f"SUM(CASE WHEN {null_key} THEN 1 ELSE 0 END)"
        # One row, asked as a plain query: PostgreSQL scans in parallel for it, not for a streamed COPY.
        queried, nulls = planner.rows(f"SELECT COUNT(*), {null_keys} FROM (\n{model_sql}\n) {_MODEL}")[0]
        tally = pa.table({"queried": [int(queried or 0)], "null_keys": [int(nulls or 0)]})
        self._load("tally", iter(tally.to_batches()), tally.schema)

    def _keys_unique(self, planner: Planner, model: ModelConfig) -> bool:
        """Whether the database guarantees the model's keys unique and not null (a table's primary key)."""
        query = self.warehouse.primary_key_of(model.table) if model.table is not None else None
        if query is None:
            return False
        try:
            columns = {str(row[0]) for row in planner.rows(query)}
        except SourceError:
            return False
        return bool(columns) and columns == set(self.spec.key_columns)

    def _stage_duplicates(self, planner: Planner, model: ModelConfig, model_sql: str) -> None:
        keys = ", ".join(f"{_MODEL}.{planner.quote(c)}" for c in self.spec.key_columns)
        self._fetch(
            planner,
            model,
            "dup_raw",
            f"SELECT {keys}, COUNT(*) AS n FROM (\n{model_sql}\n) {_MODEL} "
            f"WHERE {self._key_present(planner, _MODEL)} GROUP BY {keys} HAVING COUNT(*) > 1",
        )

    def _all_met(self, planner: Planner, unique: bool) -> bool:
        """Whether every snapshot key met its one model row, so that none was removed: the keys are unique
        and the rows that met a snapshot key (those not added) are as many as the snapshot's keys."""
        if not unique and self.con.execute("SELECT count(*) FROM dup_raw").fetchall()[0][0]:
            return False
        queried, null_keys = one(self.con.execute("SELECT coalesce(queried, 0), coalesce(null_keys, 0) FROM tally"))
        added = one(self.con.execute(f"SELECT count(*) FROM cand WHERE {OP} = 'added'"))[0]
        if self.held is None:
            snapshot = self.detector.table(planner, self.snapshot_table)
            self.held = int(planner.rows(f"SELECT COUNT(*) FROM {snapshot}")[0][0])
        return int(queried) - int(null_keys) - int(added) == self.held

    def _stage_identifiers(self, planner: Planner, model: ModelConfig, model_sql: str) -> None:
        """Local ``ident_rows``: every row whose identifier another row with a key has (one scan groups the
        identifiers, another lists their rows)."""
        q = planner.quote
        keys = ", ".join(f"{_MODEL}.{q(c)}" for c in self.spec.key_columns)
        present = self._key_present(planner, _MODEL)
        ident = self._ident(planner)
        self._fetch(
            planner,
            model,
            "shared_raw",
            f"SELECT {keys}, {ident} AS {q(IDENT)} FROM (\n{model_sql}\n) {_MODEL} WHERE {present} AND {ident} IN ("
            f"SELECT i.v FROM (SELECT {ident} AS v FROM (\n{model_sql}\n) {_MODEL} WHERE {present}) i "
            "WHERE i.v IS NOT NULL GROUP BY i.v HAVING COUNT(*) > 1)",
        )
        self.con.execute(
            f"CREATE TABLE ident_rows AS SELECT {self._key_sql('r')} AS {KEY}, r.{IDENT} FROM shared_raw r"
        )

    def _recheck_snapshot_identifiers(self, planner: Planner) -> None:
        q = planner.quote
        snapshot = self.detector.table(planner, self.snapshot_table)
        self.idents_shared = bool(
            planner.rows(
                f"SELECT COUNT(*) FROM (SELECT {q(IDENT)} FROM {snapshot} WHERE {q(IDENT)} IS NOT NULL "
                f"GROUP BY {q(IDENT)} HAVING COUNT(*) > 1) d"
            )[0][0]
        )

    def _local_duplicates(self) -> None:
        self.con.execute(
            f"""CREATE TABLE dup_raw AS SELECT {self.unpacked_keys("d")}, d.n
                FROM (SELECT {KEY}, count(*) AS n FROM cand GROUP BY {KEY} HAVING count(*) > 1) d"""
        )

    def _stage_identifiers_of_changes(self, planner: Planner, model: ModelConfig) -> None:
        """Local ``ident_rows`` without reading every row: a row that did not change has the identifier the
        snapshot holds for its key (the identifier's column is hashed), and no two snapshot keys share one
        (``idents_shared`` is false, else every row is looked at), so an identifier is shared only where a
        changed row has it: by another changed row, or by a snapshot key with it that neither changed nor
        left (looked up by the changed rows' identifiers)."""
        if self.idents_shared:
            raise AssertionError("the snapshot may hold a shared identifier: look at every row")
        con, q, w = self.con, planner.quote, self.warehouse
        # A changed row that keeps the identifier its key held shares it with no other snapshot key (none
        # shares one): only identifiers new to their key are looked up.
        idents = con.sql(
            f"SELECT {self.unpacked_keys('c')}, c.{IDENT} FROM cand c "
            f"WHERE c.{IDENT} IS NOT NULL AND c.{IDENT} IS DISTINCT FROM c.{WAS}"
        ).to_arrow_table()
        con.execute(f"CREATE TABLE ident_rows AS SELECT {KEY}, {IDENT} FROM cand")
        if not idents.num_rows:
            return
        table = f"{self.plan_table}_idents"
        planner.load(self.detector.schema, table, idents)
        try:
            keys = ", ".join(f"s.{q(c)}" for c in self.spec.key_columns)
            same_key = " AND ".join(
                f"s.{q(c)} = {w.key_cast(f'i.{q(c)}', self.key_types.get(c, ''))}" for c in self.spec.key_columns
            )
            snapshot = self.detector.table(planner, self.snapshot_table)
            looked_up = self.detector.table(planner, table)
            # Only other keys holding a changed row's identifier: a changed row's own entry tells nothing.
            self._fetch(
                planner,
                model,
                "held_idents",
                f"SELECT {keys}, s.{q(IDENT)} FROM {snapshot} s WHERE EXISTS (SELECT 1 FROM {looked_up} i "
                f"WHERE i.{q(IDENT)} = s.{q(IDENT)} AND NOT ({same_key}))",
            )
        finally:
            planner.execute(f"DROP TABLE IF EXISTS {self.detector.table(planner, table)}")
        con.execute(
            f"""INSERT INTO ident_rows SELECT h.{KEY}, h.{IDENT}
                FROM (SELECT {self._key_sql("r")} AS {KEY}, r.{IDENT} FROM held_idents r) h
                WHERE NOT EXISTS (SELECT 1 FROM cand c WHERE c.{KEY} = h.{KEY})
                  AND NOT EXISTS (SELECT 1 FROM removed d WHERE d.{KEY} = h.{KEY})"""
        )

    def _stage_removed(self, planner: Planner, model: ModelConfig, model_sql: str) -> None:
        q = planner.quote
        keys = ", ".join(f"s.{q(c)}" for c in self.spec.key_columns)
        snapshot = self.detector.table(planner, self.snapshot_table)
        self._fetch(
            planner,
            model,
            "removed_raw",
            f"SELECT {keys}, s.{q(IDENT)} FROM {snapshot} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM (\n{model_sql}\n) {_MODEL} WHERE {self._keys_match(planner, _MODEL, 's')})",
        )
        self.con.execute(
            f"""CREATE TABLE removed AS SELECT {KEY}, {self._pk_text_sql(KEY)} AS {PK}, NULL AS {HASH}, {IDENT}
                FROM (SELECT {self._key_sql("r")} AS {KEY}, r.{IDENT} FROM removed_raw r)"""
        )

    def _no_removed(self) -> None:
        self.con.execute(
            f"CREATE TABLE removed AS SELECT {KEY}, NULL::VARCHAR AS {PK}, {HASH}, {IDENT} FROM cand LIMIT 0"
        )

    def _diff(self) -> None:
        """Stage what the database found as the tables StagedChangeSet reads, and count."""
        con = self.con
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'dup_raw'").fetchall()[0][0]:
            # n as BIGINT, whatever type the database counts in (ClickHouse: UInt64).
            con.execute(
                f"CREATE TABLE dup_keys AS SELECT {self._key_sql('d')} AS {KEY}, d.n::BIGINT AS n FROM dup_raw d"
            )
        else:
            con.execute(f"CREATE TABLE dup_keys AS SELECT {KEY}, 0::BIGINT AS n FROM cand LIMIT 0")
        if self.spec.identity is None:
            con.execute(f"CREATE VIEW shared AS SELECT {KEY}, {IDENT} FROM cand LIMIT 0")
        else:
            con.execute(
                f"""CREATE VIEW shared AS SELECT s.{KEY}, s.{IDENT} FROM ident_rows s
                    WHERE s.{IDENT} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dup_keys d WHERE d.{KEY} = s.{KEY})"""
            )
        # As the Basic engine does: the identifiers' hashes grouped first (integers group fast and small),
        # their text and keys listed only for the few candidates.
        con.execute(
            f"""CREATE TABLE dup_idents AS
                WITH multi AS (SELECT hash({IDENT}) AS h FROM shared GROUP BY h HAVING count(*) > 1)
                SELECT {IDENT}, list({self._pk_text_sql(KEY)} ORDER BY {KEY}) AS keys
                FROM shared WHERE hash({IDENT}) IN (SELECT h FROM multi) GROUP BY {IDENT} HAVING count(*) > 1"""
        )
        con.execute(
            f"CREATE TABLE shared_rows AS SELECT * FROM shared s SEMI JOIN dup_idents i ON i.{IDENT} = s.{IDENT}"
        )
        con.execute(
            f"""CREATE VIEW candidates AS SELECT * FROM cand c
                WHERE NOT EXISTS (SELECT 1 FROM dup_keys d WHERE d.{KEY} = c.{KEY})
                  AND NOT EXISTS (SELECT 1 FROM dup_idents i WHERE i.{IDENT} = c.{IDENT})"""
        )
        queried, null_keys = one(con.execute("SELECT coalesce(queried, 0), coalesce(null_keys, 0) FROM tally"))
        duplicated = one(con.execute("SELECT coalesce(sum(n), 0) FROM dup_keys"))[0]
        sharing = one(con.execute("SELECT count(*) FROM shared_rows"))[0]
        self.null_keys = int(null_keys)
        self.define_changes(int(queried), int(null_keys) + int(duplicated) + int(sharing))

    def _invalid_sql(self) -> str:
        return f"""SELECT {self._null_key_line()} FROM range({self.null_keys})
                UNION ALL
                SELECT {self._duplicate_key_line(f"d.{KEY}", "d.n")} FROM dup_keys d, range(d.n)
                UNION ALL
                SELECT {self._shared_identifier_line(f"k.{KEY}", f"i.{IDENT}", "i.keys")}
                FROM shared_rows k JOIN dup_idents i ON i.{IDENT} = k.{IDENT}"""

    # -- committing -------------------------------------------------------------------------------

    def checkpoint(self) -> int:
        """Merge the rows acknowledged since the last checkpoint into the snapshot (see the module docstring)."""
        with self._acknowledged_rows() as rows:
            acked = self.con.sql(
                f"""SELECT {self.unpacked_keys("c")}, c.{HASH}, c.{IDENT}, c.{OP} = 'removed' AS {REMOVED},
                           c.{OP} = 'added' AS {ADDED}, c.{WAS} IS DISTINCT FROM c.{IDENT} AS {NEW_IDENT}
                    FROM ({rows}) c"""
            ).to_arrow_table()
            # Nothing acknowledged: the snapshot stays as it was, and so does what it says it was written
            # under, unless it is new (or starts over) and has yet to say it.
            if acked.num_rows == 0 and self.recorded and not self.start_over:
                return 0
            self._merge(acked)
        return acked.num_rows - (pc.sum(acked.column(REMOVED)).as_py() or 0)

    def commit(self) -> None:
        self.checkpoint()
        if self.version is not None:
            self._record_horizon(self.version)

    def _record_horizon(self, version: row_versions.TableVersion) -> None:
        """Record this run's horizon and the keys it leaves pending (its changed rows not acknowledged), in
        one transaction after its last merge (see cdc/row_versions.py)."""
        detector, w, con = self.detector, self.warehouse, self.con
        # Each acknowledged row is a staged one (invalid rows are never handed out), so when as many were
        # acknowledged as there are staged rows, none is pending and no join of the two need say so.
        acked = dict(
            con.execute(
                f"SELECT {OP}, count(*) FROM (SELECT DISTINCT {PK}, {OP} FROM verdicts WHERE commits) GROUP BY {OP}"
            ).fetchall()
        )
        added, removed = int(acked.get("added", 0)), int(acked.get("removed", 0))
        staged = int(one(con.execute("SELECT count(*) FROM cand"))[0])
        pending = (
            con.sql(f"SELECT {self.unpacked_keys('c')} FROM cand c LIMIT 0").to_arrow_table()
            if staged == added + int(acked.get("changed", 0))
            else con.sql(
                f"SELECT {self.unpacked_keys('c')} FROM cand c ANTI JOIN (SELECT k.{KEY} FROM change_keys k "
                f"SEMI JOIN verdicts v ON v.{PK} = k.{PK} AND v.{OP} = k.{OP} AND v.commits "
                f"WHERE k.{OP} <> 'removed') a ON a.{KEY} = c.{KEY}"
            ).to_arrow_table()
        )
        with detector.session("write its snapshot") as planner:
            q = planner.quote
            snapshot = detector.table(planner, self.snapshot_table)
            if self.held is None:  # not counted at planning: what the merges left is counted
                snapshot_rows = int(planner.rows(f"SELECT COUNT(*) FROM {snapshot}")[0][0])
            else:
                snapshot_rows = self.held + int(added) - int(removed)
            table = detector.table(planner, pending_table(self.sync_key))
            loaded = f"{self.plan_table}_pending"
            keys = ", ".join(q(c) for c in self.spec.key_columns)
            statements = [
                w.begin,
                f"DROP TABLE IF EXISTS {table}",
                f"CREATE TABLE {table} AS SELECT {keys} FROM {snapshot} WHERE 1 = 0",
            ]
            if pending.num_rows:
                planner.load(detector.schema, loaded, pending)
                casts = ", ".join(w.key_cast(f"p.{q(c)}", self.key_types.get(c, "")) for c in self.spec.key_columns)
                statements.append(
                    f"INSERT INTO {table} ({keys}) SELECT {casts} FROM {detector.table(planner, loaded)} p"
                )
            if w.analyze:
                statements.append(f"{w.analyze} {table}")
            horizons = detector.table(planner, row_versions.HORIZONS_TABLE)
            sync_key = w.literal(self.sync_key)
            statements += [
                row_versions.forget(horizons, sync_key),
                row_versions.record(horizons, w.literal, self.sync_key, version, self.scheme, self.spec, snapshot_rows),
                "COMMIT",
            ]
            try:
                for statement in statements:
                    planner.execute(statement)
            except BaseException:
                with suppress(SourceError):
                    planner.execute("ROLLBACK")
                raise
            if pending.num_rows:
                planner.execute(f"DROP TABLE IF EXISTS {detector.table(planner, loaded)}")

    def _merge(self, acked: pa.Table) -> None:
        """Load ``acked`` into the plan table and merge it into the snapshot, in one transaction."""
        if not self.warehouse.transactions:
            self._rebuild(acked)
            return
        detector, w = self.detector, self.warehouse
        with detector.session("write its snapshot") as planner:
            q = planner.quote
            snapshot = detector.table(planner, self.snapshot_table)
            if self.retype is not None:  # a crash after this leaves an empty snapshot, as this run would
                self._create_snapshot(planner, self.retype)
                self.retype = None
            plan = detector.table(planner, self.plan_table)
            planner.load(detector.schema, self.plan_table, acked)
            removed, added = (pc.sum(acked.column(c)).as_py() or 0 for c in (REMOVED, ADDED))
            changed = acked.num_rows - removed - added
            checks = self.spec.identity is not None and not self.idents_shared and not self.fresh
            # A table just loaded has no statistics: a merge that joins it with the snapshot (by key, or by
            # identifier) would be planned for any size. Adding rows joins nothing.
            if w.analyze and (removed or changed or checks):
                planner.execute(f"{w.analyze} {plan}")
            keys = ", ".join(q(c) for c in self.spec.key_columns)
            loaded = ", ".join(w.key_cast(f"p.{q(c)}", self.key_types.get(c, "")) for c in self.spec.key_columns)
            matches = " AND ".join(
                f"{snapshot}.{q(c)} = {w.key_cast(f'p.{q(c)}', self.key_types.get(c, ''))}"
                for c in self.spec.key_columns
            )
            # Whether a row merged now takes an identifier another snapshot key holds (a key whose own row
            # changed since, unacknowledged): later runs then look for shared identifiers in every row. Asked
            # before the merge, and only of rows whose identifier is not the one their key held at planning.
            collides = (
                f"SELECT COUNT(*) FROM {plan} p WHERE p.{q(NEW_IDENT)} AND NOT p.{q(REMOVED)} "
                f"AND p.{q(IDENT)} IS NOT NULL "
                f"AND EXISTS (SELECT 1 FROM {snapshot} WHERE {snapshot}.{q(IDENT)} = p.{q(IDENT)} AND NOT ({matches}))"
            )
            statements = [f"DELETE FROM {snapshot}"] if self.start_over else []
            if removed:
                statements.append(
                    f"DELETE FROM {snapshot} WHERE EXISTS (SELECT 1 FROM {plan} p WHERE p.{q(REMOVED)} AND {matches})"
                )
            if changed:  # updated where it lies (an index left as it is where its identifier is the same)
                statements.append(
                    w.update_from(
                        snapshot,
                        f"{plan} p",
                        [(q(HASH), f"p.{q(HASH)}"), (q(IDENT), f"p.{q(IDENT)}")],
                        matches,
                        f"NOT p.{q(REMOVED)} AND NOT p.{q(ADDED)}",
                    )
                )
            if added:  # not in the snapshot (a run merges each key once); in key order, the index's own
                statements.append(
                    f"INSERT INTO {snapshot} ({keys}, {q(HASH)}, {q(IDENT)}) "
                    f"SELECT {loaded}, p.{q(HASH)}, p.{q(IDENT)} FROM {plan} p WHERE p.{q(ADDED)} ORDER BY {keys}"
                )
            try:
                for statement in (w.begin, *w.merge_settings):
                    planner.execute(statement)
                # A snapshot that holds this run's rows only cannot: they were checked against each other.
                if checks:
                    self.idents_shared = bool(planner.rows(collides)[0][0])
                for statement in [*statements, *self._record_written(planner), "COMMIT"]:
                    planner.execute(statement)
            except BaseException:
                with suppress(SourceError):
                    planner.execute("ROLLBACK")
                raise
            planner.execute(f"DROP TABLE IF EXISTS {plan}")
        self.start_over = False
        self.recorded = True

    def _rebuild(self, acked: pa.Table) -> None:
        """Merge ``acked`` where a merge cannot be one transaction (``Warehouse.transactions``): the snapshot's
        next generation is made whole, a table of its own (the keys no acknowledged row touched, then the
        acknowledged rows that stay), and the sync's row naming it, one INSERT, is what commits it. A merge
        stopped before that leaves the snapshot as it was (its unfinished table is made again next time)."""
        detector = self.detector
        generation = self.generation + 1
        name = snapshot_table(self.sync_key, generation)
        with detector.session("write its snapshot") as planner:
            q = planner.quote
            old = detector.table(planner, self.snapshot_table)
            new = detector.table(planner, name)
            plan = detector.table(planner, self.plan_table)
            planner.load(detector.schema, self.plan_table, acked)
            keys = ", ".join(q(c) for c in self.spec.key_columns)
            matches = " AND ".join(f"s.{q(c)} = p.{q(c)}" for c in self.spec.key_columns)
            if self.spec.identity is not None and not self.idents_shared and not self.fresh:
                # As in _merge: whether a row merged now takes an identifier another snapshot key holds.
                self.idents_shared = bool(
                    planner.rows(
                        f"SELECT COUNT(*) FROM {plan} p WHERE p.{q(NEW_IDENT)} AND NOT p.{q(REMOVED)} "
                        f"AND p.{q(IDENT)} IS NOT NULL AND EXISTS (SELECT 1 FROM {old} s "
                        f"WHERE s.{q(IDENT)} = p.{q(IDENT)} AND NOT ({matches}))"
                    )[0][0]
                )
            planner.execute(f"DROP TABLE IF EXISTS {new}")
            if self.retype is not None:  # the keys' new types
                self._create_snapshot(planner, self.retype, name)
            else:
                planner.execute(f"CREATE TABLE {new} AS SELECT * FROM {old} WHERE 1 = 0")
            if not self.start_over:
                planner.execute(
                    f"INSERT INTO {new} ({keys}, {q(HASH)}, {q(IDENT)}) SELECT {keys}, {q(HASH)}, {q(IDENT)} "
                    f"FROM {old} s WHERE NOT EXISTS (SELECT 1 FROM {plan} p WHERE {matches})"
                )
            planner.execute(
                f"INSERT INTO {new} ({keys}, {q(HASH)}, {q(IDENT)}) "
                f"SELECT {keys}, {q(HASH)}, {q(IDENT)} FROM {plan} p WHERE NOT p.{q(REMOVED)}"
            )
            for statement in self._record_written(planner, generation=generation):
                planner.execute(statement)
            self._retire(planner, old, plan, generation)
        self.snapshot_table, self.generation = name, generation
        self.retype = None
        self.start_over = False
        self.recorded = True

    def _retire(self, planner: Planner, old: str, plan: str, generation: int) -> None:
        """Drop what a committed generation replaced (left to the next merge where that fails)."""
        syncs = self.detector.table(planner, SYNCS_TABLE)
        with suppress(SourceError):
            planner.execute(f"DROP TABLE IF EXISTS {old}")
            planner.execute(f"DROP TABLE IF EXISTS {plan}")
            planner.execute(
                f"DELETE FROM {syncs} WHERE sync_key = {self.warehouse.literal(self.sync_key)} "
                f"AND generation < {generation}"
            )

    def replace_snapshot(
        self, planner: Planner, model_sql: str, rows: pa.RecordBatchReader, under: WrittenUnder
    ) -> None:
        """Make ``rows`` (the key columns, __hash and __ident) the sync's whole snapshot, written ``under``."""
        if not self.warehouse.transactions:
            self._replace_generation(planner, model_sql, rows, under)
            return
        w, q = self.warehouse, planner.quote
        self.key_types = self._model_key_types(planner, model_sql)
        self._create_snapshot(planner, model_sql)
        snapshot = self.detector.table(planner, self.snapshot_table)
        plan = self.detector.table(planner, self.plan_table)
        planner.load(self.detector.schema, self.plan_table, rows)
        keys = ", ".join(q(c) for c in self.spec.key_columns)
        loaded = ", ".join(w.key_cast(f"p.{q(c)}", self.key_types.get(c, "")) for c in self.spec.key_columns)
        shared = (
            f"SELECT COUNT(*) FROM (SELECT p.{q(IDENT)} FROM {plan} p WHERE p.{q(IDENT)} IS NOT NULL "
            f"GROUP BY p.{q(IDENT)} HAVING COUNT(*) > 1) d"
        )
        try:
            self.idents_shared = bool(planner.rows(shared)[0][0])
            for statement in [
                w.begin,
                f"INSERT INTO {snapshot} ({keys}, {q(HASH)}, {q(IDENT)}) "
                f"SELECT {loaded}, p.{q(HASH)}, p.{q(IDENT)} FROM {plan} p",
                *self._record_written(planner, under),
                "COMMIT",
            ]:
                planner.execute(statement)
        except BaseException:
            with suppress(SourceError):
                planner.execute("ROLLBACK")
            raise
        planner.execute(f"DROP TABLE IF EXISTS {plan}")

    def _replace_generation(
        self, planner: Planner, model_sql: str, rows: pa.RecordBatchReader, under: WrittenUnder
    ) -> None:
        """``replace_snapshot`` as a new generation (see ``_rebuild``)."""
        q, detector = planner.quote, self.detector
        current = detector.written_under(planner, self.sync_key)
        if current is not None:
            self.generation = current.generation
            self.snapshot_table = snapshot_table(self.sync_key, current.generation)
        generation = self.generation + 1
        name = snapshot_table(self.sync_key, generation)
        self.key_types = self._model_key_types(planner, model_sql)
        self._create_snapshot(planner, model_sql, name)
        plan = detector.table(planner, self.plan_table)
        planner.load(detector.schema, self.plan_table, rows)
        self.idents_shared = bool(
            planner.rows(
                f"SELECT COUNT(*) FROM (SELECT p.{q(IDENT)} FROM {plan} p WHERE p.{q(IDENT)} IS NOT NULL "
                f"GROUP BY p.{q(IDENT)} HAVING COUNT(*) > 1) d"
            )[0][0]
        )
        keys = ", ".join(q(c) for c in self.spec.key_columns)
        planner.execute(
            f"INSERT INTO {detector.table(planner, name)} ({keys}, {q(HASH)}, {q(IDENT)}) "
            f"SELECT {keys}, {q(HASH)}, {q(IDENT)} FROM {plan} p"
        )
        for statement in self._record_written(planner, under, generation):
            planner.execute(statement)
        self._retire(planner, detector.table(planner, self.snapshot_table), plan, generation)
        self.snapshot_table, self.generation = name, generation

    def key_type(self, schema: pa.Schema) -> str:
        """DuckDB's name for the type of the model's primary key (a STRUCT for a composite key)."""
        self.con.register("empty_model", schema.empty_table())
        try:
            return str(self.con.execute(f"SELECT {self._key_sql('empty_model')} FROM empty_model").description[0][1])
        finally:
            self.con.unregister("empty_model")

    def stage_hashed_rows(
        self, planner: Planner, model: ModelConfig, model_sql: str, fingerprint: str, columns: tuple[str, ...]
    ) -> None:
        """Local table ``hashed``: each row of the model whose key is valid and unique, by ``__key``, with
        its hash as the Basic engine computes it (``basic_hash``) and as this database does (``lightning_hash``),
        both under ``fingerprint`` and ``columns``."""
        q = planner.quote
        hashable = self._hashable(planner, model_sql, sorted(set(columns)))
        listed = list(dict.fromkeys([*self.spec.key_columns, *columns]))
        query = (
            f"SELECT {', '.join(f'{_MODEL}.{q(c)}' for c in listed)}, "
            f"{self._hash(planner, fingerprint, columns, hashable)} AS {q(HASH)} "
            f"FROM (\n{model_sql}\n) {_MODEL} WHERE {self._key_present(planner, _MODEL)}"
        )
        stream = planner.stream(query, model, DEFAULT_BATCH_ROWS)
        try:
            self.con.register("found", pa.RecordBatchReader.from_batches(stream.schema, stream))
            try:
                self.con.execute(
                    f"""CREATE TABLE hashed AS
                        SELECT {self._key_sql("found")} AS {KEY}, {hash_sql(fingerprint, columns)} AS basic_hash,
                               {HASH} AS lightning_hash
                        FROM found QUALIFY count(*) OVER (PARTITION BY {KEY}) = 1"""
                )
            finally:
                self.con.unregister("found")
        finally:
            stream.close()

    def unpacked_keys(self, alias: str) -> str:
        """The key columns of ``alias``'s ``__key``, each under its own name."""
        columns = self.spec.key_columns
        if len(columns) == 1:
            return f"{alias}.{KEY} AS {quote(columns[0])}"
        return ", ".join(f"{alias}.{KEY}.{quote(c)} AS {quote(c)}" for c in columns)

    def _record_written(
        self, planner: Planner, under: WrittenUnder | None = None, generation: int | None = None
    ) -> list[str]:
        """The statements that make the sync's row of smartingest_syncs say what the snapshot is written under
        (this run's spec unless ``under`` says otherwise); with a ``generation``, the one INSERT of the row
        naming it (``_rebuild``)."""
        literal = self.warehouse.literal
        syncs = self.detector.table(planner, SYNCS_TABLE)
        spec = self.spec
        if under is None:
            under = WrittenUnder("", spec.baseline, spec.fingerprint, dict(spec.parts), spec.columns, {})
        values = [
            self.sync_key,
            self.scheme,
            under.baseline,
            under.fingerprint,
            json.dumps(under.parts, sort_keys=True),
            json.dumps(list(under.hash_columns)),
            json.dumps(self.key_types, sort_keys=True),
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "yes" if self.idents_shared else "no",
        ]
        literals = ", ".join(literal(v) for v in values)
        if generation is not None:
            return [
                f"INSERT INTO {syncs} (sync_key, hash_scheme, baseline, fingerprint, parts, hash_columns, "
                f"key_types, committed_at, idents_shared, generation) VALUES ({literals}, {generation})"
            ]
        # The snapshot changes: the horizon its last run recorded no longer says which rows it holds as they
        # are (the run's commit records the next one, after its last merge).
        forget = (
            [row_versions.forget(self.detector.table(planner, row_versions.HORIZONS_TABLE), literal(self.sync_key))]
            if self.warehouse.row_versions
            else []
        )
        return [
            *forget,
            f"DELETE FROM {syncs} WHERE sync_key = {literal(self.sync_key)}",
            f"INSERT INTO {syncs} (sync_key, hash_scheme, baseline, fingerprint, parts, hash_columns, key_types, "
            f"committed_at, idents_shared) VALUES ({literals})",
        ]


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
