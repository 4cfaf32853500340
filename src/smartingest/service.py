"""The operations every front end calls (the CLI now; the REST API and web UI later).

No logic lives in the front ends: they parse arguments, call one function here and print the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from smartingest.config.loader import load_project, with_sync
from smartingest.config.models import ProjectConfig, require
from smartingest.engine import destination, probe
from smartingest.engine.destination import DestinationCheck
from smartingest.engine.ledger import Ledger, RowOutcome
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
from smartingest.engine.planning import plan_sync
from smartingest.engine.progress import Progress
from smartingest.engine.suggest import Suggestions
from smartingest.engine.suggest import suggest_mappings as suggest
from smartingest.errors import ConfigError
from smartingest.store.db import open_database, sqlite_url

DEFAULT_PROJECT = "smartingest.yaml"
HOME_ENV = "SMARTINGEST_HOME"
DATABASE_ENV = "SMARTINGEST_DATABASE_URL"
FILE_SOURCE_KEYS = ("path",)


@dataclass
class Workspace:
    """An opened project: its configuration, where its state lives, and its run ledger."""

    config: ProjectConfig
    project_dir: Path
    home: Path
    state_dir: Path
    ledger: Ledger


def open_workspace(project: str | Path = DEFAULT_PROJECT, home: str | Path | None = None) -> Workspace:
    """Load and validate a project file and open its metadata database.

    SMARTINGEST_HOME (default ./.smartingest) holds the metadata database and CDC state unless the
    project's database_url / state_dir (or SMARTINGEST_DATABASE_URL) say otherwise. Raises ConfigError.
    """
    project_path = Path(project)
    config = load_project(project_path)
    project_dir = project_path.resolve().parent
    _anchor_file_sources(config, project_dir)
    for name, source in config.sources.items():
        probe.check_settings(name, source)  # connector settings fail now, not mid-run
    home_dir = Path(home or os.environ.get(HOME_ENV) or ".smartingest").resolve()
    try:
        home_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {HOME_ENV} directory {home_dir}: {exc.strerror}") from exc
    state_dir = (project_dir / config.state_dir).resolve() if config.state_dir else home_dir / "state"
    url = config.database_url or os.environ.get(DATABASE_ENV) or sqlite_url(home_dir / "metadata.db")
    ledger = Ledger(open_database(url), OutcomeFiles(state_dir / "outcomes"))
    ledger.adopt_legacy_rows()
    return Workspace(config, project_dir, home_dir, state_dir, ledger)


def _anchor_file_sources(config: ProjectConfig, project_dir: Path) -> None:
    # A relative file path in a project file means relative to that file, wherever the CLI runs.
    for source in config.sources.values():
        extra = source.model_extra or {}
        for key in FILE_SOURCE_KEYS:
            value = extra.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                extra[key] = str(project_dir / value)


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
    )


def list_syncs(ws: Workspace) -> list[dict[str, Any]]:
    """Every sync with its model, destination, type, schedule, last run and CDC snapshot size."""
    out = []
    for name, sync in ws.config.syncs.items():
        target = sync_target(ws, name)
        last = ws.ledger.list_runs(sync_id=target.id, limit=1)
        try:
            snapshot_rows: int | None = detector_for(target.source, ws.state_dir).snapshot_size(target.id)
        except ConfigError:  # an engine this version cannot run; the run itself will say so
            snapshot_rows = None
        schedule = sync.schedule
        out.append(
            {
                "name": name,
                "id": target.id,
                "model": sync.model,
                "destination": sync.destination,
                "type": sync.type,
                "schedule": "manual"
                if schedule.manual
                else (f"every {schedule.every}" if schedule.every else schedule.cron),
                "last_run": last[0] if last else None,
                "snapshot_rows": snapshot_rows,
            }
        )
    return out


def plan(ws: Workspace, name: str, samples: int = 3) -> PlanResult:
    """What the next run of a sync would send; sends nothing and changes no state."""
    return plan_sync(sync_target(ws, name), ws.state_dir, samples)


def suggest_mappings(ws: Workspace, name: str) -> Suggestions:
    """Mappings for every column of a sync's model, from the column names and the destination's fields;
    changes nothing."""
    target = sync_target(ws, name)
    return suggest(target, probe.model_schema(target.source_name, target.source, target.model))


def test_row(ws: Workspace, name: str, primary_key: str, send: bool = False) -> RowTest:
    """The exact request the sync would send for one row of its model (its primary key as runs show it);
    with ``send``, sent, with Iterable's answer. Leaves the sync's CDC state and runs as they are."""
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


def reset(ws: Workspace, name: str) -> bool:
    """Forget a sync's CDC snapshot (sends nothing); the next run sends every row. Returns whether one existed."""
    target = sync_target(ws, name)
    with sync_lock(ws.state_dir, target.id):
        return detector_for(target.source, ws.state_dir).reset(target.id)


def list_runs(ws: Workspace, sync: str | None = None, status: str | None = None, limit: int = 20) -> list[dict]:
    """The newest runs, of one sync (by its name: its runs under earlier names included) or of all."""
    if sync is not None:
        require(ws.config.syncs, sync, "sync")
        return ws.ledger.list_runs(ws.config.sync_id(sync), status, limit)
    return ws.ledger.list_runs(None, status, limit)


def get_run(ws: Workspace, run_id: int) -> dict | None:
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
    for name, sync in ws.config.syncs.items():
        if ws.config.sync_id(name) == sync_id:
            return ws.config.models[sync.model].key_columns
    return []


def row_counts(ws: Workspace, run_id: int) -> dict[str, int]:
    """How many row outcomes a run has, by status."""
    return ws.ledger.tally(run_id)


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


def check_destination(ws: Workspace, name: str) -> DestinationCheck:
    """Ask the named Iterable project for its user fields with its API key: does it answer, and with what."""
    return destination.check_destination(require(ws.config.destinations, name, "destination"))


def model_schema(ws: Workspace, name: str) -> pa.Schema:
    """Column names and types of a model."""
    model = require(ws.config.models, name, "model")
    return probe.model_schema(model.source, ws.config.sources[model.source], model)
