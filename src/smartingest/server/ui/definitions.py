"""The pages of the definitions a sync is made of and that a form can hold whole: sources and destinations
(models have their own pages: models.py). Each kind is described once (``DefinitionKind``: the model its
form is made from, the keys it fixes itself, the test of a connection); one set of routes serves every
kind: a list with a test per object, a form to add or edit one (a secret never sent back to the page,
kept when left empty), a test of what the form holds before it is saved, and delete (refused, with the
reason, while another definition refers to it)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from smartingest import service
from smartingest.errors import SmartIngestError, SourceError, UnknownNameError
from smartingest.server.deps import Ws
from smartingest.server.ui.forms import Posted, form_fields, read_form
from smartingest.server.ui.notices import notice
from smartingest.server.ui.render import not_found, page
from smartingest.server.ui.session import Viewer


class TestFailed(Exception):
    """A connection test that did not pass, with what the source or Iterable said."""


@dataclass(frozen=True)
class DefinitionKind:
    kind: service.Kind
    path: str  # "sources": its pages are /sources, /sources/new, /sources/NAME
    label: str  # "source"
    intro: str  # what one is, for the empty list
    settings: Callable[[dict[str, Any]], type[BaseModel]]  # the model of its form, for a definition
    fixed: Callable[[dict[str, str]], dict[str, Any]]  # keys the page sets itself (a source's type, engine)
    main: frozenset[str]  # fields drawn unfolded; the others fold under "More settings"
    test_label: str
    test_draft: Callable[[service.Workspace, str, dict[str, Any]], str]  # raises TestFailed
    test_saved: Callable[[service.Workspace, str], str]  # raises TestFailed
    columns: Callable[[service.Workspace, str, dict[str, Any]], list[str]]  # a row of the list
    headers: tuple[str, ...]
    head_template: str | None = None  # what the form asks before the settings (a source's type and engine)


def _source_settings(definition: dict[str, Any]) -> type[BaseModel]:
    return service.source_settings(str(definition.get("type") or "postgres"))


def _source_fixed(form: dict[str, str]) -> dict[str, Any]:
    fixed = {"type": form.get("type") or "postgres", "engine": form.get("engine") or "basic"}
    planner_schema = (form.get("planner_schema") or "").strip()
    if planner_schema and planner_schema != service.DEFAULT_PLANNER_SCHEMA:
        fixed["planner_schema"] = planner_schema
    return fixed


def _test_source(ws: service.Workspace, name: str, definition: dict[str, Any]) -> str:
    try:
        service.check_source_definition(ws, name, definition)
    except SourceError as exc:
        raise TestFailed(str(exc)) from exc
    return "The connection works."


def _test_saved_source(ws: service.Workspace, name: str) -> str:
    try:
        service.check_source(ws, name)
    except SourceError as exc:
        raise TestFailed(str(exc)) from exc
    return "The connection works."


def _test_destination(ws: service.Workspace, name: str, definition: dict[str, Any]) -> str:
    check = service.check_destination_definition(ws, name, definition)
    if not check.ok:
        raise TestFailed(check.message)
    return check.message


def _test_saved_destination(ws: service.Workspace, name: str) -> str:
    check = service.check_destination(ws, name)
    if not check.ok:
        raise TestFailed(check.message)
    return check.message


SOURCES = DefinitionKind(
    kind="source",
    path="sources",
    label="source",
    intro="A source is a database or warehouse smartingest reads from: "
    + ", ".join(service.SOURCE_TYPES)
    + " in this version.",
    settings=_source_settings,
    fixed=_source_fixed,
    # What locates a database and logs into it, across the connectors; the rest has defaults most keep.
    main=frozenset(
        {"host", "port", "database", "user", "password", "path", "account", "warehouse", "role", "schema"}
        | {"catalog", "project", "dataset", "region", "service_name", "work_group", "s3_staging_dir"}
        | {"engine_name", "account_name", "access_token", "client_id", "client_secret", "private_key_path"}
    ),
    test_label="Test connection",
    test_draft=_test_source,
    test_saved=_test_saved_source,
    columns=lambda ws, name, d: [
        str(d.get("type")),
        str(d.get("engine") or "basic"),
        ", ".join(sorted(m for m, model in ws.config.models.items() if model.source == name)) or "—",
    ],
    headers=("Type", "Engine", "Used by models"),
    head_template="_source_head.html",
)
DESTINATIONS = DefinitionKind(
    kind="destination",
    path="destinations",
    label="destination",
    intro="A destination is an Iterable project, reached with one of its server-side API keys. Production "
    "projects count towards the sync quota; test projects do not.",
    settings=lambda _definition: service.DestinationConfig,
    fixed=lambda _form: {},
    main=frozenset({"api_key", "region", "project_type", "environment", "organization"}),
    test_label="Check the API key",
    test_draft=_test_destination,
    test_saved=_test_saved_destination,
    columns=lambda ws, name, d: [
        str(d.get("region") or "us"),
        str(d.get("project_type") or "email"),
        str(d.get("environment") or "production"),
        str(d.get("organization") or "default"),
        ", ".join(sorted(s for s, sync in ws.config.syncs.items() if sync.destination == name)) or "—",
    ],
    headers=("Region", "Project type", "Environment", "Organization", "Used by syncs"),
)
ENGINES = {
    "basic": "Basic: reads the model and keeps what was sent beside smartingest (read-only access is enough).",
    "lightning": "Lightning: keeps what was sent in a schema inside the source and diffs there, so only "
    "changed rows leave it (needs the right to create tables in that schema).",
}


def router_for(spec: DefinitionKind) -> APIRouter:
    """The pages of one kind of definition."""
    router = APIRouter()
    base = f"/{spec.path}"

    @router.get(base)
    def listing(
        request: Request, ws: Ws, viewer: Viewer, notice_code: Annotated[str | None, Query(alias="notice")] = None
    ) -> Response:
        shown = service.list_definitions(ws, spec.kind)
        rows = {name: spec.columns(ws, name, d) for name, d in shown.items()}
        return page(
            request,
            "definitions.html",
            nav=spec.path,
            viewer=viewer,
            spec=spec,
            rows=rows,
            notice=notice(notice_code),
        )

    @router.get(f"{base}/new")
    def new(request: Request, ws: Ws, viewer: Viewer, type: str | None = None) -> Response:
        return _form(request, spec, viewer, None, {**spec.fixed({"type": type or ""})})

    @router.post(f"{base}/new")
    def create(request: Request, ws: Ws, viewer: Viewer, form: Posted) -> Response:
        return _save(request, spec, ws, viewer, None, form)

    @router.get(f"{base}/{{name}}")
    def edit(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
        shown = service.list_definitions(ws, spec.kind).get(name)
        if shown is None:
            return _not_found(request, spec, viewer, name)
        return _form(request, spec, viewer, name, shown)

    @router.post(f"{base}/{{name}}")
    def save(request: Request, ws: Ws, viewer: Viewer, name: str, form: Posted) -> Response:
        return _save(request, spec, ws, viewer, name, form)

    @router.post(f"{base}/{{name}}/test")
    def test(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
        """A test from the list: its result in place."""
        try:
            message = spec.test_saved(ws, name)
        except (TestFailed, SmartIngestError) as exc:
            return page(request, "_test_result.html", ok=False, message=str(exc))
        return page(request, "_test_result.html", ok=True, message=message)

    @router.post(f"{base}/{{name}}/delete")
    def delete(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
        try:
            service.delete_definition(ws, spec.kind, name)
        except UnknownNameError:
            return _not_found(request, spec, viewer, name)
        except SmartIngestError as exc:
            shown = service.list_definitions(ws, spec.kind).get(name, {})
            return _form(request, spec, viewer, name, shown, status_code=409, problem=str(exc))
        return RedirectResponse(f"{base}?notice=deleted_definition", status_code=303)

    return router


def _save(
    request: Request, spec: DefinitionKind, ws: service.Workspace, viewer: str, name: str | None, form: dict[str, str]
) -> Response:
    """Save the form (``name`` None: a new object), or test what it holds."""
    definition: dict[str, Any] = dict(spec.fixed(form))
    if name is not None and form.get("id"):
        definition["id"] = form["id"]  # a rename keeps the id
    with contextlib.suppress(SmartIngestError):  # an unknown source type: saving says so, naming the types
        definition.update(read_form(spec.settings(definition), form))
    new_name = (form.get("name") or "").strip()
    try:
        if form.get("action") == "test":
            message = spec.test_draft(ws, new_name or name or "draft", definition)
            return _form(request, spec, viewer, name, definition, form, tested=message)
        service.save_shown_definition(ws, spec.kind, new_name, definition)
    except TestFailed as exc:
        return _form(request, spec, viewer, name, definition, form, test_failed=str(exc))
    except SmartIngestError as exc:
        return _form(request, spec, viewer, name, definition, form, status_code=422, problem=str(exc))
    return RedirectResponse(f"/{spec.path}?notice=saved", status_code=303)


def _form(
    request: Request,
    spec: DefinitionKind,
    viewer: str,
    name: str | None,
    definition: dict[str, Any],
    values: dict[str, str] | None = None,
    status_code: int = 200,
    problem: str | None = None,
    tested: str | None = None,
    test_failed: str | None = None,
) -> Response:
    settings: type[BaseModel] | None
    try:
        settings = spec.settings(definition)
    except SmartIngestError as exc:
        settings, problem = None, problem or str(exc)
    shown = dict(definition)
    if values is not None and settings is not None:  # what was typed stays (a secret never goes back)
        secrets = {f.name for f in form_fields(settings, {}) if f.kind == "password"}
        shown.update({k: v for k, v in values.items() if k in settings.model_fields and k not in secrets})
    fields = form_fields(settings, shown, skip=frozenset({"id"}), main=spec.main) if settings else []
    return page(
        request,
        "definition_form.html",
        status_code,
        nav=spec.path,
        viewer=viewer,
        spec=spec,
        name=name,
        new_name=(values or {}).get("name", name or ""),
        definition=definition,
        object_id=definition.get("id"),
        fields=fields,
        problem=problem,
        tested=tested,
        test_failed=test_failed,
        types=service.SOURCE_TYPES,
        engines=ENGINES,
    )


def _not_found(request: Request, spec: DefinitionKind, viewer: str, name: str) -> Response:
    return not_found(request, viewer, spec.path, f"No {spec.label} is named {name!r}.")
