"""The sync pages: the list every user starts from (statuses, last and next run, the quota), a sync's
page (its runs, charts of rows and duration, its actions), and the actions themselves."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from smartingest import service
from smartingest.errors import SmartIngestError, UnknownNameError
from smartingest.server.deps import Ws
from smartingest.server.ui.charts import duration_chart, rows_chart
from smartingest.server.ui.forms import Posted
from smartingest.server.ui.notices import notice
from smartingest.server.ui.render import not_found, page
from smartingest.server.ui.session import Viewer

router = APIRouter()
HISTORY = 50  # runs on a sync's page (the charts draw the same)

Action = Literal["run", "resync", "reset", "enable", "disable", "delete"]


@router.get("/syncs")
def sync_list(
    request: Request,
    ws: Ws,
    viewer: Viewer,
    fragment: bool = False,
    notice_code: Annotated[str | None, Query(alias="notice")] = None,
) -> Response:
    problem = None
    try:
        syncs = service.list_syncs(ws)
    except SmartIngestError as exc:  # the definitions or the state store cannot be read: say which
        syncs, problem = [], str(exc)
    context: dict[str, Any] = {"syncs": syncs, "problem": problem, "viewer": viewer}
    if fragment:  # the rows alone, polled by the list to keep statuses current
        return page(request, "_sync_rows.html", **context)
    quota = service.quota_usage(ws)
    return page(request, "syncs.html", nav="syncs", quota=quota, notice=notice(notice_code), **context)


@router.get("/syncs/{name}")
def sync_page(
    request: Request,
    ws: Ws,
    viewer: Viewer,
    name: str,
    notice_code: Annotated[str | None, Query(alias="notice")] = None,
    run: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    return _sync_page(request, ws, viewer, name, notice(notice_code, run))


def _sync_page(
    request: Request,
    ws: service.Workspace,
    viewer: str,
    name: str,
    notice_text: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
    plan: service.PlanResult | None = None,
    row_test: service.RowTest | None = None,
) -> Response:
    try:
        summary = service.sync_summary(ws, name)
    except UnknownNameError:
        return _no_sync(request, viewer, name)
    runs = service.list_runs(ws, name, limit=HISTORY)
    ended = [run for run in reversed(runs) if run.finished_at is not None]
    destination = ws.config.destinations[summary.destination]
    quota_counts = destination.environment == "production"
    return page(
        request,
        "sync.html",
        status_code,
        nav="syncs",
        viewer=viewer,
        sync=summary,
        destination=destination,
        quota_counts=quota_counts,
        runs=runs,
        active=any(run.finished_at is None for run in runs),
        charts=[rows_chart(ended), duration_chart(ended)],
        notice=notice_text,
        problem=problem,
        plan=plan,
        row_test=row_test,
    )


@router.post("/syncs/{name}/plan")
def sync_plan(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    """What the next run would send (a dry run: nothing sent, no state changed), on the sync's page."""
    try:
        return _sync_page(request, ws, viewer, name, plan=service.plan(ws, name, samples=3))
    except UnknownNameError:
        return _no_sync(request, viewer, name)
    except SmartIngestError as exc:
        return _sync_page(request, ws, viewer, name, problem=f"The plan failed: {exc}", status_code=422)


@router.post("/syncs/{name}/test-row")
def sync_test_row(request: Request, ws: Ws, viewer: Viewer, name: str, form: Posted) -> Response:
    """The exact request a run would send for one row; sent, with Iterable's answer, when asked."""
    key = (form.get("primary_key") or "").strip() or None
    try:
        tested = service.test_row(ws, name, key, send=form.get("send") == "on")
    except UnknownNameError as exc:
        if name not in ws.config.syncs:
            return _no_sync(request, viewer, name)
        return _sync_page(request, ws, viewer, name, problem=str(exc), status_code=404)
    except SmartIngestError as exc:
        return _sync_page(request, ws, viewer, name, problem=f"The row test failed: {exc}", status_code=422)
    return _sync_page(request, ws, viewer, name, row_test=tested)


@router.post("/syncs/{name}/{action}")
def sync_action(request: Request, ws: Ws, viewer: Viewer, name: str, action: Annotated[Action, Path()]) -> Response:
    """Run now, full resync, reset CDC, enable, disable or delete; back to the sync's page (the list,
    after a delete), saying what happened, or the sync's page with the error."""
    try:
        match action:
            case "run" | "resync":
                run_id = service.enqueue_run(ws, name, full_resync=action == "resync", trigger="ui")
                request.app.state.dispatcher.nudge()
                return _back(name, "queued" if action == "run" else "resync_queued", run_id)
            case "reset":
                return _back(name, "reset" if service.reset(ws, name) else "nothing_to_reset")
            case "enable" | "disable":
                service.set_enabled(ws, name, action == "enable")
                return _back(name, f"{action}d")
            case "delete":
                service.delete_definition(ws, "sync", name)
                return RedirectResponse("/syncs?notice=deleted", status_code=303)
    except UnknownNameError:
        return _no_sync(request, viewer, name)
    except SmartIngestError as exc:
        return _sync_page(request, ws, viewer, name, problem=str(exc), status_code=409)


def _back(name: str, code: str, run_id: int | None = None) -> Response:
    run = f"&run={run_id}" if run_id is not None else ""
    return RedirectResponse(f"/syncs/{name}?notice={code}{run}", status_code=303)


def _no_sync(request: Request, viewer: str, name: str) -> Response:
    return not_found(request, viewer, "syncs", f"No sync is named {name!r}.")
