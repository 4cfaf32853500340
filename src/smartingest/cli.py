"""The command line: parses arguments, calls the service, prints results. No logic lives here."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from smartingest import __version__, service
from smartingest.errors import ConfigError, SmartIngestError

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

out = Console()
err = Console(stderr=True)

ProjectOption = Annotated[Path, typer.Option("--project", "-p", help="Project file.", envvar="SMARTINGEST_PROJECT")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]

_state: dict[str, Any] = {"project": Path(service.DEFAULT_PROJECT)}


def _print_version(value: bool) -> None:
    if value:
        out.print(f"smartingest {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    project: ProjectOption = Path(service.DEFAULT_PROJECT),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log retries and other details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["project"] = project
    _state["verbose"] = verbose
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _workspace() -> service.Workspace:
    return service.open_workspace(_state["project"])


def _fail(exc: SmartIngestError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _print_json(data: Any) -> None:
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
        _print_json(syncs)
        return
    table = Table("sync", "model", "destination", "type", "schedule", "last run", "in snapshot")
    for s in syncs:
        last = s["last_run"]
        table.add_row(
            s["name"],
            s["model"],
            s["destination"],
            s["type"],
            s["schedule"],
            f"#{last['id']} {last['status']}" if last else "never",
            "" if s["snapshot_rows"] is None else f"{s['snapshot_rows']:,}",
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
    if result.status == "failed":
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


@runs_app.command("list")
def runs_list(
    sync: Annotated[str | None, typer.Option(help="Only this sync's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, newest first."""
    try:
        runs = service.list_runs(_workspace(), sync, status, limit)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(runs)
        return
    table = Table("run", "sync", "status", "started", "queried", "sent", "synced", "rejected", "retry", "invalid")
    for r in runs:
        c = r["counts"]
        sent = c["added"] + c["changed"] + c["removed"]
        table.add_row(
            str(r["id"]),
            r["sync_name"],
            _status(r["status"]),
            (r["started_at"] or "")[5:16].replace("T", " "),
            str(c["queried"]),
            str(sent),
            *(str(c[k]) for k in ("synced", "rejected", "retried_next_run", "invalid")),
        )
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: int,
    status: Annotated[
        str | None, typer.Option(help="Only rows in this status: synced, rejected, retry, invalid.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many rows.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """One run: its counts, timings, error, and row-level outcomes."""
    try:
        ws = _workspace()
        run = service.get_run(ws, run_id)
        if run is None:
            _fail(SmartIngestError(f"no run #{run_id} (see `smartingest runs list`)"))
        rows = service.run_rows(ws, run_id, status, limit, offset)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json({**run, "rows": [r.__dict__ for r in rows]})
        return
    out.print(f"[bold]Run #{run['id']}[/] of [bold]{run['sync_name']}[/]: {_status(run['status'])}")
    out.print(f"started {run['started_at']}  finished {run['finished_at']}  full resync: {run['full_resync']}")
    if run["error"]:
        out.print(f"[red]error:[/] {run['error']}", highlight=False)
    _print_counts(run["counts"], run.get("timings") or {})
    _print_delivery(run.get("delivery") or {})
    total = sum(n for s, n in service.row_counts(ws, run_id).items() if status is None or s == status)
    shown = f"{offset + 1}-{offset + len(rows)} of {total}" if rows else f"none of {total}"
    table = Table("primary key", "operation", "status", "reason", title=f"rows ({status or 'all'}): {shown}")
    for r in rows:
        table.add_row(str(r.pk), r.operation, _status(r.status), r.reason or "")
    out.print(table)
    if offset + len(rows) < total:
        out.print(
            f"more: smartingest runs show {run_id}"
            + (f" --status {status}" if status else "")
            + f" --offset {offset + len(rows)}"
        )


# -- model and source --------------------------------------------------------------------------------


@model_app.command("preview")
def model_preview(
    name: str, limit: Annotated[int, typer.Option(help="Rows to show.")] = 100, as_json: JsonOption = False
) -> None:
    """The model's first rows."""
    try:
        table = service.preview_model(_workspace(), name, limit)
    except SmartIngestError as exc:
        _fail(exc)
    if as_json:
        _print_json(table.to_pylist())
        return
    view = Table(*table.column_names)
    for row in table.to_pylist():
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
        view.add_row(c["name"], c["type"])
    out.print(view)


@source_app.command("test")
def source_test(name: str) -> None:
    """Connect to a source and run a trivial query."""
    try:
        service.check_source(_workspace(), name)
    except SmartIngestError as exc:
        _fail(exc)
    out.print(f"[green]ok[/]: source {name} is reachable")


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


# -- sandbox and demo ----------------------------------------------------------------------------------


@app.command("sandbox")
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    api_key: Annotated[str | None, typer.Option(help="API key clients must send (generated if not set).")] = None,
    project_type: Annotated[str, typer.Option(help="email, userid or hybrid.")] = "email",
    data_dir: Annotated[Path, typer.Option(help="Where the sandbox keeps its data.")] = Path(".smartingest/sandbox"),
    no_rate_limits: Annotated[bool, typer.Option("--no-rate-limits", help="Turn rate limits off.")] = False,
) -> None:
    """Serve the Iterable-compatible sandbox until stopped (Ctrl-C)."""
    from smartingest.sandbox import SandboxSettings, serve

    if project_type not in ("email", "userid", "hybrid"):
        _fail(ConfigError(f"--project-type must be email, userid or hybrid, not {project_type!r}"))
    serve(
        SandboxSettings(
            host=host,
            port=port,
            api_key=api_key,
            project_type=project_type,
            data_dir=data_dir,
            rate_limits=not no_rate_limits,
        )
    )


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
    "succeeded": "green",
    "synced": "green",
    "warning": "yellow",
    "rejected": "yellow",
    "invalid": "yellow",
    "retry": "magenta",
    "failed": "red",
}


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def _print_counts(counts: dict[str, int], timings: dict[str, float]) -> None:
    c = {k: f"{v:,}" for k, v in counts.items()}
    out.print(
        f"  queried {c['queried']} = invalid {c['invalid']} + unchanged {c['unchanged']} + "
        f"[green]added {c['added']}[/] + [yellow]changed {c['changed']}[/];  [red]removed {c['removed']}[/]",
        highlight=False,
    )
    out.print(
        f"  sent {counts['added'] + counts['changed'] + counts['removed']:,} = [green]synced {c['synced']}[/] + "
        f"rejected {c['rejected']} + retried next run {c['retried_next_run']}"
        + (f" + deferred {c['deferred']}" if counts.get("deferred") else "")
        + (f" + skipped {c['skipped']}" if counts.get("skipped") else ""),
        highlight=False,
    )
    if timings:
        out.print("  timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()), highlight=False)


def _print_delivery(delivery: dict[str, int]) -> None:
    if not delivery.get("requests"):
        return
    d = {k: f"{delivery.get(k, 0):,}" for k in ("requests", "retries", "throttled", "server_errors", "no_response")}
    line = (
        f"  requests: {d['requests']}, retried {d['retries']} (throttled {d['throttled']}, "
        f"server errors {d['server_errors']}, no response {d['no_response']})"
    )
    if delivery.get("splits"):
        line += f", batches split {delivery['splits']:,}"
    out.print(line, highlight=False)


def print_run_summary(result: service.RunResult) -> None:
    out.print(f"[bold]Run #{result.run_id}[/] of [bold]{result.sync_name}[/]: {_status(result.status)}")
    if result.error:
        out.print(f"[red]error:[/] {result.error}", highlight=False)
    _print_counts(result.counts, result.timings)
    _print_delivery(result.delivery)
    if result.counts.get("rejected") or result.counts.get("invalid") or result.counts.get("retried_next_run"):
        out.print(f"See the rows: smartingest runs show {result.run_id} --status rejected (or invalid, retry)")


def _print_plan(result: service.PlanResult) -> None:
    c = result.counts
    out.print(f"[bold]Plan for {result.sync_name}[/] (nothing sent)")
    out.print(
        f"queried {c.queried}, invalid {c.invalid}, unchanged {c.unchanged}, "
        f"[green]added {c.added}[/], [yellow]changed {c.changed}[/], [red]removed {c.removed}[/]"
    )
    for sample in result.invalid_samples:
        out.print(f"  invalid: {sample['reason']}", highlight=False)
    for sample in result.rejected_samples:
        out.print(f"  would be rejected: {sample['primary_key']}: {sample['reason']}", highlight=False)
    if result.sample_requests:
        out.print("Sample request (POST /api/users/bulkUpdate):")
        out.print_json(json.dumps(result.sample_requests[0]))


def main() -> None:
    """Entry point: a bug prints one line (the traceback only with --verbose), never a wall of text."""
    try:
        app(standalone_mode=True)
    except Exception as exc:
        if _state.get("verbose"):
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (this is a bug; run again with --verbose "
            "for the traceback and report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)
