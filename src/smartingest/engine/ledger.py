"""The run ledger: a run's status, counts and phase timings in the metadata database, its row-level
outcomes in bulk beside the CDC state (``outcome_files.py``).

It counts verdicts, not guesses: row outcomes are written as delivery settles them, and the run's
counts are the sums of what was written (``settled_counts``), for a run that finished and for a run
whose process died alike, so that every run's counts add up as docs/runs.md states.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
from sqlalchemy import Engine, delete, func, insert, select, update

from smartingest.codes import STARTED_RUN_STATUSES, RowStatus, RunStatus
from smartingest.engine.outcome_files import OutcomeFiles, OutcomeFilter, RowOutcome, outcome_table
from smartingest.store.tables import COUNT_NAMES, LegacyRunRow, SyncRun

STARTED_STATUSES = tuple(str(status) for status in STARTED_RUN_STATUSES)
PLANNING_COUNTS = ("queried", "invalid", "unchanged", "added", "changed", "removed")
# ledger row status -> the run count of that verdict
VERDICT_COUNTS = {
    RowStatus.SYNCED: "synced",
    RowStatus.REJECTED: "rejected",
    RowStatus.RETRY: "retried_next_run",
    RowStatus.DEFERRED: "deferred",
    RowStatus.SKIPPED: "skipped",
}


def settled_counts(planned: Mapping[str, int], tally: Mapping[str, int]) -> dict[str, int]:
    """A run's complete counts (every name of COUNT_NAMES): planning counts as given, verdicts tallied.

    ``planned`` holds the counts of planning (missing names are 0: planning never happened or never
    finished); ``tally`` the run's row outcomes by status. A change without a recorded verdict (its
    process died before delivery reached it) counts as ``retried_next_run``: nothing of it was
    committed, so the next run sends it again. So ``added + changed + removed`` always equals the sum
    of the verdict counts, whatever stopped the run.
    """
    counts = {name: int(planned.get(name) or 0) for name in PLANNING_COUNTS}
    counts.update({count: int(tally.get(status, 0)) for status, count in VERDICT_COUNTS.items()})
    changes = counts["added"] + counts["changed"] + counts["removed"]
    counts["retried_next_run"] += max(0, changes - sum(counts[name] for name in VERDICT_COUNTS.values()))
    return {name: counts[name] for name in COUNT_NAMES}


class Ledger:
    """Writes and reads sync runs (see the module docstring)."""

    def __init__(self, engine: Engine, outcomes: OutcomeFiles) -> None:
        self.engine = engine
        self.outcomes = outcomes
        self._sync_of: dict[int, str] = {}

    def sync_of(self, run_id: int) -> str:
        """The id of the sync a run belongs to; raises KeyError for an unknown run."""
        if run_id not in self._sync_of:
            with self.engine.connect() as con:
                sync_id = con.execute(select(SyncRun.sync_id).where(SyncRun.id == run_id)).scalar()
            if sync_id is None:
                raise KeyError(run_id)
            self._sync_of[run_id] = str(sync_id)
        return self._sync_of[run_id]

    def create_run(self, sync_id: str, full_resync: bool, trigger: str = "manual", sync_name: str | None = None) -> int:
        """A new run of the sync ``sync_id`` (named ``sync_name``, by default its id) in status queued;
        returns its id."""
        with self.engine.begin() as con:
            result = con.execute(
                insert(SyncRun).values(
                    sync_id=sync_id,
                    sync_name=sync_name or sync_id,
                    status=RunStatus.QUEUED,
                    trigger=trigger,
                    full_resync=full_resync,
                    created_at=_now(),
                    pid=os.getpid(),
                    host=socket.gethostname(),
                )
            )
            key = result.inserted_primary_key
            if key is None:
                raise RuntimeError("the database returned no id for the new run")
            self._sync_of[int(key[0])] = sync_id
            return int(key[0])

    def enqueue(
        self, sync_id: str, full_resync: bool, trigger: str = "manual", sync_name: str | None = None
    ) -> tuple[int, bool]:
        """The sync's queued run, and whether it is new: the one already waiting (made a full resync if
        this asks for one), or a new one. One queued run per sync is enough: when it runs, it sends
        everything that changed by then."""
        with self.engine.begin() as con:
            waiting = con.execute(
                select(SyncRun.id)
                .where(SyncRun.sync_id == sync_id, SyncRun.status == RunStatus.QUEUED)
                .order_by(SyncRun.id)
                .limit(1)
            ).scalar()
            if waiting is not None:
                if full_resync:
                    con.execute(update(SyncRun).where(SyncRun.id == waiting).values(full_resync=True))
                return int(waiting), False
        return self.create_run(sync_id, full_resync, trigger, sync_name), True

    def claim(self, run_id: int) -> bool:
        """Take a queued run to execute it, here; False when it is not queued (another process claimed it,
        or it ended)."""
        with self.engine.begin() as con:
            claimed = con.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id, SyncRun.status == RunStatus.QUEUED)
                .values(status=RunStatus.QUERYING, started_at=_now(), pid=os.getpid(), host=socket.gethostname())
            )
        return claimed.rowcount == 1

    def request_cancel(self, run_id: int) -> bool:
        """Ask a run to stop: a queued one ends at once (failed, cancelled), a started one stops sending at
        its next check. Returns False when the run had ended already."""
        with self.engine.begin() as con:
            asked = con.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id, SyncRun.finished_at.is_(None))
                .values(cancel_requested_at=_now())
            ).rowcount
        if asked and self.claim(run_id):  # it was queued: it never starts
            self.finish(run_id, RunStatus.FAILED, {}, {}, "cancelled by a user before it started")
        return bool(asked)

    def cancel_requested(self, run_id: int) -> bool:
        with self.engine.connect() as con:
            return con.execute(select(SyncRun.cancel_requested_at).where(SyncRun.id == run_id)).scalar() is not None

    def discard(self, run_id: int) -> None:
        """Delete a queued run that never started (its caller gave up on it)."""
        with self.engine.begin() as con:
            con.execute(delete(SyncRun).where(SyncRun.id == run_id, SyncRun.status == RunStatus.QUEUED))
        self._sync_of.pop(run_id, None)

    def set_status(self, run_id: int, status: str, **values: Any) -> None:
        if status == RunStatus.QUERYING:
            values.setdefault("started_at", _now())
        with self.engine.begin() as con:
            con.execute(update(SyncRun).where(SyncRun.id == run_id).values(status=status, **values))

    def note_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        """Where the run is now (``RunRecord.progress``), for those watching it from elsewhere."""
        with self.engine.begin() as con:
            con.execute(update(SyncRun).where(SyncRun.id == run_id).values(progress=progress))

    def record(self, run_id: int, outcomes: Sequence[RowOutcome] | pa.Table) -> None:
        """Append row outcomes, as one part: callers pass many rows at a time (``outcome_files.SCHEMA``'s
        columns when a table)."""
        table = outcomes if isinstance(outcomes, pa.Table) else outcome_table(outcomes)
        self.outcomes.write(self.sync_of(run_id), run_id, table)

    def tally(self, run_id: int) -> dict[str, int]:
        """Row outcomes of a run counted by status."""
        return self.outcomes.tally(self.sync_of(run_id), run_id)

    def settled_counts(self, run_id: int, planned: Mapping[str, int]) -> dict[str, int]:
        """The run's complete counts: ``planned`` and its recorded verdicts (see ``settled_counts``)."""
        return settled_counts(planned, self.tally(run_id))

    def finish(
        self,
        run_id: int,
        status: str,
        counts: dict[str, int],
        timings: dict[str, float],
        error: str | None,
        delivery: dict[str, int] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        values = {name: int(counts.get(name, 0)) for name in COUNT_NAMES}
        self.set_status(
            run_id,
            status,
            finished_at=_now(),
            timings=timings,
            error=error,
            delivery=delivery or {},
            warnings=warnings or [],
            **values,
        )

    def prune_rows(self, sync_id: str, retention_days: int | None, now: datetime | None = None) -> list[int]:
        """Delete the row outcomes of a sync's runs that finished more than ``retention_days`` ago, except
        the sync's latest run, and record when (``rows_pruned_at``); returns the pruned runs' ids. Their
        counts stay. ``None`` keeps everything."""
        if retention_days is None:
            return []
        cutoff = (now or _now()) - timedelta(days=retention_days)
        with self.engine.begin() as con:
            latest = con.execute(  # the latest run that ended (not one queued or running now)
                select(func.max(SyncRun.id)).where(SyncRun.sync_id == sync_id, SyncRun.finished_at.is_not(None))
            ).scalar()
            ids = [
                int(i)
                for i in con.execute(
                    select(SyncRun.id).where(
                        SyncRun.sync_id == sync_id,
                        SyncRun.finished_at < cutoff,
                        SyncRun.rows_pruned_at.is_(None),
                        SyncRun.id != latest,
                    )
                ).scalars()
            ]
            if ids:
                con.execute(update(SyncRun).where(SyncRun.id.in_(ids)).values(rows_pruned_at=_now()))
        self.outcomes.delete(sync_id, ids)  # after the commit: a failure leaves files, never a lie
        return ids

    def fail_abandoned(self, sync_id: str, reason: str) -> list[int]:
        """Mark runs of a sync that were started and never finished as failed (their process died); returns
        their ids. A queued run is not abandoned: it waits to be claimed.

        Each one's counts are settled from its recorded row outcomes (``settled_counts``): the planning
        counts it recorded stay, verdicts are tallied, and changes without a verdict count as
        ``retried_next_run``. Call only while holding the sync's run lock, so no live run is among them.
        """
        columns = [getattr(SyncRun, name) for name in PLANNING_COUNTS]
        with self.engine.begin() as con:
            abandoned = con.execute(
                select(SyncRun.id, *columns).where(SyncRun.sync_id == sync_id, SyncRun.status.in_(STARTED_STATUSES))
            ).all()
            for row in abandoned:
                run_id = int(row.id)
                planned = {name: int(value or 0) for name, value in row._mapping.items() if name != "id"}
                counts = settled_counts(planned, self.outcomes.tally(sync_id, run_id))
                con.execute(
                    update(SyncRun)
                    .where(SyncRun.id == run_id)
                    .values(status=RunStatus.FAILED, finished_at=_now(), error=reason, **counts)
                )
        return [int(row.id) for row in abandoned]

    # -- reading ------------------------------------------------------------------------------

    def list_runs(self, sync_id: str | None = None, status: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The newest runs, of one sync (by its id) or of all, of one status or of all."""
        query = select(SyncRun.__table__).order_by(SyncRun.id.desc()).limit(limit)
        if sync_id:
            query = query.where(SyncRun.sync_id == sync_id)
        if status:
            query = query.where(SyncRun.status == status)
        with self.engine.connect() as con:
            return [RunRecord.of(row) for row in con.execute(query).mappings()]

    def recent_runs(self, sync_ids: Sequence[str], per_sync: int) -> dict[str, list[RunRecord]]:
        """The ``per_sync`` newest runs of each of these syncs (newest first), in one query: a list of a
        hundred syncs would otherwise ask a hundred times."""
        if not sync_ids:
            return {}
        newest = (
            select(
                SyncRun.__table__,
                func.row_number().over(partition_by=SyncRun.sync_id, order_by=SyncRun.id.desc()).label("nth"),
            )
            .where(SyncRun.sync_id.in_(list(sync_ids)))
            .subquery()
        )
        query = select(newest).where(newest.c.nth <= per_sync).order_by(newest.c.id.desc())
        found: dict[str, list[RunRecord]] = {sync_id: [] for sync_id in sync_ids}
        with self.engine.connect() as con:
            for row in con.execute(query).mappings():
                found[row["sync_id"]].append(RunRecord.of(row))
        return found

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """Runs by status, and the rows of every run by count (``COUNT_NAMES``), over the whole ledger."""
        with self.engine.connect() as con:
            runs = {
                str(s): int(n) for s, n in con.execute(select(SyncRun.status, func.count()).group_by(SyncRun.status))
            }
            sums = con.execute(select(*(func.coalesce(func.sum(getattr(SyncRun, n)), 0) for n in COUNT_NAMES))).one()
        return runs, {name: int(value) for name, value in zip(COUNT_NAMES, sums, strict=True)}

    def get_run(self, run_id: int) -> RunRecord | None:
        with self.engine.connect() as con:
            row = con.execute(select(SyncRun.__table__).where(SyncRun.id == run_id)).mappings().first()
        return RunRecord.of(row) if row else None

    def rows(
        self, run_id: int, status: str | None = None, limit: int = 100, offset: int = 0, **where: str | None
    ) -> list[RowOutcome]:
        """A page of a run's row outcomes in settling order, filtered by status and ``OutcomeFilter``'s other
        fields (operation, reason_code, primary_key)."""
        try:
            sync_id = self.sync_of(run_id)
        except KeyError:
            return []
        return self.outcomes.read(sync_id, run_id, OutcomeFilter(status=status, **where), limit, offset)

    def count_rows(self, run_id: int, status: str | None = None, **where: str | None) -> int:
        """How many of a run's row outcomes the filter of ``rows`` selects."""
        try:
            sync_id = self.sync_of(run_id)
        except KeyError:
            return 0
        return self.outcomes.count(sync_id, run_id, OutcomeFilter(status=status, **where))

    # -- upgrading ----------------------------------------------------------------------------

    def adopt_legacy_rows(self) -> int:
        """Move row outcomes an earlier version kept in the metadata database (table run_rows) to the
        outcome files, run by run; returns how many runs moved. Each run's files are written before its
        rows are deleted, so an interruption repeats a run at worst."""
        with self.engine.connect() as con:
            run_ids = [int(i) for i in con.execute(select(LegacyRunRow.run_id).distinct()).scalars()]
        for run_id in run_ids:
            with self.engine.begin() as con:
                rows = con.execute(
                    select(
                        LegacyRunRow.primary_key,
                        LegacyRunRow.operation,
                        LegacyRunRow.status,
                        LegacyRunRow.reason,
                        LegacyRunRow.reason_code,
                    )
                    .where(LegacyRunRow.run_id == run_id)
                    .order_by(LegacyRunRow.id)
                ).all()
                self.outcomes.delete(self.sync_of(run_id), [run_id])  # a half-done earlier move
                self.record(run_id, [RowOutcome(*row) for row in rows])
                con.execute(delete(LegacyRunRow).where(LegacyRunRow.run_id == run_id))
        return len(run_ids)


@dataclass(frozen=True)
class RunRecord:
    """One run as the ledger keeps it: what it belongs to, how it went, its counts (``COUNT_NAMES``),
    its phase timings and delivery statistics (docs/runs.md)."""

    id: int
    sync_id: str
    sync_name: str  # the sync's name when it ran
    status: str
    trigger: str
    full_resync: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    counts: dict[str, int]
    timings: dict[str, float]
    delivery: dict[str, int]
    warnings: list[str]
    pid: int | None = None
    host: str | None = None
    mapping_fingerprint: str | None = None
    rows_pruned_at: datetime | None = None
    cancel_requested_at: datetime | None = None  # a user asked it to stop
    progress: dict[str, Any] | None = None  # while it runs: phase, total, done, phase_started_at, updated_at

    @classmethod
    def of(cls, row: Any) -> RunRecord:
        """From a ``sync_runs`` row (a mapping of its columns)."""
        return cls(
            id=int(row["id"]),
            sync_id=row["sync_id"],
            sync_name=row["sync_name"],
            status=row["status"],
            trigger=row["trigger"],
            full_resync=bool(row["full_resync"]),
            created_at=_utc(row["created_at"]),
            started_at=_utc(row["started_at"]),
            finished_at=_utc(row["finished_at"]),
            error=row["error"],
            counts={name: int(row[name] or 0) for name in COUNT_NAMES},
            timings=dict(row["timings"] or {}),
            delivery=dict(row["delivery"] or {}),
            warnings=list(row["warnings"] or []),
            pid=row["pid"],
            host=row["host"],
            mapping_fingerprint=row["mapping_fingerprint"],
            rows_pruned_at=_utc(row["rows_pruned_at"]),
            cancel_requested_at=_utc(row["cancel_requested_at"]),
            progress=row["progress"],
        )

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON data (times in ISO 8601)."""
        data = asdict(self)
        for key in ("created_at", "started_at", "finished_at", "rows_pruned_at", "cancel_requested_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


MaybeTime = TypeVar("MaybeTime", datetime, None)


def _utc(value: MaybeTime) -> MaybeTime:
    # SQLite gives naive datetimes back: every time the ledger writes is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)
