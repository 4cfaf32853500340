"""The REST API: versioned under ``/api/v1``, described by the OpenAPI document FastAPI serves
(``/openapi.json``, ``/docs``), every route but ``/healthz`` behind an API token
(``Authorization: Bearer TOKEN``; ``smartingest token create NAME`` makes one).

No logic lives here: each route calls one service function and shapes its answer. Errors are JSON,
``{"error": {"type": ..., "message": ...}}``, with a status that says whose fault it is: 401 no or a bad
token, 404 an unknown name or run, 409 a conflict (the sync is running, a definition is in use), 422 a
definition or a request that does not validate, 502 a source or Iterable that failed, 503 the service's
own state (its CDC state store) not usable. Secrets are never
in an answer: definitions show them as ``********``, which saved back keeps the stored value.

Runs triggered here are queued; the server's dispatcher executes queued runs (these and the scheduler's)
on its workers (threads), one per sync at a time: a run whose sync is running waits, queued, and is
executed when the sync is free (scheduler/loop.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from smartingest import __version__, service
from smartingest.errors import (
    ConfigError,
    DefinitionInUseError,
    DestinationError,
    MappingError,
    QuotaError,
    RunNotQueuedError,
    SmartIngestError,
    SourceError,
    StateError,
    SyncLockedError,
    UnknownNameError,
)
from smartingest.scheduler.loop import Dispatcher, Scheduler, fresh
from smartingest.server.deps import Ws
from smartingest.server.metrics import ledger_registry, metrics_text
from smartingest.server.ui import mount_ui

Kinds = Literal["sources", "models", "destinations", "syncs"]
KIND_OF: dict[str, service.Kind] = {
    "sources": "source",
    "models": "model",
    "destinations": "destination",
    "syncs": "sync",
}


_bearer = HTTPBearer(auto_error=False)


def _authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    owner = service.token_owner(request.app.state.ws, credentials.credentials) if credentials else None
    if owner is None:
        raise HTTPException(
            401, "send a valid API token: Authorization: Bearer TOKEN", headers={"WWW-Authenticate": "Bearer"}
        )
    return owner


# A run id as the metadata database can hold it (a 64-bit integer): any other is a 422, not a query.
RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The run's id.")]
# Module-level (not inside create_app): FastAPI reads these annotations by name from the module.
API = [Depends(_authenticated)]


class RowTestRequest(BaseModel):
    primary_key: str | None = Field(None, description="The row's key as runs show it; none: the model's first row.")
    send: bool = Field(False, description="Send the request and show Iterable's answer.")


def create_app(open_workspace: Callable[[], service.Workspace], run_workers: int = 2, schedule: bool = True) -> FastAPI:
    """The API over the workspace ``open_workspace`` opens (once, at start-up), with its dispatcher
    executing queued runs on ``run_workers`` workers and, when ``schedule``, its scheduler."""

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> Any:
        ws = open_workspace()
        app_.state.ws = ws
        app_.state.metrics = ledger_registry(lambda: ws)
        dispatcher = Dispatcher(fresh(ws), run_workers)
        loops: list[Dispatcher | Scheduler] = [dispatcher]
        if schedule:
            loops.append(Scheduler(fresh(ws), dispatcher.nudge))
        app_.state.dispatcher = dispatcher
        for loop in loops:
            loop.start()
        try:
            yield
        finally:
            for loop in reversed(loops):
                loop.stop()

    app = FastAPI(
        title="smartingest",
        version=__version__,
        description="Sync data from your warehouse into Iterable, sending only what changed.",
        lifespan=lifespan,
    )

    mount_ui(app)

    @app.exception_handler(SmartIngestError)
    async def smartingest_error(_request: Request, exc: SmartIngestError) -> JSONResponse:
        return _error(_status_of(exc), type(exc).__name__, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "HTTPError", str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error(422, "RequestValidationError", messages)

    @app.get("/metrics", dependencies=API, tags=["service"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics: runs by status, rows by count, requests to Iterable by endpoint and outcome
        (429s included) and their latency."""
        registry = app.state.metrics
        return PlainTextResponse(metrics_text(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Whether the service and its metadata database answer (no token needed)."""
        with app.state.ws.ledger.engine.connect() as con:
            con.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    # -- syncs --------------------------------------------------------------------------------------

    @app.get("/api/v1/sync-summaries", dependencies=API, tags=["syncs"])
    def sync_summaries(ws: Ws) -> list[dict[str, Any]]:
        """Every sync with its type, schedule, last run and the rows in its snapshot."""
        return [summary.as_dict() for summary in service.list_syncs(ws)]

    @app.get("/api/v1/quota", dependencies=API, tags=["syncs"])
    def quota(ws: Ws) -> list[dict[str, Any]]:
        """Each organization's sync quota: the production syncs that count (and those deleted this month
        after they ran, which count until it ends) and the room left; ``limit`` null: no quota."""
        return [org.as_dict() for org in service.quota_usage(ws)]

    @app.post("/api/v1/syncs/{name}/runs", dependencies=API, tags=["syncs"], status_code=202)
    def trigger_run(name: str, ws: Ws, full_resync: bool = False) -> dict[str, Any]:
        """Queue a run (a full resync if asked) for the server's workers to execute; returns its id."""
        run_id = service.enqueue_run(ws, name, full_resync, trigger="api")
        app.state.dispatcher.nudge()
        return {"run_id": run_id, "status": "queued"}

    @app.post("/api/v1/syncs/{name}/plan", dependencies=API, tags=["syncs"])
    def plan(name: str, ws: Ws, samples: Annotated[int, Query(ge=0, le=20)] = 3) -> dict[str, Any]:
        """What the next run would send (dry run: nothing is sent, no state changes)."""
        return service.plan(ws, name, samples).as_dict()

    @app.post("/api/v1/syncs/{name}/test-row", dependencies=API, tags=["syncs"])
    def test_row(name: str, request: RowTestRequest, ws: Ws) -> dict[str, Any]:
        """The exact request a run would send for one row (the model's first without a key); with ``send``,
        sent, with Iterable's answer."""
        return service.test_row(ws, name, request.primary_key, request.send).as_dict()

    @app.post("/api/v1/syncs/{name}/enable", dependencies=API, tags=["syncs"])
    def enable(name: str, ws: Ws) -> dict[str, bool]:
        """Turn the sync's schedule on."""
        service.set_enabled(ws, name, True)
        return {"enabled": True}

    @app.post("/api/v1/syncs/{name}/disable", dependencies=API, tags=["syncs"])
    def disable(name: str, ws: Ws) -> dict[str, bool]:
        """Turn the sync's schedule off (it still runs when asked)."""
        service.set_enabled(ws, name, False)
        return {"enabled": False}

    @app.post("/api/v1/sources/{name}/test", dependencies=API, tags=["sources"])
    def test_source(name: str, ws: Ws) -> dict[str, Any]:
        """Connect to the source and run a trivial query: ``ok``, or the error that names the fix."""
        try:
            service.check_source(ws, name)
        except SourceError as exc:
            return {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}
        return {"ok": True, "error": None}

    @app.post("/api/v1/destinations/{name}/test", dependencies=API, tags=["destinations"])
    def test_destination(name: str, ws: Ws) -> dict[str, Any]:
        """Ask the Iterable project for its user fields with the API key: does it answer, with what."""
        check = service.check_destination(ws, name)
        return {"ok": check.ok, "message": check.message}

    @app.get("/api/v1/models/{name}/preview", dependencies=API, tags=["models"])
    def preview_model(name: str, ws: Ws, limit: Annotated[int, Query(ge=1, le=100)] = 100) -> dict[str, Any]:
        """The model's columns (name and type) and its first rows."""
        schema = service.model_schema(ws, name)
        return {
            "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
            "rows": service.preview_rows(ws, name, limit),
        }

    @app.post("/api/v1/sync-drafts/{name}/preview", dependencies=API, tags=["syncs"])
    def preview_draft(
        name: str,
        ws: Ws,
        definition: Annotated[dict[str, Any], Body()],
        primary_key: str | None = None,
    ) -> dict[str, Any]:
        """The request a sync defined as the body (its keys as in a project file; not saved: what a sync
        editor holds) would send for one row of its model (``primary_key``, or the first row), templates
        rendered and field types checked. Sends and saves nothing; a mistake is a 422 naming its key."""
        return service.preview_sync(ws, name, definition, primary_key).as_dict()

    @app.post("/api/v1/syncs/{name}/reset", dependencies=API, tags=["syncs"])
    def reset(name: str, ws: Ws) -> dict[str, bool]:
        """Forget the sync's CDC snapshot: its next run sends every row."""
        return {"existed": service.reset(ws, name)}

    # -- runs ---------------------------------------------------------------------------------------

    @app.get("/api/v1/runs", dependencies=API, tags=["runs"])
    def list_runs(
        ws: Ws,
        sync: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> list[dict[str, Any]]:
        """The newest runs, of one sync or of all, of one status or of all."""
        return [run.as_dict() for run in service.list_runs(ws, sync, status, limit)]

    @app.get("/api/v1/runs/{run_id}", dependencies=API, tags=["runs"])
    def get_run(run_id: RunId, ws: Ws) -> dict[str, Any]:
        run = service.get_run(ws, run_id)
        if run is None:
            raise UnknownNameError(f"no run #{run_id}")
        return run.as_dict()

    @app.post("/api/v1/runs/{run_id}/cancel", dependencies=API, tags=["runs"])
    def cancel_run(run_id: RunId, ws: Ws) -> dict[str, bool]:
        """Ask a run to stop (a queued one ends at once); ``false`` when it had ended already."""
        return {"cancelling": service.cancel_run(ws, run_id)}

    @app.get("/api/v1/runs/{run_id}/rows", dependencies=API, tags=["runs"])
    def run_rows(
        run_id: RunId,
        ws: Ws,
        status: str | None = None,
        operation: str | None = None,
        reason_code: str | None = None,
        primary_key: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> dict[str, Any]:
        """A page of a run's row outcomes, filtered by status, operation, reason code and primary key."""
        if service.get_run(ws, run_id) is None:
            raise UnknownNameError(f"no run #{run_id}")
        where = {"operation": operation, "reason_code": reason_code, "primary_key": primary_key}
        rows = service.run_rows(ws, run_id, status, limit, offset, **where)
        total = service.count_rows(ws, run_id, status, **where)
        return {"total": total, "offset": offset, "rows": [row.__dict__ for row in rows]}

    # -- definitions (last: /api/v1/{kinds} would take the paths of the routes above) -------------------

    @app.get("/api/v1/{kinds}", dependencies=API, tags=["definitions"])
    def list_definitions(kinds: Kinds, ws: Ws) -> dict[str, dict[str, Any]]:
        """Every source, model, destination or sync, by name (secrets shown as ********)."""
        return service.list_definitions(ws, KIND_OF[kinds])

    @app.get("/api/v1/{kinds}/{name}", dependencies=API, tags=["definitions"])
    def get_definition(kinds: Kinds, name: str, ws: Ws) -> dict[str, Any]:
        definitions = service.list_definitions(ws, KIND_OF[kinds])
        if name not in definitions:
            raise UnknownNameError(f"no {KIND_OF[kinds]} named {name!r}")
        return definitions[name]

    @app.put("/api/v1/{kinds}/{name}", dependencies=API, tags=["definitions"])
    def put_definition(
        kinds: Kinds, name: str, ws: Ws, definition: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        """Create or update one object from its keys as a project file holds them; an ``id`` of an existing
        object renames it. Secrets left as ******** keep their stored value."""
        service.save_shown_definition(ws, KIND_OF[kinds], name, definition)
        return service.list_definitions(ws, KIND_OF[kinds])[name]

    @app.delete("/api/v1/{kinds}/{name}", dependencies=API, tags=["definitions"], status_code=204)
    def delete_definition(kinds: Kinds, name: str, ws: Ws) -> Response:
        """Delete one object; refused (409) while another refers to it."""
        service.delete_definition(ws, KIND_OF[kinds], name)
        return Response(status_code=204)

    return app


def _status_of(exc: SmartIngestError) -> int:
    """Whose fault: the request's (404, 409, 422), a source's or Iterable's (502), the service's state (503)."""
    match exc:
        case UnknownNameError():
            return 404
        case SyncLockedError() | RunNotQueuedError() | DefinitionInUseError() | QuotaError():
            return 409
        case ConfigError() | MappingError():
            return 422
        case SourceError() | DestinationError():
            return 502
        case StateError():
            return 503
        case _:
            return 422


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)
