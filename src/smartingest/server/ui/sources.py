"""The source pages: the list (with a connection test per source), and a form per source type that asks
only what that type's connector takes (secrets never sent back to the page), with a connection test of
what the form holds before it is saved."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from smartingest import service
from smartingest.errors import ConfigError, SmartIngestError, SourceError
from smartingest.server.deps import Ws
from smartingest.server.ui.forms import form_fields, read_form
from smartingest.server.ui.notices import notice
from smartingest.server.ui.render import page
from smartingest.server.ui.session import Viewer

router = APIRouter()
ENGINES = {
    "basic": "Basic: reads the model and keeps what was sent beside smartingest (read-only access is enough).",
    "lightning": "Lightning: keeps what was sent in a schema inside the source and diffs there "
    "(not available in this version).",
}
# Shown unfolded: what a connection needs; the rest (timeouts, TLS, names) folds under "More settings".
MAIN_SETTINGS = frozenset({"host", "port", "database", "user", "password", "path", "account", "schema"})


@router.get("/sources")
def source_list(
    request: Request, ws: Ws, viewer: Viewer, notice_code: Annotated[str | None, Query(alias="notice")] = None
) -> Response:
    sources = service.list_definitions(ws, "source")
    used_by = {name: sorted(m for m, model in ws.config.models.items() if model.source == name) for name in sources}
    return page(
        request,
        "sources.html",
        nav="sources",
        viewer=viewer,
        sources=sources,
        used_by=used_by,
        notice=notice(notice_code),
    )


@router.get("/sources/new")
def new_source(request: Request, ws: Ws, viewer: Viewer, type: str | None = None) -> Response:
    return _form(request, viewer, None, {"type": type or "postgres", "engine": "basic"})


@router.get("/sources/{name}")
def edit_source(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    shown = service.list_definitions(ws, "source").get(name)
    if shown is None:
        return page(request, "not_found.html", 404, nav="sources", viewer=viewer, what=f"No source is named {name!r}.")
    return _form(request, viewer, name, shown)


@router.post("/sources/new")
async def create_source(request: Request, ws: Ws, viewer: Viewer) -> Response:
    return await save_source(request, ws, viewer, None)


@router.post("/sources/{name}")
async def save_source(request: Request, ws: Ws, viewer: Viewer, name: str | None) -> Response:
    """Save the form (``name`` None: a new source), or test the connection it describes."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    definition, new_name = _definition(form, name)
    try:
        if form.get("action") == "test":
            service.check_source_definition(ws, new_name or name or "draft", definition)
            return _form(request, viewer, name, definition, values=form, tested="The connection works.")
        service.save_shown_definition(ws, "source", new_name, definition)
    except SourceError as exc:
        return _form(request, viewer, name, definition, form, status_code=200, test_failed=str(exc))
    except (ConfigError, SmartIngestError) as exc:
        return _form(request, viewer, name, definition, form, status_code=422, problem=str(exc))
    return RedirectResponse("/sources?notice=saved", status_code=303)


@router.post("/sources/{name}/test")
def test_source(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    """A connection test from the list: its result in place."""
    try:
        service.check_source(ws, name)
    except SmartIngestError as exc:
        return page(request, "_test_result.html", ok=False, message=str(exc))
    return page(request, "_test_result.html", ok=True, message="The connection works.")


@router.post("/sources/{name}/delete")
def delete_source(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    try:
        service.delete_definition(ws, "source", name)
    except SmartIngestError as exc:
        shown = service.list_definitions(ws, "source").get(name, {})
        return _form(request, viewer, name, shown, status_code=409, problem=str(exc))
    return RedirectResponse("/sources?notice=deleted_definition", status_code=303)


def _definition(form: dict[str, str], name: str | None) -> tuple[dict[str, Any], str]:
    """The source's keys from the form, and the name it is saved under."""
    source_type = form.get("type", "")
    definition: dict[str, Any] = {"type": source_type, "engine": form.get("engine") or "basic"}
    if name is not None and form.get("id"):
        definition["id"] = form["id"]  # a rename keeps the id
    with contextlib.suppress(SmartIngestError):  # an unknown type: saving says so, naming the types there are
        definition.update(read_form(service.source_settings(source_type), form))
    return definition, (form.get("name") or "").strip()


def _form(
    request: Request,
    viewer: str,
    name: str | None,
    definition: dict[str, Any],
    values: dict[str, str] | None = None,
    status_code: int = 200,
    problem: str | None = None,
    tested: str | None = None,
    test_failed: str | None = None,
) -> Response:
    source_type = str(definition.get("type") or "postgres")
    settings: type[BaseModel] | None
    try:
        settings = service.source_settings(source_type)
    except SmartIngestError as exc:
        settings, problem = None, problem or str(exc)
    shown = dict(definition)
    if values is not None and settings is not None:  # what was typed stays (a secret never goes back)
        secrets = {f.name for f in form_fields(settings, {}) if f.kind == "password"}
        shown.update({k: v for k, v in values.items() if k in settings.model_fields and k not in secrets})
    fields = form_fields(settings, shown, main=MAIN_SETTINGS) if settings else []
    return page(
        request,
        "source_form.html",
        status_code,
        nav="sources",
        viewer=viewer,
        name=name,
        new_name=(values or {}).get("name", name or ""),
        source_type=source_type,
        types=service.SOURCE_TYPES,
        engines=ENGINES,
        engine=definition.get("engine", "basic"),
        source_id=definition.get("id"),
        fields=fields,
        problem=problem,
        tested=tested,
        test_failed=test_failed,
    )
