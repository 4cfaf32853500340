"""The model pages: the list, and an editor that defines a model from a table picker or a SQL query,
previews its first 100 rows, and picks the primary key from the columns, warning when the rows shown hold
null or repeated keys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from smartingest import service
from smartingest.errors import SmartIngestError, UnknownNameError
from smartingest.server.deps import Ws
from smartingest.server.ui.forms import Posted
from smartingest.server.ui.notices import notice
from smartingest.server.ui.render import not_found, page
from smartingest.server.ui.session import Viewer

router = APIRouter()


@router.get("/models")
def model_list(
    request: Request, ws: Ws, viewer: Viewer, notice_code: Annotated[str | None, Query(alias="notice")] = None
) -> Response:
    models = service.list_definitions(ws, "model")
    used_by = {name: sorted(s for s, sync in ws.config.syncs.items() if sync.model == name) for name in models}
    return page(
        request, "models.html", nav="models", viewer=viewer, models=models, used_by=used_by, notice=notice(notice_code)
    )


@router.get("/models/tables")
def table_options(request: Request, ws: Ws, viewer: Viewer, source: str = "", table: str = "") -> Response:
    """The table picker of a source: its tables and views, or why they cannot be listed."""
    tables, problem = _tables(ws, source)
    return page(request, "_table_picker.html", tables=tables, table=table, tables_problem=problem)


@router.get("/models/new")
def new_model(request: Request, ws: Ws, viewer: Viewer, source: str | None = None) -> Response:
    first = source or next(iter(ws.config.sources), "")
    return _editor(request, ws, viewer, None, {"source": first})


@router.get("/models/{name}")
def edit_model(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    shown = service.list_definitions(ws, "model").get(name)
    if shown is None:
        return not_found(request, viewer, "models", f"No model is named {name!r}.")
    return _editor(request, ws, viewer, name, shown, preview=True)


@router.post("/models/new")
def create_model(request: Request, ws: Ws, viewer: Viewer, form: Posted) -> Response:
    return _save(request, ws, viewer, None, form)


@router.post("/models/{name}")
def save_model(request: Request, ws: Ws, viewer: Viewer, name: str, form: Posted) -> Response:
    return _save(request, ws, viewer, name, form)


@router.post("/models/{name}/delete")
def delete_model(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    try:
        service.delete_definition(ws, "model", name)
    except UnknownNameError:
        return not_found(request, viewer, "models", f"No model is named {name!r}.")
    except SmartIngestError as exc:
        shown = service.list_definitions(ws, "model").get(name, {})
        return _editor(request, ws, viewer, name, shown, status_code=409, problem=str(exc))
    return RedirectResponse("/models?notice=deleted_definition", status_code=303)


def _save(request: Request, ws: service.Workspace, viewer: str, name: str | None, form: dict[str, str]) -> Response:
    """Save the editor's model, or preview it (``action=preview``)."""
    definition = _definition(form)
    if name is not None and form.get("id"):
        definition["id"] = form["id"]
    new_name = (form.get("name") or "").strip()
    if form.get("action") == "preview":
        return _editor(request, ws, viewer, name, definition, new_name=new_name, preview=True)
    try:
        service.save_definition(ws, "model", new_name, definition)
    except SmartIngestError as exc:
        return _editor(request, ws, viewer, name, definition, new_name=new_name, status_code=422, problem=str(exc))
    return RedirectResponse("/models?notice=saved", status_code=303)


def _definition(form: dict[str, str]) -> dict[str, Any]:
    """A model's keys from the editor: a table or a query, and the key columns ticked (or typed)."""
    definition: dict[str, Any] = {"source": form.get("source", "")}
    if form.get("kind") == "sql":
        definition["sql"] = form.get("sql", "")
    else:
        definition["table"] = form.get("table", "")
    ticked = [key.removeprefix("key__") for key in form if key.startswith("key__")]
    typed = [part.strip() for part in form.get("primary_key", "").split(",") if part.strip()]
    keys = ticked or typed
    if keys:
        definition["primary_key"] = keys[0] if len(keys) == 1 else keys
    return definition


def _editor(
    request: Request,
    ws: service.Workspace,
    viewer: str,
    name: str | None,
    definition: dict[str, Any],
    new_name: str | None = None,
    preview: bool = False,
    status_code: int = 200,
    problem: str | None = None,
) -> Response:
    source = str(definition.get("source") or "")
    kind: Literal["table", "sql"] = "sql" if definition.get("sql") is not None else "table"
    tables, tables_problem = _tables(ws, source) if source else ([], None)
    shown, preview_problem = None, None
    if preview:
        try:
            shown = service.preview_draft_model(ws, new_name or name or "draft", definition)
        except SmartIngestError as exc:
            preview_problem = str(exc)
    key = definition.get("primary_key")
    keys = [key] if isinstance(key, str) else list(key or [])
    return page(
        request,
        "model_form.html",
        status_code,
        nav="models",
        viewer=viewer,
        name=name,
        new_name=new_name if new_name is not None else (name or ""),
        definition=definition,
        kind=kind,
        sources=list(ws.config.sources),
        source=source,
        tables=tables,
        table=definition.get("table") or "",
        tables_problem=tables_problem,
        preview=shown,
        preview_problem=preview_problem,
        keys=keys,
        object_id=definition.get("id"),
        problem=problem,
    )


def _tables(ws: service.Workspace, source: str) -> tuple[list[str], str | None]:
    try:
        return service.source_tables(ws, source), None
    except SmartIngestError as exc:
        return [], str(exc)
