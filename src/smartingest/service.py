"""The operations every front end calls (the CLI now; the REST API and web UI later).

No logic lives in the front ends: they parse arguments, call one function here and print the result.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, get_args

import pyarrow as pa
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from smartingest.codes import RunStatus
from smartingest.config.loader import format_validation_error, with_sync
from smartingest.config.models import (  # noqa: F401 - DEFAULT_PLANNER_SCHEMA: for the front ends
    DEFAULT_PLANNER_SCHEMA,
    DestinationConfig,
    ModelConfig,
    ProjectConfig,
    SourceConfig,
    require,
)
from smartingest.config.syncs import SYNC_MODELS, CatalogFieldType, placeholder_mappings
from smartingest.engine import destination, probe
from smartingest.engine.destination import DestinationCheck
from smartingest.engine.lease import sync_lease
from smartingest.engine.ledger import Ledger, RowOutcome, RunRecord
from smartingest.engine.lock import sync_lock
from smartingest.engine.one_row import RowTest, try_row
from smartingest.engine.outcome_files import OutcomeFiles
from smartingest.engine.pipeline import (  # front ends print PlanResult and RunResult as service.X
    PlanResult,
    RunResult,
    SyncTarget,
    detector_for,
    run_sync,
)
from smartingest.engine.pipeline import execute_run as execute_sync_run
from smartingest.engine.planning import plan_sync
from smartingest.engine.progress import Progress
from smartingest.engine.quota import QuotaUsage, check_quota, record_deletion
from smartingest.engine.quota import usage as quota_of
from smartingest.engine.schedules import latest_slot, next_slot
from smartingest.engine.slots import claim_slot
from smartingest.engine.statuses import sync_status
from smartingest.engine.suggest import Suggestions
from smartingest.engine.suggest import suggest_mappings as suggest
from smartingest.errors import ConfigError, SourceError, StateError, UnknownNameError
from smartingest.repository.base import (
    KINDS,
    SECTIONS,
    Kind,
    Repository,
    plain_definition,
    settings_definition,
    settings_of,
)
from smartingest.repository.database import DatabaseRepository
from smartingest.repository.project_file import ProjectFileRepository
from smartingest.repository.secrets import new_key, secret_box
from smartingest.store import tokens
from smartingest.store.db import open_database, sqlite_url

DEFAULT_PROJECT = "smartingest.yaml"
HOME_ENV = "SMARTINGEST_HOME"
DATABASE_ENV = "SMARTINGEST_DATABASE_URL"


@dataclass
class Workspace:
    """An opened project: its definitions and where they live, where its state lives, its run ledger."""

    config: ProjectConfig
    project_dir: Path
    home: Path
    state_dir: Path
    ledger: Ledger
    repository: Repository


def open_workspace(project: str | Path | None = None, home: str | Path | None = None) -> Workspace:
    """Open a project: its definitions from the project file ``project`` (config as code; by default
    ./smartingest.yaml when it exists), else from the metadata database; and its metadata database.

    SMARTINGEST_HOME (default ./.smartingest) holds the metadata database and CDC state unless the
    project's database_url / state_dir (or SMARTINGEST_DATABASE_URL) say otherwise. Raises ConfigError.
    """
    home_dir = Path(home or os.environ.get(HOME_ENV) or ".smartingest").resolve()
    try:
        home_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {HOME_ENV} directory {home_dir}: {exc.strerror}") from exc
    if project is None and Path(DEFAULT_PROJECT).exists():
        project = DEFAULT_PROJECT
    if project is not None:
        project_path = Path(project)
        repository: Repository = ProjectFileRepository(project_path)
        config = repository.load()
        project_dir = project_path.resolve().parent
        url = config.database_url or os.environ.get(DATABASE_ENV) or sqlite_url(home_dir / "metadata.db")
        engine = open_database(url)
        # A project file is checked whole against the quota (the database's writes are, one by one).
        nothing = config.model_copy(update={"syncs": {}})
        check_quota(engine, config.sync_quota, config, nothing, dt.datetime.now(dt.UTC))
    else:
        project_dir = Path.cwd()
        engine = open_database(os.environ.get(DATABASE_ENV) or sqlite_url(home_dir / "metadata.db"))
        repository = DatabaseRepository(engine, secret_box(home_dir))
        config = repository.load()
    for name, source in config.sources.items():
        probe.check_settings(name, source)  # connector settings fail now, not mid-run
    state_dir = (project_dir / config.state_dir).resolve() if config.state_dir else home_dir / "state"
    ledger = Ledger(engine, OutcomeFiles(state_dir / "outcomes"))
    ledger.adopt_legacy_rows()
    return Workspace(config, project_dir, home_dir, state_dir, ledger, repository)


def sync_target(ws: Workspace, name: str) -> SyncTarget:
    """Resolve a sync and what it refers to; raises UnknownNameError listing the syncs defined."""
    sync = require(ws.config.syncs, name, "sync")
    model = ws.config.models[sync.model]
    return SyncTarget(
        id=ws.config.sync_id(name),
        name=name,
        sync=sync,
        model_id=ws.config.model_id(sync.model),
        model=model,
        source_name=model.source,
        source=ws.config.sources[model.source],
        destination=ws.config.destinations[sync.destination],
        cdc_memory_limit=ws.config.cdc_memory_limit,
        row_outcomes_retention_days=ws.config.row_outcomes_retention_days,
        checkpoint_rows=ws.config.checkpoint_rows,
        checkpoint_seconds=ws.config.checkpoint_seconds,
        lease_seconds=ws.config.lease_seconds,
        state_store=ws.config.state_store,
        rate_limiter=ws.config.pacing,
        alerts=list(ws.config.alerts),
    )


@dataclass(frozen=True)
class SyncSummary:
    """A sync as a list shows it: what it joins, when it runs, how it last ran, how many rows it holds."""

    name: str
    id: str
    model: str
    destination: str
    type: str
    schedule: str  # manual, "every 15m" or a cron expression
    last_run: RunRecord | None
    snapshot_rows: int | None  # rows in its CDC snapshot (None: this version cannot read its engine's)
    enabled: bool = True
    next_run: dt.datetime | None = None  # its schedule's next slot (None: manual, or disabled)
    status: str = "Pending"  # as Smart Ingest shows it (engine/statuses.py)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_run"] = self.last_run.as_dict() if self.last_run else None
        data["next_run"] = self.next_run.isoformat() if self.next_run else None
        return data


SUMMARY_RUNS = 5  # a sync's newest runs its summary reads: an active run and the last ended one


def list_syncs(ws: Workspace) -> list[SyncSummary]:
    """Every sync with its model, destination, type, schedule, last run and CDC snapshot size."""
    recent = ws.ledger.recent_runs([ws.config.sync_id(name) for name in ws.config.syncs], SUMMARY_RUNS)
    return [sync_summary(ws, name, recent[ws.config.sync_id(name)]) for name in ws.config.syncs]


def sync_summary(ws: Workspace, name: str, runs: list[RunRecord] | None = None) -> SyncSummary:
    """One sync as a list shows it (``runs``: its ``SUMMARY_RUNS`` newest, when already read); raises
    UnknownNameError listing the syncs defined."""
    target = sync_target(ws, name)
    sync = ws.config.syncs[name]
    if runs is None:
        runs = ws.ledger.list_runs(sync_id=target.id, limit=SUMMARY_RUNS)
    last = [run for run in runs if run.finished_at is not None][:1]
    try:
        detector = detector_for(
            target.source, ws.state_dir, state_store=target.state_store, source_name=target.source_name
        )
        snapshot_rows: int | None = detector.snapshot_size(target.id)
    except (ConfigError, StateError, SourceError):  # an engine it cannot run, a store or source not answering
        snapshot_rows = None
    schedule = sync.schedule
    return SyncSummary(
        name=name,
        id=target.id,
        model=sync.model,
        destination=sync.destination,
        type=sync.type,
        schedule="manual" if schedule.manual else (f"every {schedule.every}" if schedule.every else str(schedule.cron)),
        last_run=last[0] if last else None,
        snapshot_rows=snapshot_rows,
        enabled=sync.enabled,
        next_run=next_slot(schedule, dt.datetime.now(dt.UTC)) if sync.enabled else None,
        status=str(sync_status(sync.enabled, runs)),
    )


def plan(ws: Workspace, name: str, samples: int = 3) -> PlanResult:
    """What the next run of a sync would send; sends nothing and changes no state."""
    return plan_sync(sync_target(ws, name), ws.state_dir, ws.ledger.engine, samples)


def suggest_mappings(ws: Workspace, name: str) -> Suggestions:
    """Mappings for every column of a sync's model, from the column names and the destination's fields;
    changes nothing."""
    target = sync_target(ws, name)
    return suggest(target, probe.model_schema(target.source_name, target.source, target.model))


def suggest_draft_mappings(ws: Workspace, name: str, definition: Mapping[str, Any]) -> Suggestions:
    """``suggest_mappings`` for a sync as an editor holds it (not saved), its mappings perhaps not chosen
    yet. Raises ConfigError naming the key at fault in the rest of it."""
    body = dict(definition)
    if not body.get("mappings"):  # suggestions replace them
        model = ws.config.models.get(str(body.get("model")))
        body["mappings"] = placeholder_mappings(body, model.key_columns[0] if model else "id")
    draft = replace(ws, config=with_sync(ws.config, name, body))
    return suggest_mappings(draft, name)


def test_row(ws: Workspace, name: str, primary_key: str | None, send: bool = False) -> RowTest:
    """The exact request the sync would send for one row of its model (its primary key as runs show it;
    None: the model's first row); with ``send``, sent, with Iterable's answer. Leaves the sync's CDC state
    and runs as they are."""
    return try_row(sync_target(ws, name), primary_key, send)


def preview_sync(ws: Workspace, name: str, definition: Mapping[str, Any], primary_key: str | None = None) -> RowTest:
    """The request a sync defined as ``definition`` (its keys as in a project file; not saved: what a sync
    editor holds) would send for one row of its model: the row of ``primary_key``, or the model's first
    row. Templates are rendered, mappings checked against the model and the destination's field types.
    Sends nothing and changes nothing. Raises ConfigError or MappingError naming the key at fault, and
    what ``test_row`` raises."""
    draft = replace(ws, config=with_sync(ws.config, name, definition))
    return try_row(sync_target(draft, name), primary_key)


def run(ws: Workspace, name: str, full_resync: bool = False, progress: Progress | None = None) -> RunResult:
    """Run a sync now. A sync-level problem gives a failed run (see RunResult.error), not an exception."""
    return run_sync(sync_target(ws, name), ws.ledger, ws.state_dir, full_resync=full_resync, progress=progress)


def enqueue_run(ws: Workspace, name: str, full_resync: bool = False, trigger: str = "manual") -> int:
    """Queue a run of a sync for a worker to execute (``execute_run``); returns its id. A run already
    queued for the sync is the one returned (a full resync if either asked for one)."""
    target = sync_target(ws, name)
    run_id, _new = ws.ledger.enqueue(target.id, full_resync, trigger, sync_name=target.name)
    return run_id


def execute_run(ws: Workspace, run_id: int, progress: Progress | None = None) -> RunResult:
    """Claim a queued run and execute it here. Raises SyncLockedError while another run of its sync is in
    progress (the run stays queued), RunNotQueuedError when it is not queued, UnknownNameError when its
    sync is no longer defined."""
    record = ws.ledger.get_run(run_id)
    if record is None:
        raise UnknownNameError(f"no run #{run_id} (see `smartingest runs list`)")
    name = ws.config.sync_named(record.sync_id)
    if name is None:
        message = f"run #{run_id} belongs to sync id {record.sync_id!r}, which is no longer defined"
        if ws.ledger.claim(run_id):  # it can never run: it ends, failed, rather than wait forever
            ws.ledger.finish(run_id, RunStatus.FAILED, {}, {}, message)
        raise UnknownNameError(message)
    return execute_sync_run(sync_target(ws, name), ws.ledger, ws.state_dir, run_id, progress)


def schedule_tick(ws: Workspace, now: dt.datetime | None = None) -> list[int]:
    """Queue a run of every enabled, scheduled sync whose latest slot (``engine/schedules.py``) has not been
    queued yet: once per slot, whatever the number of schedulers calling this, and once after any downtime
    (not once per slot missed). Returns the runs queued. ``now`` (UTC) is for tests."""
    moment = now or dt.datetime.now(dt.UTC)
    queued = []
    for name, sync in ws.config.syncs.items():
        slot = latest_slot(sync.schedule, moment)
        if not sync.enabled or slot is None:
            continue
        sync_id = ws.config.sync_id(name)
        if claim_slot(ws.ledger.engine, sync_id, slot):
            run_id, _new = ws.ledger.enqueue(sync_id, False, trigger="schedule", sync_name=name)
            queued.append(run_id)
    return queued


def queued_runs(ws: Workspace, limit: int = 100) -> list[int]:
    """The runs waiting to be executed, oldest first."""
    return [run.id for run in reversed(ws.ledger.list_runs(None, "queued", limit))]


def cancel_run(ws: Workspace, run_id: int) -> bool:
    """Ask a run to stop: a queued one ends at once; a running one stops sending within a second or so of
    its delivery (what Iterable acknowledged is committed, the rest is sent by the next run). Returns
    False when the run had ended already; UnknownNameError for no such run."""
    if ws.ledger.get_run(run_id) is None:
        raise UnknownNameError(f"no run #{run_id} (see `smartingest runs list`)")
    return ws.ledger.request_cancel(run_id)


def reset(ws: Workspace, name: str) -> bool:
    """Forget a sync's CDC snapshot (sends nothing); the next run sends every row. Returns whether one existed."""
    target = sync_target(ws, name)
    with sync_lease(ws.ledger.engine, target.id, name, "reset"), sync_lock(ws.state_dir, target.id):
        return detector_for(
            target.source, ws.state_dir, state_store=target.state_store, source_name=target.source_name
        ).reset(target.id)


def list_runs(ws: Workspace, sync: str | None = None, status: str | None = None, limit: int = 20) -> list[RunRecord]:
    """The newest runs, of one sync (by its name: its runs under earlier names included) or of all."""
    if sync is not None:
        require(ws.config.syncs, sync, "sync")
        return ws.ledger.list_runs(ws.config.sync_id(sync), status, limit)
    return ws.ledger.list_runs(None, status, limit)


def run_totals(ws: Workspace) -> tuple[dict[str, int], dict[str, int]]:
    """Runs by status, and rows by count name, over every run the metadata database holds (for metrics)."""
    return ws.ledger.totals()


def get_run(ws: Workspace, run_id: int) -> RunRecord | None:
    return ws.ledger.get_run(run_id)


def run_rows(
    ws: Workspace,
    run_id: int,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
    *,
    operation: str | None = None,
    reason_code: str | None = None,
    primary_key: str | None = None,
) -> list[RowOutcome]:
    """A page of a run's row outcomes in settling order, filtered by status, operation, reason code and
    primary key (its text exactly; a composite key's is a JSON array)."""
    where = {"operation": operation, "reason_code": reason_code, "primary_key": primary_key}
    return ws.ledger.rows(run_id, status, limit, offset, **where)


def count_rows(
    ws: Workspace,
    run_id: int,
    status: str | None = None,
    *,
    operation: str | None = None,
    reason_code: str | None = None,
    primary_key: str | None = None,
) -> int:
    """How many row outcomes ``run_rows`` with the same filter pages through."""
    where = {"operation": operation, "reason_code": reason_code, "primary_key": primary_key}
    return ws.ledger.count_rows(run_id, status, **where)


def key_columns(ws: Workspace, sync_id: str) -> list[str]:
    """The primary-key columns of the model of the sync with this id (empty when the project no longer
    defines it)."""
    name = ws.config.sync_named(sync_id)
    return ws.config.models[ws.config.syncs[name].model].key_columns if name is not None else []


def row_counts(ws: Workspace, run_id: int) -> dict[str, int]:
    """How many row outcomes a run has, by status."""
    return ws.ledger.tally(run_id)


SOURCE_TYPES = probe.SOURCE_TYPES
SYNC_TYPES = SYNC_MODELS  # sync type -> the model of its settings (what a sync editor asks)
CATALOG_FIELD_TYPES: tuple[str, ...] = get_args(CatalogFieldType)  # what a catalog sync's field_types may say


def source_settings(source_type: str) -> type[BaseModel]:
    """The settings a source of this type takes (a pydantic model: what a form asks). Raises ConfigError
    for an unknown type, MissingDriverError when its driver is not installed."""
    return probe.source_settings(source_type)


def check_source_definition(ws: Workspace, name: str, definition: Mapping[str, Any]) -> None:
    """Connect with a source as an editor holds it (not saved; a secret left ``MASKED`` is the one stored
    for ``name``) and run a trivial query. Raises ConfigError naming the key at fault, or the SourceError
    that says what is wrong."""
    try:
        source = SourceConfig.model_validate(_unmasked(ws, "source", name, definition))
    except ValidationError as exc:
        raise ConfigError(f"sources.{name}: {format_validation_error(exc)}") from exc
    probe.check_connection(name, source)


def check_destination_definition(ws: Workspace, name: str, definition: Mapping[str, Any]) -> DestinationCheck:
    """Ask Iterable for the project's user fields with a destination as an editor holds it (not saved; a
    key left ``MASKED`` is the one stored for ``name``). Raises ConfigError naming the key at fault."""
    try:
        config = DestinationConfig.model_validate(_unmasked(ws, "destination", name, definition))
    except ValidationError as exc:
        raise ConfigError(f"destinations.{name}: {format_validation_error(exc)}") from exc
    return destination.check_destination(config)


def check_source(ws: Workspace, name: str) -> None:
    """Connect to a source and run a trivial query; raises a SourceError saying what is wrong."""
    probe.check_connection(name, require(ws.config.sources, name, "source"))


def preview_model(ws: Workspace, name: str, limit: int = probe.PREVIEW_ROWS) -> pa.Table:
    """The first rows of a model."""
    model = require(ws.config.models, name, "model")
    return probe.preview_model(model.source, ws.config.sources[model.source], model, limit)


def preview_rows(ws: Workspace, name: str, limit: int = probe.PREVIEW_ROWS) -> list[dict[str, Any]]:
    """The first rows of a model as Python values for showing (dates Python cannot hold become text)."""
    return probe.python_rows(preview_model(ws, name, limit))


def source_tables(ws: Workspace, name: str) -> list[str]:
    """The tables and views a model on the source ``name`` could read (for a table picker)."""
    return probe.source_tables(name, require(ws.config.sources, name, "source"))


@dataclass(frozen=True)
class ModelPreview:
    """A model's first rows as a model editor shows them, with what they reveal of its primary key."""

    columns: list[tuple[str, str]]  # name, type
    rows: list[dict[str, Any]]
    key_problems: list[str]


def preview_draft_model(
    ws: Workspace, name: str, definition: Mapping[str, Any], limit: int = probe.PREVIEW_ROWS
) -> ModelPreview:
    """The first rows of a model as an editor holds it (not saved), and what they show wrong with its
    primary key (when it names one). Raises ConfigError naming the key at fault, or the source's error."""
    body = {"primary_key": "_", **definition}  # a preview may come before the key is chosen
    try:
        model = ModelConfig.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(f"models.{name}: {format_validation_error(exc)}") from exc
    source = require(ws.config.sources, model.source, "source")
    table = probe.preview_model(model.source, source, model, limit)
    problems = probe.key_problems(table, model.key_columns) if definition.get("primary_key") else []
    return ModelPreview([(f.name, str(f.type)) for f in table.schema], probe.python_rows(table), problems)


def check_destination(ws: Workspace, name: str) -> DestinationCheck:
    """Ask the named Iterable project for its user fields with its API key: does it answer, and with what."""
    return destination.check_destination(require(ws.config.destinations, name, "destination"))


def model_schema(ws: Workspace, name: str) -> pa.Schema:
    """Column names and types of a model."""
    model = require(ws.config.models, name, "model")
    return probe.model_schema(model.source, ws.config.sources[model.source], model)


# -- definitions ------------------------------------------------------------------------------------


def save_definition(
    ws: Workspace, kind: Kind, name: str, definition: Mapping[str, Any], now: dt.datetime | None = None
) -> str:
    """Create or update a source, model, destination or sync from its keys as a project file holds them
    (an ``id`` of an existing object renames it); returns its id. Raises ConfigError naming the key at
    fault, QuotaError when it would take the production syncs over the quota (``now``: the clock, for
    tests), or ConfigError saying that the definitions live in a project file."""
    if kind == "source":  # connector settings are the connector's to check: before anything is written
        try:
            probe.check_settings(name, SourceConfig.model_validate(dict(definition)))
        except ValidationError as exc:
            raise ConfigError(f"sources.{name}: {format_validation_error(exc)}") from exc
    at = now or dt.datetime.now(dt.UTC)

    def within_quota(before: ProjectConfig, after: ProjectConfig) -> None:
        check_quota(ws.ledger.engine, after.sync_quota, after, before, at)

    config = ws.repository.save(kind, name, definition, check=within_quota)
    ws.config = config
    return str(getattr(config, SECTIONS[kind])[name].id or name)


def definitions_read_only(ws: Workspace) -> str | None:
    """Why this workspace's definitions cannot be changed through it (they live in a project file), or
    None: what an editor says before anyone types."""
    return ws.repository.read_only


def delete_definition(ws: Workspace, kind: Kind, name: str, now: dt.datetime | None = None) -> None:
    """Delete a definition (refused while another refers to it). A sync's runs stay, under its id; a
    production sync that ran keeps counting towards the quota until the month ends."""
    before = ws.config
    ws.config = ws.repository.delete(kind, name)
    if kind == "sync":
        record_deletion(ws.ledger.engine, before, name, now or dt.datetime.now(dt.UTC))


def quota_usage(ws: Workspace, now: dt.datetime | None = None) -> list[QuotaUsage]:
    """Each organization's sync quota: the production syncs that count, and the room left."""
    return quota_of(ws.ledger.engine, ws.config.sync_quota, ws.config, now or dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class Applied:
    """What ``apply_project`` did, per kind: the names created, updated, left as they were and deleted."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]


def apply_project(ws: Workspace, project: str | Path, prune: bool = False) -> Applied:
    """Create or update the metadata database's definitions from a project file, idempotently (objects
    are matched by id: a renamed object is renamed, its history kept); with ``prune``, delete those the
    file does not define. Raises ConfigError for a bad file, or when the workspace's definitions live in
    a project file themselves."""
    if not isinstance(ws.repository, DatabaseRepository):
        raise ConfigError(
            f"apply writes to the metadata database, but this workspace reads {ws.repository.location}: "
            "run it without --project"
        )
    incoming = ProjectFileRepository(Path(project)).load()
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    # The settings first: a file that raises sync_quota, or adds alert channels, applies to what follows.
    settings, stored = settings_definition(incoming), ws.repository.stored_settings()
    if settings == stored:
        unchanged.append("settings")
    else:
        ws.config = ws.repository.save_settings(settings)
        (updated if stored else created).append("settings")
    for kind in KINDS:
        section = SECTIONS[kind]
        current = {obj.id or name: (name, obj) for name, obj in getattr(ws.config, section).items()}
        for name, obj in getattr(incoming, section).items():
            object_id = obj.id or name
            label = f"{section}.{name}"
            before = current.get(object_id)
            definition = {**plain_definition(obj), "id": object_id}
            if before is not None and before[0] == name and plain_definition(before[1]) == plain_definition(obj):
                unchanged.append(label)
                continue
            save_definition(ws, kind, name, definition)
            (updated if before is not None else created).append(label)
    deleted: list[str] = []
    if prune:
        for kind in reversed(KINDS):  # syncs first: nothing refers to them
            section = SECTIONS[kind]
            wanted = {obj.id or name for name, obj in getattr(incoming, section).items()}
            for name, obj in list(getattr(ws.config, section).items()):
                if (obj.id or name) not in wanted:
                    delete_definition(ws, kind, name)
                    deleted.append(f"{section}.{name}")
    return Applied(created, updated, unchanged, deleted)


def export_project(ws: Workspace, with_secrets: bool = False) -> tuple[str, list[str]]:
    """The workspace's definitions as a project file (YAML), and the environment variables it reads.

    Secrets (API keys, passwords) are written as ``${VARIABLE}`` references, each named after its key
    (``DESTINATIONS_ITERABLE_API_KEY``), unless ``with_secrets`` writes them in the clear."""
    document: dict[str, Any] = _settings_with_references(ws.config, with_secrets)
    variables: list[str] = sorted(_references(document))
    for section in SECTIONS.values():
        objects: dict[str, Any] = {}
        for name, obj in getattr(ws.config, section).items():
            body = plain_definition(obj)
            if obj.id and obj.id != name:
                body = {"id": obj.id, **body}
            for key in sorted(_secret_keys(section, obj) & set(body)):
                if body[key] is not None and not with_secrets:
                    body[key] = _reference(f"{section}_{name}_{key}")
                    variables.append(body[key][2:-1])
            objects[name] = body
        document[section] = objects
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True), variables


def _settings_with_references(config: ProjectConfig, with_secrets: bool) -> dict[str, Any]:
    """The top-level settings as a project file holds them; each secret (an alert's webhook secret, an SMTP
    password) as a ``${SETTINGS_...}`` reference named after its key path, unless ``with_secrets``."""

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value() if with_secrets else _reference(path)
        if isinstance(value, dict):
            return {k: walk(v, f"{path}_{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}_{i}") for i, v in enumerate(value)]
        return value

    walked: dict[str, Any] = walk(settings_of(config), "settings")
    return walked


def _reference(path: str) -> str:
    """``${VARIABLE}`` for a secret at ``path`` (``destinations_iterable_api_key``): the variable an
    exported project file reads it from."""
    return "${" + re.sub(r"[^A-Z0-9]+", "_", path.upper()).strip("_") + "}"


def _references(document: Any) -> set[str]:
    """The ``${VARIABLE}`` references in a document's strings."""
    if isinstance(document, dict):
        return set().union(*(_references(v) for v in document.values())) if document else set()
    if isinstance(document, list):
        return set().union(*(_references(v) for v in document)) if document else set()
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", document)) if isinstance(document, str) else set()


# What a definition shows in place of a secret; saved back unchanged, it keeps the secret stored.
MASKED = "********"


def _secret_keys(section: str, obj: Any) -> set[str]:
    """The keys of an object that hold secrets (a destination's API key, a source's password...)."""
    if section == "destinations":
        return {"api_key"}
    if section == "sources":
        return set(probe.secret_settings(obj))
    return set()


def list_definitions(ws: Workspace, kind: Kind) -> dict[str, dict[str, Any]]:
    """Every definition of a kind, by name, as a project file holds it with its ``id``; secrets are shown
    as ``MASKED`` (never their values)."""
    section = SECTIONS[kind]
    shown: dict[str, dict[str, Any]] = {}
    for name, obj in getattr(ws.config, section).items():
        body = {"id": obj.id or name, **plain_definition(obj)}
        for key in _secret_keys(section, obj) & set(body):
            if body[key] is not None:
                body[key] = MASKED
        shown[name] = body
    return shown


def save_shown_definition(ws: Workspace, kind: Kind, name: str, definition: Mapping[str, Any]) -> str:
    """``save_definition`` for a definition as ``list_definitions`` showed it: a secret left ``MASKED`` keeps
    the value stored (of this object, found by id or name)."""
    return save_definition(ws, kind, name, _unmasked(ws, kind, name, definition))


def _unmasked(ws: Workspace, kind: Kind, name: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    """``definition`` with each secret left ``MASKED`` replaced by the value stored for that object (found
    by id, else by name); ConfigError when none is stored."""
    section = SECTIONS[kind]
    objects = getattr(ws.config, section)
    current_name = next((n for n, o in objects.items() if (o.id or n) == definition.get("id")), name)
    current = objects.get(current_name)
    body = dict(definition)
    for key, value in definition.items():
        if value == MASKED:
            if current is None or key not in _secret_keys(section, current):
                raise ConfigError(f"{section}.{name}.{key}: give its value (there is none stored to keep)")
            body[key] = plain_definition(current).get(key)
    return body


def set_enabled(ws: Workspace, name: str, enabled: bool) -> None:
    """Turn a sync's schedule on or off (a disabled sync still runs by hand)."""
    definition = list_definitions(ws, "sync").get(name)
    if definition is None:
        raise UnknownNameError(f"no sync named {name!r} ({', '.join(sorted(ws.config.syncs)) or 'none defined'})")
    save_shown_definition(ws, "sync", name, {**definition, "enabled": enabled})


def create_token(ws: Workspace, name: str) -> str:
    """A new REST API token named ``name``; returns it: it is shown this once, and kept as a digest."""
    return tokens.create_token(ws.ledger.engine, name)


def revoke_token(ws: Workspace, name: str) -> bool:
    return tokens.revoke_token(ws.ledger.engine, name)


def list_tokens(ws: Workspace) -> list[dict[str, Any]]:
    return [
        {"name": name, "created_at": created.isoformat(), "last_used_at": used.isoformat() if used else None}
        for name, created, used in tokens.token_names(ws.ledger.engine)
    ]


def token_owner(ws: Workspace, token: str) -> str | None:
    """The name of an API token, or None when it is not one."""
    return tokens.token_owner(ws.ledger.engine, token)


def new_secret_key() -> str:
    """A new key for SMARTINGEST_SECRET_KEY."""
    return new_key()


def rotate_secrets(ws: Workspace) -> int:
    """Encrypt every definition in the metadata database again with the first key of
    SMARTINGEST_SECRET_KEY; returns how many were. Raises ConfigError for a project-file workspace."""
    if not isinstance(ws.repository, DatabaseRepository):
        raise ConfigError(
            f"this workspace's definitions live in {ws.repository.location}, not in the metadata database"
        )
    return ws.repository.reseal()
