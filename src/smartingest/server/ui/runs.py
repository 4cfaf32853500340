"""A run's page: its counts and timings, a live view while it runs (phase, rows, rate), and its row
outcomes paged on the server, filtered by status, operation and reason, searched by primary key, each
rejected row with Iterable's own words ("View error")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from smartingest import service
from smartingest.codes import ReasonCode, RowStatus
from smartingest.errors import SmartIngestError
from smartingest.server.deps import Ws
from smartingest.server.ui.notices import notice
from smartingest.server.ui.render import not_found, page
from smartingest.server.ui.session import Viewer
from smartingest.service import RunRecord

router = APIRouter()
PAGE_ROWS = 50
RunId = Annotated[int, Query(ge=1, le=2**63 - 1)]
OPERATIONS = ("added", "changed", "removed", "invalid")


@router.get("/runs/{run_id}")
def run_page(
    request: Request,
    ws: Ws,
    viewer: Viewer,
    run_id: int,
    status: str | None = None,
    operation: str | None = None,
    reason: str | None = None,
    key: str | None = None,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    notice_code: Annotated[str | None, Query(alias="notice")] = None,
) -> Response:
    run = service.get_run(ws, run_id) if run_id <= 2**63 - 1 else None
    if run is None:
        return not_found(request, viewer, "syncs", f"There is no run #{run_id}.")
    filters = {
        "status": status if status in set(RowStatus) else None,
        "operation": operation if operation in OPERATIONS else None,
        "reason_code": reason if reason in set(ReasonCode) else None,
        "primary_key": key.strip() if key and key.strip() else None,
    }
    where = {k: filters[k] for k in ("operation", "reason_code", "primary_key")}
    problem = None
    try:
        rows = service.run_rows(ws, run_id, filters["status"], PAGE_ROWS, offset, **where)
        total = service.count_rows(ws, run_id, filters["status"], **where)
        by_status = service.row_counts(ws, run_id)
    except SmartIngestError as exc:  # the run's counts still show; its row operations cannot be read
        rows, total, by_status, problem = [], 0, {}, str(exc)
    shown = {
        "status": filters["status"],
        "operation": filters["operation"],
        "reason": filters["reason_code"],
        "key": filters["primary_key"],
    }
    return page(
        request,
        "run.html",
        nav="syncs",
        viewer=viewer,
        run=run,
        live=live_view(run),
        sync_defined=ws.config.sync_named(run.sync_id),
        rows=rows,
        total=total,
        offset=offset,
        page_rows=PAGE_ROWS,
        filters=shown,
        key_columns=service.key_columns(ws, run.sync_id),
        statuses=list(RowStatus),
        operations=OPERATIONS,
        reasons=list(ReasonCode),
        by_status=by_status,
        problem=problem,
        page_link=lambda at: f"/runs/{run_id}?" + urlencode({**{k: v for k, v in shown.items() if v}, "offset": at}),
        notice=notice(notice_code, run_id),
    )


@router.get("/runs/{run_id}/live")
def run_live(request: Request, ws: Ws, viewer: Viewer, run_id: int) -> Response:
    """The live panel, polled while the run is active; once it ended, the page reloads whole."""
    run = service.get_run(ws, run_id) if run_id <= 2**63 - 1 else None
    if run is None or run.finished_at is not None:
        return Response(status_code=200, headers={"HX-Refresh": "true"})
    return page(request, "_run_live.html", run=run, live=live_view(run))


@router.post("/runs/{run_id}/cancel")
def run_cancel(ws: Ws, viewer: Viewer, run_id: int) -> Response:
    code = "cancelling" if service.cancel_run(ws, run_id) else "ended"
    return RedirectResponse(f"/runs/{run_id}?notice={code}", status_code=303)


def live_view(run: RunRecord) -> dict[str, Any] | None:
    """Where an active run is: its phase, rows done (of how many, when known) and rate; None once ended."""
    if run.finished_at is not None:
        return None
    progress = run.progress or {}
    done = int(progress.get("done") or 0)
    total = progress.get("total")
    rate = None
    if progress.get("phase_started_at") and progress.get("updated_at"):
        began = dt.datetime.fromisoformat(progress["phase_started_at"])
        seconds = (dt.datetime.fromisoformat(progress["updated_at"]) - began).total_seconds()
        rate = done / seconds if seconds > 0 else None
    return {
        "phase": progress.get("phase") or ("waiting for a worker" if run.status == "queued" else "starting"),
        "done": done,
        "total": total,
        "percent": min(100, round(done * 100 / total)) if total else None,
        "rate": rate,
    }
