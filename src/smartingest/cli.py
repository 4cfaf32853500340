"""The command line: parses arguments, calls the service, prints results. No logic lives here."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shlex
import sys
import traceback
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# typer vendors its own click: these are the errors its parser raises (typer only re-exports BadParameter).
from typer._click.exceptions import ClickException, UsageError

from smartingest import __version__
from smartingest.codes import RowStatus, RunStatus
from smartingest.errors import ConfigError, SmartIngestError


def _lazy_module(name: str) -> ModuleType:
    """A module whose code runs when one of its attributes is first read (importlib's LazyLoader); the
    module itself when it is imported already."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from smartingest import service
else:
    # The service brings the engine (DuckDB, Arrow, SQLAlchemy, httpx): imported on first use, so that
    # --help, --version and a wrong argument answer at once.
    service = _lazy_module("smartingest.service")

app = typer.Typer(
    help="smartingest: sync data from your warehouse into Iterable, sending only what changed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sync_app = typer.Typer(help="Plan, run and reset syncs.", no_args_is_help=True)
runs_app = typer.Typer(help="Run history and row-level outcomes.", no_args_is_help=True)
model_app = typer.Typer(help="Look at models.", no_args_is_help=True)
source_app = typer.Typer(help="Check sources.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
app.add_typer(runs_app, name="runs")
app.add_typer(model_app, name="model")
app.add_typer(source_app, name="source")
destination_app = typer.Typer(help="Check destinations.", no_args_is_help=True)
app.add_typer(destination_app, name="destination")
secrets_app = typer.Typer(help="The key that encrypts definitions in the metadata database.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
token_app = typer.Typer(help="Tokens of the REST API.", no_args_is_help=True)
app.add_typer(token_app, name="token")

out = Console()
err = Console(stderr=True)

ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project file (config as code); default ./smartingest.yaml if it exists, else the definitions in the "
        "metadata database.",
        envvar="SMARTINGEST_PROJECT",
    ),
]


def _record_json(value: bool) -> bool:
    # Every command's --json passes here, so an error met later knows to print JSON (see _report_error).
    _state["json"] = value
    return value


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (errors too).", callback=_record_json)]

_state: dict[str, Any] = {"project": None}


def _print_version(value: bool) -> None:
    if value:
        out.print(f"smartingest {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    project: ProjectOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log retries and other details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["project"] = project
    _state["verbose"] = verbose
    _state["json"] = False  # until the command's own --json says otherwise
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _workspace() -> service.Workspace:
    return service.open_workspace(_state["project"])


def _fail(exc: SmartIngestError | ClickException) -> NoReturn:
    """Report an error the user can act on and exit: 2 when the project file or the command line is at
    fault (ConfigError, a bad option), 1 for anything else (a source, the state, Iterable, a missing run).

    With --json the error goes to stdout as JSON (see _report_error), with the same exit code.
    """
    if isinstance(exc, ClickException):
        _report_error(_click_error_type(exc), exc.format_message())
        raise typer.Exit(exc.exit_code)
    _report_error(type(exc).__name__, str(exc))
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _report_error(kind: str, message: str, label: str = "error") -> None:
    """One error: ``{"error": {"type": kind, "message": ...}}`` on stdout with --json, else ``label: message``
    on stderr.

    A script that asked for JSON then reads JSON whatever happened, and tells errors apart by ``type``.
    """
    if _json_requested():
        _print_json({"error": {"type": kind, "message": message}})
    else:
        err.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _json_requested() -> bool:
    """Whether the command line asked for JSON: the command's --json, or (before it was parsed) main()'s look."""
    return bool(_state.get("json") or _state.get("argv_json"))


def _click_error_type(exc: ClickException) -> str:
    return "UsageError" if isinstance(exc, UsageError) else type(exc).__name__


def _print_json(data: Any) -> None:
    """Print data as indented JSON on stdout (values JSON has no type for, such as datetimes, as text)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# -- sync -----------------------------------------------------------------------------------------------


@sync_app.command("list")
def sync_list(as_json: JsonOption = False) -> None:
    """List the project's syncs and their last run."""
    try:
        syncs = service.list_syncs(_workspace())
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json([s.as_dict() for s in syncs])
        return
    table = Table("sync", "status", "model", "destination", "type", "schedule", "last run", "in snapshot")
    for s in syncs:
        last = s.last_run
        table.add_row(
            s.name,
            s.status,
            s.model,
            s.destination,
            s.type,
            s.schedule,
            f"#{last.id} {last.status}" if last else "never",
            "" if s.snapshot_rows is None else f"{s.snapshot_rows:,}",
        )
    out.print(table)


@sync_app.command("quota")
def sync_quota(as_json: JsonOption = False) -> None:
    """Each organization's sync quota: the production syncs that count and the room left."""
    try:
        usage = service.quota_usage(_workspace())
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json([org.as_dict() for org in usage])
        return
    table = Table("organization", "used", "limit", "production syncs", "deleted this month (still count)")
    for org in usage:
        limit = "none" if org.limit is None else str(org.limit)
        table.add_row(
            org.organization, str(org.used), limit, ", ".join(org.production_syncs), ", ".join(org.deleted_this_month)
        )
    out.print(table)


@sync_app.command("plan")
def sync_plan(
    name: str,
    as_json: JsonOption = False,
    samples: Annotated[int, typer.Option(help="Sample request bodies to show.")] = 3,
) -> None:
    """Show what the next run would send (counts and sample requests) without sending anything."""
    try:
        result = service.plan(_workspace(), name, samples)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(result.as_dict())
        return
    _print_plan(result)


@sync_app.command("suggest-mappings")
def sync_suggest_mappings(name: str, as_json: JsonOption = False) -> None:
    """Suggest field mappings for every column of the sync's model, from the column names and the
    destination's existing fields, ready to paste into the project file (nothing is changed)."""
    try:
        result = service.suggest_mappings(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(result.as_dict())
        return
    import yaml

    width = max((len(s.column) + len(s.field) for s in result.mappings), default=0) + 20
    out.print(f"Suggested mappings for {escape(name)} (syncs.{escape(name)}.mappings):", highlight=False)
    for suggestion in result.mappings:
        line = yaml.safe_dump([suggestion.as_mapping()], default_flow_style=None, sort_keys=False).strip()
        out.print(f"  {escape(line):<{width}} # {escape(suggestion.why)}", highlight=False)
    for note in result.notes:
        out.print(f"Note: {escape(note)}", highlight=False)


@sync_app.command("test")
def sync_test(
    name: str,
    row: Annotated[str, typer.Option("--row", help="The row's primary key (a JSON array for a composite key).")],
    send: Annotated[bool, typer.Option("--send", help="Send the request and show Iterable's answer.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the exact request a run would send for one row; with --send, send it (the sync's CDC state and
    runs are left as they are, so the next run sends the row again if it changed). Exits 1 when the row
    would not be sent or Iterable did not accept it."""
    try:
        result = service.test_row(_workspace(), name, row, send)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(result.as_dict())
    else:
        _print_row_test(result)
    if result.refused or (result.sent and result.status != RowStatus.SYNCED):
        raise typer.Exit(1)


@sync_app.command("run")
def sync_run(
    name: str,
    full_resync: Annotated[bool, typer.Option("--full-resync", help="Send every current row again.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a sync now and print its summary. Exits 1 if the run failed."""
    from smartingest.progress_display import TerminalProgress

    try:
        ws = _workspace()
        with TerminalProgress(err, enabled=not as_json and err.is_terminal) as progress:
            result = service.run(ws, name, full_resync=full_resync, progress=progress)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(result.as_dict())
    else:
        print_run_summary(result)
    if result.status == RunStatus.FAILED:
        raise typer.Exit(1)


@sync_app.command("reset")
def sync_reset(name: str) -> None:
    """Forget the sync's CDC snapshot: nothing is sent now, and the next run sends every row."""
    try:
        existed = service.reset(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    out.print(
        f"Reset {name}: "
        + (
            "snapshot forgotten; the next run sends every row."
            if existed
            else "there was no snapshot; the next run sends every row."
        )
    )


# -- runs -----------------------------------------------------------------------------------------------

RUN_STATUSES = tuple(str(status) for status in RunStatus)
# A row outcome's status by every name users meet it under: the ledger's own (rows in --json output), and
# the run's count names (counts in --json output, the run summary), where rows in retry are retried_next_run.
ROW_STATUSES = {
    name: str(status)
    for status in RowStatus
    for name in ((str(status), "retried_next_run") if status == RowStatus.RETRY else (str(status),))
}


def _status_option(value: str | None, statuses: Mapping[str, str]) -> str | None:
    """The status a --status option names (None: any), or a usage error listing the names it accepts."""
    if value is None:
        return None
    status = statuses.get(value.strip().lower())
    if status is None:
        _fail(
            typer.BadParameter(f"{value!r} is not a status; use one of: {', '.join(statuses)}", param_hint="'--status'")
        )
    return status


@runs_app.command("list")
def runs_list(
    sync: Annotated[str | None, typer.Option(help="Only this sync's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, newest first."""
    status = _status_option(status, {s: s for s in RUN_STATUSES})
    try:
        runs = service.list_runs(_workspace(), sync, status, limit)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json([r.as_dict() for r in runs])
        return
    table = Table(
        "run", "sync", "status", "started", "queried", "changes", "sent", "synced", "rejected", "retry", "invalid"
    )
    for r in runs:
        c = r.counts
        table.add_row(
            str(r.id),
            r.sync_name,
            _status(r.status),
            r.started_at.strftime("%m-%d %H:%M") if r.started_at else "",
            str(c["queried"]),
            str(c["added"] + c["changed"] + c["removed"]),
            _rows_sent(r.delivery),
            *(str(c[k]) for k in ("synced", "rejected", "retried_next_run", "invalid")),
        )
    out.print(table)


def _rows_sent(delivery: dict[str, int] | None) -> str:
    """Rows that went out in requests Iterable answered; blank when the run recorded no delivery."""
    # A run that never reached delivery sent nothing; one whose process died left no statistics.
    if not delivery or "rows_sent" not in delivery:
        return ""
    return str(delivery["rows_sent"])


@runs_app.command("cancel")
def runs_cancel(run_id: int) -> None:
    """Ask a run to stop: a queued one ends at once, a running one stops sending (unsent rows go next run)."""
    try:
        asked = service.cancel_run(_workspace(), run_id)
    except SmartIngestError as exc:
        _fail(exc)
    out.print(f"run #{run_id}: " + ("asked to stop" if asked else "already ended"))


@runs_app.command("show")
def runs_show(
    run_id: int,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only rows in this status: synced, rejected, retry (or retried_next_run), deferred, skipped, invalid."
        ),
    ] = None,
    operation: Annotated[
        str | None, typer.Option(help="Only rows of this operation: added, changed, removed, invalid.")
    ] = None,
    code: Annotated[str | None, typer.Option(help="Only rows with this reason code (invalid_email...).")] = None,
    key: Annotated[
        str | None, typer.Option(help="Only the row with this primary key (a composite key as a JSON array).")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many rows.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """One run: its counts, timings, error, and row-level outcomes (text keys quoted: 'abc ')."""
    status = _status_option(status, ROW_STATUSES)
    where = {"operation": operation, "reason_code": code, "primary_key": key}
    try:
        ws = _workspace()
        run = service.get_run(ws, run_id)
        if run is None:
            _fail(SmartIngestError(f"no run #{run_id} (see `smartingest runs list`)"))
        rows = service.run_rows(ws, run_id, status, limit, offset, **where)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json({**run.as_dict(), "rows": [r.__dict__ for r in rows]})
        return
    data = run.as_dict()
    out.print(f"[bold]Run #{run.id}[/] of [bold]{escape(run.sync_name)}[/]: {_status(run.status)}")
    out.print(f"started {data['started_at']}  finished {data['finished_at']}  full resync: {run.full_resync}")
    if run.error:
        out.print(f"[red]error:[/] {escape(run.error)}", highlight=False)
    _print_warnings(run.warnings)
    _print_counts(run.counts, run.timings)
    if run.rows_pruned_at:
        out.print(
            f"  row outcomes pruned on {run.rows_pruned_at:%Y-%m-%d} (row_outcomes_retention_days); the counts stay",
            highlight=False,
        )
    _print_delivery(run.delivery)
    total = service.count_rows(ws, run_id, status, **where)
    shown = f"{offset + 1}-{offset + len(rows)} of {total}" if rows else f"none of {total}"
    key_columns = service.key_columns(ws, run.sync_id)
    header = "primary key" if len(key_columns) < 2 else f"primary key ({', '.join(key_columns)})"
    table = Table(header, "operation", "status", "code", "reason", title=f"rows ({status or 'all'}): {shown}")
    for r in rows:
        key = escape(_key(r.pk, len(key_columns) > 1))
        table.add_row(key, r.operation, _status(r.status), r.code or "", escape(r.reason or ""))
    out.print(table)
    if offset + len(rows) < total:
        filters = "".join(
            f" --{option} {shlex.quote(value)}"
            for option, value in (("status", status), ("operation", operation), ("code", code), ("key", key))
            if value
        )
        out.print(f"more: smartingest runs show {run_id}{filters} --offset {offset + len(rows)}", highlight=False)


# -- model and source --------------------------------------------------------------------------------


@model_app.command("preview")
def model_preview(
    name: str, limit: Annotated[int, typer.Option(help="Rows to show.")] = 100, as_json: JsonOption = False
) -> None:
    """The model's first rows."""
    try:
        rows = service.preview_rows(_workspace(), name, limit)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(rows)
        return
    view = Table(*(rows[0] if rows else []))
    for row in rows:
        view.add_row(*("" if v is None else str(v) for v in row.values()))
    out.print(view)


@model_app.command("schema")
def model_schema(name: str, as_json: JsonOption = False) -> None:
    """The model's column names and types."""
    try:
        schema = service.model_schema(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    columns = [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]
    if as_json:
        _print_json(columns)
        return
    view = Table("column", "type")
    for c in columns:
        # Arrow writes parameters in brackets (timestamp[us, tz=UTC]), which rich would take for markup.
        view.add_row(escape(c["name"]), escape(c["type"]))
    out.print(view)


@source_app.command("test")
def source_test(name: str) -> None:
    """Connect to a source and run a trivial query."""
    try:
        service.check_source(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    out.print(f"[green]ok[/]: source {name} is reachable")


@destination_app.command("test")
def destination_test(name: str, as_json: JsonOption = False) -> None:
    """Check that the destination's Iterable project answers with its API key. Exits 1 if it does not."""
    try:
        check = service.check_destination(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json({"destination": name, "url": check.url, "ok": check.ok, "message": check.message})
    elif check.ok:
        out.print(f"[green]ok[/]: destination {escape(name)}: {escape(check.message)}", highlight=False, soft_wrap=True)
    else:
        err.print(
            f"[bold red]error:[/] destination {escape(name)}: {escape(check.message)}", highlight=False, soft_wrap=True
        )
    if not check.ok:
        raise typer.Exit(1)


@app.command("validate")
def validate() -> None:
    """Check the project file (keys, types, references, connector settings) without connecting."""
    try:
        ws = _workspace()
    except SmartIngestError as exc:
        _fail(exc)
    c = ws.config
    out.print(
        f"[green]ok[/]: {len(c.sources)} sources, {len(c.models)} models, {len(c.destinations)} destinations, "
        f"{len(c.syncs)} syncs"
    )


# -- definitions in the metadata database -----------------------------------------------------------


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="The project file to import.")],
    prune: Annotated[bool, typer.Option("--prune", help="Delete the definitions the file does not have.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the metadata database's definitions from a project file (idempotent; objects are
    matched by id, so a renamed one keeps its runs and snapshot)."""
    try:
        applied = service.apply_project(_workspace(), file, prune)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(asdict(applied))
        return
    for label, names in asdict(applied).items():
        if names:
            out.print(f"{label}: {escape(', '.join(names))}", soft_wrap=True)
    if not any(asdict(applied).values()):
        out.print("nothing to apply: the file defines nothing")


@app.command("export")
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    with_secrets: Annotated[
        bool, typer.Option("--with-secrets", help="Write API keys and passwords in the clear (else ${VARIABLES}).")
    ] = False,
) -> None:
    """Write the definitions as a project file; secrets become ${VARIABLE} references unless --with-secrets."""
    try:
        text, variables = service.export_project(_workspace(), with_secrets)
    except SmartIngestError as exc:
        _fail(exc)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    if variables:
        err.print(f"the file reads its secrets from the environment: set {', '.join(variables)} to use it")


@secrets_app.command("key")
def secrets_key() -> None:
    """Print a new encryption key for SMARTINGEST_SECRET_KEY."""
    out.print(service.new_secret_key())


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Encrypt every definition again with the first key of SMARTINGEST_SECRET_KEY (set it to "NEW,OLD")."""
    try:
        count = service.rotate_secrets(_workspace())
    except SmartIngestError as exc:
        _fail(exc)
    out.print(f"re-encrypted {count} definitions with the first key of SMARTINGEST_SECRET_KEY")


# -- the service ------------------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
    run_workers: Annotated[int, typer.Option(help="Runs this process executes at once.")] = 2,
    schedule: Annotated[
        bool, typer.Option("--schedule/--no-schedule", help="Queue scheduled syncs' runs when they come due.")
    ] = True,
) -> None:
    """Serve the web UI (/) and the REST API (/api/v1, its OpenAPI document at /docs) until stopped (Ctrl-C)."""
    import uvicorn

    from smartingest.server.app import create_app
    from smartingest.server.listening import listening_socket

    project = _state["project"]
    try:
        service.open_workspace(project)  # a bad project or database fails now, with its message
    except SmartIngestError as exc:
        _fail(exc)
    app_ = create_app(lambda: service.open_workspace(project), run_workers, schedule)
    try:
        sock = listening_socket(host, port)
    except OSError as exc:  # the port is taken, the address is not this machine's...
        _fail(ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --host or --port"))
    out.print(
        f"serving on http://{host}:{sock.getsockname()[1]} (the web UI at /, the API at /api/v1, its documentation "
        "at /docs)"
    )
    sys.stdout.flush()
    uvicorn.Server(uvicorn.Config(app_, log_level="warning")).run(sockets=[sock])


@app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="Runs this worker executes at once.")] = 2,
) -> None:
    """Execute the runs `serve` hands to the workers (the project's `workers: {broker_url: ...}`), until
    stopped. Start as many as you need, on any machine that reaches the broker and the metadata database."""
    from smartingest.scheduler.workers import PROJECT_ENV, celery_app

    project = _state["project"]
    try:
        ws = service.open_workspace(project)
        if ws.config.workers is None:
            raise ConfigError("workers: the project sets no broker (workers: {broker_url: redis://...})")
        app_ = celery_app(ws.config.workers.broker_url)
    except SmartIngestError as exc:
        _fail(exc)
    if project is not None:
        os.environ[PROJECT_ENV] = str(Path(project).resolve())
    out.print(f"worker: taking runs from {ws.config.workers.broker_url.split('@')[-1]}")
    if ws.config.pacing.type == "local":
        out.print(
            "worker: each worker paces its requests to Iterable alone, so workers together can exceed a "
            "project's rate limits (Iterable then answers 429 and requests wait): share the pacing with "
            "rate_limiter: {type: redis, url: ...}"
        )
    sys.stdout.flush()
    app_.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}", "--loglevel=WARNING"])


@token_app.command("create")
def token_create(name: str) -> None:
    """Make a REST API token and print it (shown this once; send it as Authorization: Bearer TOKEN)."""
    try:
        token = service.create_token(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    out.print(token, highlight=False)


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """The API tokens: names and when each was made and last used (never the tokens)."""
    try:
        listed = service.list_tokens(_workspace())
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(listed)
        return
    table = Table("token", "created", "last used")
    for row in listed:
        table.add_row(escape(row["name"]), row["created_at"][:19], (row["last_used_at"] or "never")[:19])
    out.print(table)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Delete an API token: requests that send it are refused from now on."""
    try:
        existed = service.revoke_token(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    out.print(f"revoked token {name!r}" if existed else f"no token named {name!r}")


# -- sandbox and demo ----------------------------------------------------------------------------------


@app.command(
    "sandbox",
    # The sandbox parses its own options (smartingest.sandbox.options), the same parser as
    # `python -m smartingest.sandbox`: every flag, default and check is defined once, there.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def sandbox(ctx: typer.Context) -> None:
    """Serve the Iterable-compatible sandbox until stopped (Ctrl-C); --help lists its options."""
    from smartingest.sandbox import serve
    from smartingest.sandbox.options import parse_settings

    serve(parse_settings(ctx.args, prog="smartingest sandbox"))


@app.command("demo")
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the demo's files.")] = Path("demo"),
    customers: Annotated[int, typer.Option(help="Customers in the sample source.")] = 5000,
) -> None:
    """Run the whole thing on embedded defaults: a sample source, the sandbox, two runs of a Users sync."""
    from smartingest.demo import run_demo

    try:
        run_demo(directory, customers, out, print_run_summary)
    except SmartIngestError as exc:
        _fail(exc)


# -- printing ------------------------------------------------------------------------------------------

_STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RowStatus.SYNCED: "green",
    RunStatus.WARNING: "yellow",
    RowStatus.REJECTED: "yellow",
    RowStatus.INVALID: "yellow",
    RowStatus.RETRY: "magenta",
    RowStatus.DEFERRED: "magenta",
    RunStatus.FAILED: "red",
}


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)  # type: ignore[call-overload]  # StrEnum keys match their text
    return f"[{style}]{status}[/]" if style else status


_BARE_KEY = re.compile(r"-?[0-9]+")


def _key(pk: str | None, composite: bool = False) -> str:
    """A primary key as printed for people, never ambiguous: whole numbers bare (42), any other key quoted
    the way Python quotes text ('abc ', 'a\\tb'), so spaces and control characters show; a null key as null.
    A composite key (stored as a JSON array) is a tuple of its parts: (7, 'abc').
    """
    if pk is None:
        return "null"
    if composite:
        try:
            parts = json.loads(pk)
        except ValueError:
            parts = None
        if isinstance(parts, list):
            return "(" + ", ".join(repr(p) if isinstance(p, str) else json.dumps(p) for p in parts) + ")"
    return pk if _BARE_KEY.fullmatch(pk) else repr(pk)


def _print_counts(counts: dict[str, int], timings: dict[str, float]) -> None:
    """The run's two identities (docs/runs.md): what was read and planned, then every change's verdict."""
    names = ("queried", "invalid", "unchanged", "added", "changed", "removed")
    names += ("synced", "rejected", "retried_next_run", "deferred", "skipped")  # type: ignore[assignment]
    n = {name: counts.get(name, 0) for name in names}  # a count missing from an older run is 0
    c = {k: f"{v:,}" for k, v in n.items()}
    out.print(
        f"  queried {c['queried']} = invalid {c['invalid']} + unchanged {c['unchanged']} + "
        f"[green]added {c['added']}[/] + [yellow]changed {c['changed']}[/];  [red]removed {c['removed']}[/]",
        highlight=False,
    )
    out.print(
        f"  changes {n['added'] + n['changed'] + n['removed']:,} = [green]synced {c['synced']}[/] + "
        f"rejected {c['rejected']} + retried next run {c['retried_next_run']}"
        + (f" + deferred {c['deferred']}" if n["deferred"] else "")
        + (f" + skipped {c['skipped']}" if n["skipped"] else ""),
        highlight=False,
    )
    if timings:
        out.print("  timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()), highlight=False)


def _print_delivery(delivery: dict[str, int]) -> None:
    """What went out to Iterable: rows sent, and how every request attempt ended (docs/runs.md)."""
    if not delivery:
        return  # delivery never started, or its process died before recording it
    names = ("requests", "accepted", "refused", "retries", "throttled", "server_errors", "no_response")
    d = {k: f"{delivery.get(k, 0):,}" for k in (*names, "gave_up", "splits", "rows_sent")}
    if not delivery.get("requests"):
        out.print("  sent nothing to Iterable (no request)", highlight=False)
        return
    sent = f"sent {d['rows_sent']} rows in " if "rows_sent" in delivery else "sent "
    line = (
        f"  {sent}{d['requests']} requests: accepted {d['accepted']}, refused {d['refused']}, "
        f"retried {d['retries']} (throttled {d['throttled']}, server errors {d['server_errors']}, "
        f"no response {d['no_response']}), gave up {d['gave_up']}"
    )
    if delivery.get("splits"):
        line += f"; batches split {d['splits']}"
    out.print(line, highlight=False)


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def print_run_summary(result: service.RunResult) -> None:
    out.print(f"[bold]Run #{result.run_id}[/] of [bold]{result.sync_name}[/]: {_status(result.status)}")
    if result.error:
        out.print(f"[red]error:[/] {escape(result.error)}", highlight=False)
    _print_warnings(result.warnings)
    _print_counts(result.counts, result.timings)
    _print_delivery(result.delivery)
    if result.counts.get("rejected") or result.counts.get("invalid") or result.counts.get("retried_next_run"):
        out.print(f"See the rows: smartingest runs show {result.run_id} --status rejected (or invalid, retry)")


# What `sync plan` prints of one value; --json prints everything whole.
PLAN_TEXT_CHARS = 80
PLAN_REASON_CHARS = 300
PLAN_LIST_ITEMS = 10


def _print_row_test(result: service.RowTest) -> None:
    key = escape(result.primary_key)
    for warning in result.warnings:
        out.print(f"Warning: {escape(warning)}", highlight=False)
    if result.body is None:
        out.print(f"Row {key} of {escape(result.sync_name)} would not be sent: {escape(result.refused or '')}")
        return
    out.print(f"Request for row {key} ({escape(result.request)}):", highlight=False)
    out.print_json(json.dumps(result.body))
    if not result.sent:
        out.print("(not sent; add --send to send it)", highlight=False)
        return
    for answer in result.answers:
        out.print(f"Iterable answered {escape(answer.request)} with {answer.status}:", highlight=False)
        if isinstance(answer.body, str):
            out.print(escape(answer.body), highlight=False)
        else:
            out.print_json(json.dumps(answer.body))
    reason = f": {escape(result.reason)}" if result.reason else ""
    out.print(f"Row {key}: {escape(result.status or '')}{reason}", highlight=False)


def _print_plan(result: service.PlanResult) -> None:
    """The plan for people: counts, a few invalid and rejected rows, one sample request with long values cut."""
    c = result.counts
    out.print(f"[bold]Plan for {escape(result.sync_name)}[/] (nothing sent)")
    out.print(
        f"queried {c.queried}, invalid {c.invalid}, unchanged {c.unchanged}, "
        f"[green]added {c.added}[/], [yellow]changed {c.changed}[/], [red]removed {c.removed}[/]"
    )
    answered = "[green]destination:[/]" if result.destination_ok else "[red]destination did not answer:[/]"
    out.print(f"{answered} {escape(result.destination)}", highlight=False, soft_wrap=True)
    _print_warnings(result.warnings)
    for sample in result.invalid_samples:
        out.print(f"  invalid: {escape(_shorten(sample['reason'], PLAN_REASON_CHARS))}", highlight=False)
    for sample in result.rejected_samples:
        reason = _shorten(sample["reason"], PLAN_REASON_CHARS)
        out.print(f"  would be rejected: {escape(_key(sample['primary_key']))}: {escape(reason)}", highlight=False)
    if result.sample_requests:
        body = result.sample_requests[0]
        # The request's own list (users, events) holds the samples asked for: only what is inside is cut.
        shown = {
            name: [_shorten(item) for item in value] if isinstance(value, list) else _shorten(value)
            for name, value in body.items()
        }
        out.print(f"Sample request ({result.request}):")
        out.print_json(json.dumps(shown))
        if shown != body:
            out.print("(long values are cut here; --json prints them whole)", highlight=False)


def _shorten(value: Any, chars: int = PLAN_TEXT_CHARS) -> Any:
    """A JSON value for display: text longer than ``chars`` cut with an ellipsis and its full length noted,
    lists longer than PLAN_LIST_ITEMS cut with their full length noted, at any depth; other values as they are.
    """
    if isinstance(value, str):
        return value if len(value) <= chars else f"{value[:chars]}… ({len(value):,} chars)"
    if isinstance(value, dict):
        return {key: _shorten(item, chars) for key, item in value.items()}
    if isinstance(value, list):
        items = [_shorten(item, chars) for item in value[:PLAN_LIST_ITEMS]]
        return [*items, f"… ({len(value):,} items)"] if len(value) > PLAN_LIST_ITEMS else items
    return value


def main() -> NoReturn:
    """The process's entry point: runs the command line, then ends the process without tearing the
    interpreter down. Everything a command writes is closed, committed or renamed into place before it
    returns; what the interpreter would do after that (collect and free every module's objects, close
    what is left of the libraries) cost about 0.35 s after a sync run here, a tenth of an incremental run
    (docs/performance.md). Tests call ``app`` in-process instead."""
    try:
        run_command_line()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): nothing more can reach it
            code = code or 1
    os._exit(code)


def _exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` would give: None is 0, an int itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_command_line() -> None:
    """Entry point: a bug prints one line (the traceback only with --verbose), never a wall of text.

    With --json every failure is JSON on stdout, ``{"error": {"type": ..., "message": ...}}``, and exits
    as it would without --json: 2 for a wrong command line or project file, 1 for other errors, 70 for a bug
    (type InternalError).
    """
    args = sys.argv[1:]
    # Seen before parsing, so that an error in parsing itself is JSON too.
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)
    _state["argv_json"] = as_json
    try:
        if as_json:
            _main_json()
        else:
            app(standalone_mode=True)
    except Exception as exc:
        if _state.get("verbose") and not as_json:
            raise
        if _state.get("verbose"):
            traceback.print_exc()  # stderr: stdout is for the JSON
        _report_error(
            "InternalError",
            f"{type(exc).__name__}: {exc} (this is a bug; run again with --verbose for the traceback and report it)",
            label="internal error",
        )
        sys.exit(70)


def _main_json() -> NoReturn:
    # In standalone mode the parser prints a usage error as text on stderr; here it becomes JSON like any error.
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        _report_error(_click_error_type(exc), exc.format_message())
        sys.exit(exc.exit_code)
    except typer.Abort:
        _report_error("Aborted", "aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
