"""One sync run, phase by phase, as DESIGN.md draws it:

    source.read(model) -> cdc.plan(snapshot) -> mapping -> iterable writer -> ledger -> cdc.commit

Each phase is a function of its own; ``run_sync`` only strings them together and turns a failure at
any point into a failed run whose every row is still accounted for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from smartingest.cdc.base import ChangeCounts, ChangeDetector, ChangeSet, HashSpec, Identity
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.cdc.lightning import LightningChangeDetector
from smartingest.cdc.state_store import LocalStateStore, S3StateStore
from smartingest.cdc.switch import EngineSwitch
from smartingest.codes import RowStatus, RunStatus
from smartingest.config.models import (
    DEFAULT_CDC_MEMORY_LIMIT,
    AlertChannel,
    DestinationConfig,
    ModelConfig,
    RateLimiterConfig,
    RedisRateLimiterConfig,
    S3StateStoreConfig,
    SourceConfig,
    StateStoreConfig,
    SyncBase,
)
from smartingest.engine import alerts
from smartingest.engine.allocator import use_returning_allocator
from smartingest.engine.destination import CHECK_POLICY
from smartingest.engine.lease import LEASE_SECONDS, Lease, sync_lease
from smartingest.engine.ledger import Ledger, RowOutcome
from smartingest.engine.lock import sync_lock
from smartingest.engine.progress import NoProgress, Progress, RecordedProgress
from smartingest.engine.resend import resend_note
from smartingest.engine.settler import CHANGE_BATCH_ROWS, Settler
from smartingest.errors import RunNotQueuedError, SmartIngestError, SyncLockedError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.ratelimit import LocalPacing, Pacing, RedisPacing
from smartingest.iterable.writer import Record
from smartingest.mapping.kinds import RunInfo
from smartingest.sources.base import Source, check_primary_key
from smartingest.sources.registry import open_source
from smartingest.synctypes.base import Decided, SendsFieldsAlone, TypePlan
from smartingest.synctypes.registry import sync_type

log = logging.getLogger(__name__)

INVALID_PART_ROWS = 100_000


@dataclass(frozen=True)
class SyncTarget:
    """Everything a run needs to know about one sync, resolved from the project. Its runs, CDC state and
    lock belong to ``id``; ``name`` is for people (messages, what runs record it was called)."""

    id: str
    name: str
    sync: SyncBase
    model_id: str
    model: ModelConfig
    source_name: str
    source: SourceConfig
    destination: DestinationConfig
    cdc_memory_limit: str = DEFAULT_CDC_MEMORY_LIMIT
    row_outcomes_retention_days: int | None = 30
    checkpoint_rows: int = 100_000
    checkpoint_seconds: float = 60.0
    lease_seconds: float = LEASE_SECONDS
    alerts: list[AlertChannel] = field(default_factory=list)  # where a change of the sync's state is told
    state_store: StateStoreConfig | None = None  # None: the state directory only
    rate_limiter: RateLimiterConfig | None = None  # None: each process paces its own requests

    @property
    def sync_type(self) -> str:
        """The sync's type name (users, events...)."""
        return str(getattr(self.sync, "type", ""))


@dataclass
class RunResult:
    """What a run did: its status, counts and per-phase timings (seconds)."""

    run_id: int
    sync_name: str
    status: str
    counts: dict[str, int]
    timings: dict[str, float]
    error: str | None = None
    delivery: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rows_read: int | None = None  # rows planning read out of the source (None: planning did not happen)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "sync": self.sync_name,
            "status": self.status,
            "counts": self.counts,
            "timings": self.timings,
            "delivery": self.delivery,
            "warnings": self.warnings,
            "error": self.error,
            "rows_read": self.rows_read,
        }


@dataclass
class PlanResult:
    """What the next run would do, computed without sending anything."""

    sync_name: str
    counts: ChangeCounts
    sample_requests: list[dict[str, Any]]
    invalid_samples: list[dict[str, Any]]
    rejected_samples: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    destination: str = ""
    destination_ok: bool = False
    request: str = ""  # the request the sample bodies are for ("POST /api/users/bulkUpdate")

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync": self.sync_name,
            "counts": asdict(self.counts),
            "destination": {"ok": self.destination_ok, "message": self.destination},
            "warnings": self.warnings,
            "request": self.request,
            "sample_requests": self.sample_requests,
            "invalid_samples": self.invalid_samples,
            "rejected_samples": self.rejected_samples,
        }


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)


def detector_for(
    source: SourceConfig,
    state_dir: Path,
    memory_limit: str = DEFAULT_CDC_MEMORY_LIMIT,
    state_store: StateStoreConfig | None = None,
    source_name: str = "source",
) -> ChangeDetector:
    """The CDC engine the source is configured with (carrying the snapshot over after a switch), its local
    state kept in ``state_store`` (default: locally)."""
    store = S3StateStore(state_store) if isinstance(state_store, S3StateStoreConfig) else LocalStateStore()
    directory = Path(state_dir) / "cdc"
    basic = BasicChangeDetector(directory, memory_limit=memory_limit, store=store)

    def lightning() -> LightningChangeDetector:
        connection = open_source(source_name, source)
        return LightningChangeDetector(connection, source.type, directory, source.planner_schema, memory_limit)

    return EngineSwitch(source.engine, basic, lightning)


# -- phases -------------------------------------------------------------------------------------------


def prepare(
    target: SyncTarget, run_id: int | None = None, started_at: dt.datetime | None = None
) -> tuple[Source, TypePlan, HashSpec]:
    """Open the source and compile the sync's type against the model's schema; sync-level errors surface
    here (a missing column, a bad mapping, bad SQL), before any row moves. ``run_id`` and ``started_at``
    are the run's, for variable mappings (a plan has no run)."""
    source = open_source(target.source_name, target.source)
    schema = source.schema(target.model)
    check_primary_key(schema, target.model)
    run = RunInfo(target.name, target.sync.model, run_id, started_at, target.id, target.model_id)
    plan = sync_type(target.sync_type).compile(target.sync, schema, f"syncs.{target.name}", run)
    matching = plan.matching
    identity = Identity(matching.column, matching.field, matching.ignore_case, matching.trim) if matching else None
    key = target.model.key_columns
    parts = plan.field_parts() if isinstance(plan, SendsFieldsAlone) else None
    spec = HashSpec(
        key[0] if len(key) == 1 else tuple(key),
        tuple(plan.source_columns),
        plan.fingerprint,
        identity,
        baseline(target, matching.field if matching else None),
        tuple(sorted(parts.items())) if parts else (),
    )
    return source, plan, spec


def baseline(target: SyncTarget, identifier: str | None) -> str:
    """What a sync's snapshot belongs to: the destination project, the sync type and the identifier.

    The API key names the project, so it takes part, as a digest (never the key itself).
    """
    destination = target.destination
    key_digest = hashlib.sha256(destination.api_key.get_secret_value().encode()).hexdigest()[:12]
    doc = {
        "destination": f"{destination.url} (API key sha256 {key_digest})",
        "sync type": target.sync_type,
        "identifier": identifier,
    }
    return json.dumps(doc, sort_keys=True)


def key_warnings(schema: pa.Schema, model: ModelConfig) -> list[str]:
    """Warnings about the model's key that are not errors: floating-point keys compare by exact value."""
    warnings = []
    for column in model.key_columns:
        if column in schema.names and pa.types.is_floating(schema.field(column).type):
            warnings.append(
                f"primary key column {column!r} is floating-point: keys are compared by exact value, so a value "
                "recomputed with rounding noise counts as a new row; prefer an integer or text key"
            )
    return warnings


def record_invalid(change_set: ChangeSet, ledger: Ledger, run_id: int) -> None:
    """List every invalid row (null or duplicated key, shared identifier) in the ledger with its reason."""
    batch: list[RowOutcome] = []
    for row in change_set.invalid_rows():
        batch.append(RowOutcome(row.pk, "invalid", RowStatus.INVALID, row.reason, row.code))
        if len(batch) >= INVALID_PART_ROWS:
            ledger.record(run_id, batch)
            batch = []
    ledger.record(run_id, batch)


async def deliver(
    change_set: ChangeSet,
    plan: TypePlan,
    target: SyncTarget,
    settler: Settler,
    stats: dict[str, int],
    warnings: list[str],
    cancelled: Callable[[], bool] = lambda: False,
) -> str | None:
    """Map and send every change; returns why sending stopped early (Iterable unavailable, or the run was
    cancelled: ``cancelled`` is asked before each batch of changes), if it did.

    First the sync type prepares the destination (creates what it needs, reads what refines the plan,
    such as field types) with a short retry budget, on a client of its own: ``stats`` count only what
    carried rows. ``warnings`` receives what it found. ``stats`` receives what delivery met
    (``IterableClient.stats``: requests and how each ended, retries by cause, splits, rows_sent;
    docs/runs.md defines them), even when delivery fails.

    ``max_concurrent_requests`` senders take requests from a bounded queue, so mapping the next batch
    overlaps with sending and memory stays bounded. Raises DestinationAuthError on a refused API key
    (the other requests in flight are cancelled; their rows stay without a verdict).
    """
    async with IterableClient(target.destination, policy=CHECK_POLICY, pacing=pacing_for(target)) as checks:
        warnings += await plan.prepare_destination(checks)
    concurrency = target.destination.max_concurrent_requests
    queue: asyncio.Queue[Sequence[Record] | None] = asyncio.Queue(maxsize=concurrency * 2)
    async with IterableClient(target.destination, pacing=pacing_for(target)) as client:
        writer = plan.writer(client)

        async def send() -> None:
            while (request := await queue.get()) is not None:
                settler.settle_outcomes(await writer.deliver(request))

        batches = iter(change_set.changes(CHANGE_BATCH_ROWS))

        def next_mapped() -> tuple[list[Sequence[Record]], list[Decided]] | None:
            changes = next(batches, None)
            if changes is None:
                return None
            records, decided = plan.map_changes(changes)
            return list(writer.batches(records)), decided

        stopped: list[str] = []
        asked = [time.monotonic()]

        async def was_cancelled(now: bool = False) -> bool:
            # Asked of the ledger at most every CANCEL_CHECK_SECONDS: a query, not a cost per request.
            if not now and time.monotonic() - asked[0] < CANCEL_CHECK_SECONDS:
                return False
            asked[0] = time.monotonic()
            if await asyncio.to_thread(cancelled):
                stopped.append(CANCELLED)  # the requests in flight finish; nothing more is sent
                return True
            return False

        async def produce() -> None:
            # Reading, mapping and grouping into requests run on a worker thread: Arrow and DuckDB do most of
            # it without holding the interpreter, so the next batch is built while this thread sends.
            while not await was_cancelled(now=True):
                if (mapped := await asyncio.to_thread(next_mapped)) is None:
                    break
                requests, decided = mapped
                settler.settle(decided)
                for request in requests:
                    if await was_cancelled():
                        break
                    await queue.put(request)
                if stopped:
                    break
            for _ in range(concurrency):
                await queue.put(None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(concurrency):
                    group.create_task(send())
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        finally:
            stats.update(client.stats)
        return stopped[0] if stopped else client.unavailable


def pacing_for(target: SyncTarget) -> Pacing:
    """How the run's requests are paced: in this process, or shared with every process sending to the
    same Iterable project (its address and API key, as a digest) through Redis."""
    if not isinstance(target.rate_limiter, RedisRateLimiterConfig):
        return LocalPacing()
    destination = target.destination
    secret = f"{destination.url} {destination.api_key.get_secret_value()}"
    return RedisPacing(target.rate_limiter.url, hashlib.sha256(secret.encode()).hexdigest()[:16])


def final_status(counts: dict[str, int], error: str | None) -> RunStatus:
    """failed on a sync-level error; warning when some rows were invalid, rejected or left for later."""
    if error:
        return RunStatus.FAILED
    if any(counts.get(name, 0) for name in ("invalid", "rejected", "retried_next_run", "deferred")):
        return RunStatus.WARNING
    return RunStatus.SUCCEEDED


# -- the run ------------------------------------------------------------------------------------------


def run_sync(
    target: SyncTarget,
    ledger: Ledger,
    state_dir: Path,
    full_resync: bool = False,
    progress: Progress | None = None,
    trigger: str = "manual",
) -> RunResult:
    """Run a sync once, now, and return its result: its queued run (one waiting already, or a new one),
    executed here. A sync-level problem gives a failed run, not an exception.

    Raises SyncLockedError when another run of the sync is in progress (see ``execute_run``); a run this
    call queued is then withdrawn, so a refused ``sync run`` leaves no run behind.
    """
    run_id, new = ledger.enqueue(target.id, full_resync, trigger, sync_name=target.name)
    try:
        return execute_run(target, ledger, state_dir, run_id, progress)
    except SyncLockedError:
        if new:
            ledger.discard(run_id)
        raise


def execute_run(
    target: SyncTarget, ledger: Ledger, state_dir: Path, run_id: int, progress: Progress | None = None
) -> RunResult:
    """Claim the queued run ``run_id`` of ``target`` and execute it here; a sync-level problem gives a
    failed run, not an exception.

    Raises SyncLockedError when another run of the sync is in progress, on any machine sharing the
    metadata database (the sync's lease) or in this state directory (its lock): the run stays queued and
    waits. Raises RunNotQueuedError when the run is not queued (another process claimed it, or it ended).
    """
    use_returning_allocator()
    lease_of = sync_lease(
        ledger.engine, target.id, target.name, "run", target.lease_seconds, renew=target.lease_seconds / 4
    )
    with lease_of as lease, sync_lock(state_dir, target.id):
        # Holding the lease, no other process runs the sync: a run started and not finished was abandoned.
        ledger.fail_abandoned(target.id, INTERRUPTED)
        ledger.prune_rows(target.id, target.row_outcomes_retention_days)
        if not ledger.claim(run_id):
            raise RunNotQueuedError(f"run #{run_id} is not queued: another process claimed it, or it ended")
        lease.attach(run_id)
        record = ledger.get_run(run_id)
        full_resync = bool(record and record.full_resync)
        watched = RecordedProgress(ledger, run_id, progress or NoProgress())
        run = _Run(target, ledger, state_dir, watched, run_id, lease)
        try:
            run.execute(full_resync)
        finally:
            watched.flush()
            result = run.finish()
    if result.error != CANCELLED:  # a user's cancel says nothing of the sync's health
        alerts.after_run(
            ledger.engine,
            target.id,
            target.name,
            result.run_id,
            str(result.status),
            result.counts,
            result.error,
            target.sync.alert_rejected_percent,
            target.alerts,
        )
    return result


INTERRUPTED = "interrupted: the process stopped before the run finished; its rows are sent again"
CANCEL_CHECK_SECONDS = 1.0
CANCELLED = "cancelled by a user: what was acknowledged is committed; the unsent rows are sent by the next run"
LEASE_LOST = (
    "the run could not renew its lease on the sync in time (the metadata database did not answer, or the process "
    "was suspended) and another process may run the sync now: nothing more of this run was committed; its rows "
    "are sent again by the next run"
)


class _Run:
    """The state of one run while its phases execute; ``finish`` always records how it ended."""

    def __init__(
        self, target: SyncTarget, ledger: Ledger, state_dir: Path, progress: Progress, run_id: int, lease: Lease
    ) -> None:
        self.lease = lease
        self.target = target
        self.ledger = ledger
        self.state_dir = state_dir
        self.progress = progress
        self.run_id = run_id
        self.timer = _Timer()
        self.change_set: ChangeSet | None = None
        self.counts: dict[str, int] = {}
        self.delivery: dict[str, int] = {}
        self.warnings: list[str] = []
        self.error: str | None = None

    def execute(self, full_resync: bool) -> None:
        try:
            with self.timer.phase("prepare"):
                started_at = dt.datetime.now(dt.UTC)
                self.ledger.set_status(self.run_id, RunStatus.QUERYING, started_at=started_at)
                source, plan, spec = prepare(self.target, self.run_id, started_at)
                self.ledger.set_status(
                    self.run_id, RunStatus.QUERYING, started_at=started_at, mapping_fingerprint=plan.fingerprint
                )
            with self.timer.phase("query_and_plan"):
                self.progress.phase("reading")
                target = self.target
                detector = detector_for(
                    target.source, self.state_dir, target.cdc_memory_limit, target.state_store, target.source_name
                )
                self.change_set = detector.plan(
                    self.target.id, source, self.target.model, spec, full_resync, self.progress.advance
                )
                self.counts.update(asdict(self.change_set.counts))
                self.warnings += [m for m in (self.change_set.new_baseline, resend_note(self.change_set, plan)) if m]
                record_invalid(self.change_set, self.ledger, self.run_id)
            self.ledger.set_status(self.run_id, RunStatus.IN_PROGRESS, **self.counts)
            with self.timer.phase("deliver"):
                self.progress.phase("sending", self.change_set.counts.to_send)
                settler = Settler(
                    self.change_set,
                    self.ledger,
                    self.run_id,
                    self.progress,
                    self.target.checkpoint_rows,
                    self.target.checkpoint_seconds,
                    may_commit=lambda: self.lease.held,
                )
                try:
                    self.error = asyncio.run(
                        deliver(
                            self.change_set,
                            plan,
                            self.target,
                            settler,
                            self.delivery,
                            self.warnings,
                            cancelled=lambda: self.ledger.cancel_requested(self.run_id),
                        )
                    )
                except SmartIngestError as exc:
                    self.error = str(exc)
                finally:
                    try:
                        # Whatever stopped delivery, every row it did not reach is kept for the next run.
                        settler.settle_unsent(f"not sent: {self.error or 'the run stopped before sending it'}")
                    finally:
                        settler.close()  # nothing writes to the change set once it commits
        except SmartIngestError as exc:
            self.error = str(exc)
        except KeyboardInterrupt:
            self.error = "cancelled (interrupted by the user); unsent rows are sent by the next run"
            raise
        except Exception as exc:  # a bug: the run still ends visibly, then the traceback surfaces
            self.error = f"internal error: {type(exc).__name__}: {exc}"
            raise

    def finish(self) -> RunResult:
        """Commit what Iterable acknowledged, count verdicts, and record the run's end."""
        if self.change_set is not None:
            with self.timer.phase("commit"):
                try:
                    if self.lease.held:
                        self.change_set.commit()
                    else:
                        self.error = self.error or LEASE_LOST
                finally:
                    self.change_set.close()
        # Complete whatever stopped the run: planning counts are 0 when planning never happened.
        self.counts = self.ledger.settled_counts(self.run_id, self.counts)
        self.timer.timings["total"] = round(sum(self.timer.timings.values()), 3)
        status = final_status(self.counts, self.error)
        self.ledger.finish(
            self.run_id, status, self.counts, self.timer.timings, self.error, self.delivery, self.warnings
        )
        return RunResult(
            self.run_id,
            self.target.name,
            status,
            dict(self.counts),
            self.timer.timings,
            self.error,
            self.delivery,
            list(self.warnings),
            self.change_set.rows_read if self.change_set is not None else None,
        )
