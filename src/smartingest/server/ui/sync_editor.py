"""The sync editor, in the order Smart Ingest asks: model and destination, sync type, that type's settings,
field mappings (suggested ones filled in, a live preview of one row's request with templates rendered),
schedule. One page, drawn again by the server as choices are made (no script needed; htmx keeps the
preview live). The quota is shown before saving would be refused."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from smartingest import service
from smartingest.errors import SmartIngestError
from smartingest.server.deps import Ws
from smartingest.server.ui.forms import Posted, form_fields, read_form
from smartingest.server.ui.render import not_found, page
from smartingest.server.ui.session import Viewer

router = APIRouter()
TYPES = {
    "users": "Users: each row updates (or creates) a user profile.",
    "events": "Events: each new row is tracked as an event on a user.",
    "catalog": "Catalog: each row is an item of a catalog.",
    "static_list": "Static list: each row's user is subscribed to a list (removed rows unsubscribed).",
    "email_change": "Email address changes: each row moves a user to a new email address.",
    "user_deletion": "Deleting, forgetting or unforgetting users: each row names a user to act on.",
}
# Keys the editor draws itself (or that a form cannot hold: the API and project files take them).
OWN_KEYS = frozenset({"id", "type", "model", "destination", "mappings", "schedule", "enabled", "list", "field_types"})
# Settings drawn unfolded: what decides what a sync of each type does; the rest folds under "More settings".
MAIN_SETTINGS = frozenset(
    {
        "match_on",
        "mode",
        "on_removed",
        "event_name",
        "event_name_column",
        "created_at",
        "event_id",
        "catalog",
        "item_id",
        "replace",
        "new_email",
        "action",
        "update_existing_users_only",
    }
)
KINDS = ("column", "static", "template", "variable")  # a mapping row; objects and arrays are written as YAML
FIELD_TYPES = service.CATALOG_FIELD_TYPES  # a catalog field's type, chosen per row
KIND_KEY = {"column": "from", "static": "static", "template": "template", "variable": "variable"}
BLANK_ROWS = 3


@router.get("/syncs/new")
def new_sync(request: Request, ws: Ws, viewer: Viewer) -> Response:
    draft: dict[str, Any] = {
        "type": "users",
        "model": next(iter(ws.config.models), ""),
        "destination": next(iter(ws.config.destinations), ""),
        "mappings": [],
    }
    return _editor(request, ws, viewer, None, draft, "", suggest=True)


@router.get("/syncs/{name}/edit")
def edit_sync(request: Request, ws: Ws, viewer: Viewer, name: str) -> Response:
    shown = service.list_definitions(ws, "sync").get(name)
    if shown is None:
        return not_found(request, viewer, "syncs", f"No sync is named {name!r}.")
    return _editor(request, ws, viewer, name, shown, name, preview=True)


@router.post("/syncs/new")
def create_sync(request: Request, ws: Ws, viewer: Viewer, form: Posted) -> Response:
    return _act(request, ws, viewer, None, form)


@router.post("/syncs/{name}/edit")
def save_sync(request: Request, ws: Ws, viewer: Viewer, name: str, form: Posted) -> Response:
    return _act(request, ws, viewer, name, form)


@router.post("/sync-preview")
def live_preview(request: Request, ws: Ws, viewer: Viewer, form: Posted) -> Response:
    """The preview panel for what the editor holds now (htmx swaps it in as the form changes)."""
    definition, problem = draft_of(form)
    name = (form.get("name") or "").strip() or "draft"
    return page(request, "_sync_preview.html", **_preview(ws, name, definition, form.get("preview_key"), problem))


def _act(request: Request, ws: service.Workspace, viewer: str, name: str | None, form: dict[str, str]) -> Response:
    """Save, or draw the editor again: after a change of model or type, to fill in suggested mappings, or
    to preview."""
    definition, problem = draft_of(form)
    new_name = (form.get("name") or "").strip()
    action = form.get("action")
    if action == "save" and problem is None:
        try:
            service.save_shown_definition(ws, "sync", new_name, definition)
        except SmartIngestError as exc:
            problem = str(exc)
        else:
            return RedirectResponse(f"/syncs/{new_name}?notice=saved", status_code=303)
    return _editor(
        request,
        ws,
        viewer,
        name,
        definition,
        new_name,
        suggest=action == "suggest",
        preview=action != "refresh",
        preview_key=form.get("preview_key"),
        problem=problem,
        status_code=422 if problem and action == "save" else 200,
    )


def draft_of(form: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The sync's keys as a project file holds them, from the editor's form; and a problem the form itself
    has (YAML that does not parse), naming the field."""
    sync_type = form.get("type") or "users"
    definition: dict[str, Any] = {
        "type": sync_type,
        "model": form.get("model", ""),
        "destination": form.get("destination", ""),
    }
    if form.get("id"):
        definition["id"] = form["id"]
    settings = service.SYNC_TYPES.get(sync_type)
    if settings is not None:
        definition.update(read_form(settings, form, skip=OWN_KEYS))
    if sync_type == "static_list":
        definition.update(_list_ref(form))
    if sync_type == "catalog":
        definition["field_types"] = {
            path: kind for path, kind in _rows(form, "ft", "field", "type") if path.strip() and kind in FIELD_TYPES
        }
    problem = None
    mappings: list[dict[str, Any]] = []
    for kind, value, to in _rows(form, "m", "kind", "value", "to"):
        if value.strip() or to.strip():
            kind = kind or "column"
            mappings.append(
                {KIND_KEY.get(kind, "from"): value if kind == "template" else value.strip(), "to": to.strip()}
            )
    nested = form.get("nested", "").strip()
    if nested:
        try:
            more = yaml.safe_load(nested)
        except yaml.YAMLError as exc:
            more, problem = None, f"Object and array mappings: the YAML does not parse ({exc})"
        if isinstance(more, list):
            mappings.extend(more)
        elif more is not None:
            problem = "Object and array mappings: write a YAML list of mappings (each line starting with '- ')"
    definition["mappings"] = mappings
    definition["schedule"] = _schedule(form)
    definition["enabled"] = form.get("enabled") == "on"
    return definition, problem


def _rows(form: dict[str, str], prefix: str, *columns: str) -> list[tuple[str, ...]]:
    """The rows of one of the editor's tables: ``{prefix}{i}_{column}`` for each row the page drew (its
    count in ``{prefix}_rows``; a forged count is moot)."""
    count = form.get(f"{prefix}_rows", "")
    return [
        tuple(form.get(f"{prefix}{i}_{column}", "") for column in columns)
        for i in range(min(int(count), 1000) if count.isdigit() else 0)
    ]


def _list_ref(form: dict[str, str]) -> dict[str, Any]:
    """A static list sync's ``list``: by name or by id, as chosen; left out when not given, so the check
    says it is required."""
    if form.get("list_by") == "id":
        raw = (form.get("list_id") or "").strip()
        return {"list": {"id": int(raw) if raw.isdigit() else raw}} if raw else {}
    name = (form.get("list_name") or "").strip()
    return {"list": {"name": name}} if name else {}


def _schedule(form: dict[str, str]) -> dict[str, Any]:
    match form.get("schedule_kind"):
        case "every":
            return {"every": form.get("every", "").strip()}
        case "cron":
            return {"cron": form.get("cron", "").strip(), "timezone": form.get("timezone", "").strip() or "UTC"}
        case _:
            return {}  # manual: runs only when asked


def _rows_and_nested(mappings: list[Any]) -> tuple[list[dict[str, str]], str]:
    """Mappings as the editor's rows (one per plain column, static, template or variable mapping), and
    the others (objects, arrays, any with more options) as YAML, so that editing keeps every key."""
    rows: list[dict[str, str]] = []
    nested: list[Any] = []
    for mapping in mappings:
        keys = set(mapping) if isinstance(mapping, dict) else set()
        kind = next((k for k, key in KIND_KEY.items() if keys == {key, "to"}), None)
        value = mapping.get(KIND_KEY[kind]) if kind else None
        if kind is not None and (kind != "static" or isinstance(value, str)):
            rows.append({"kind": kind, "value": str(value), "to": str(mapping["to"])})
        else:
            nested.append(mapping)
    text = yaml.safe_dump(nested, sort_keys=False, allow_unicode=True) if nested else ""
    return rows, text


def _editor(
    request: Request,
    ws: service.Workspace,
    viewer: str,
    name: str | None,
    definition: dict[str, Any],
    new_name: str,
    suggest: bool = False,
    preview: bool = False,
    preview_key: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    sync_type = str(definition.get("type") or "users")
    notes: list[str] = []
    if suggest and definition.get("model") and definition.get("destination"):
        try:
            suggestions = service.suggest_draft_mappings(ws, new_name or "draft", definition)
            definition = {**definition, "mappings": [s.as_mapping() for s in suggestions.mappings]}
            notes = [f"{s.column} → {s.field}: {s.why}" for s in suggestions.mappings] + suggestions.notes
        except SmartIngestError as exc:
            notes = [f"No mappings could be suggested: {exc}"]
    rows, nested = _rows_and_nested(list(definition.get("mappings") or []))
    rows += [{"kind": "column", "value": "", "to": ""}] * BLANK_ROWS
    columns: list[str] = []
    if definition.get("model") in ws.config.models:
        try:
            columns = [f.name for f in service.model_schema(ws, str(definition["model"]))]
        except SmartIngestError as exc:
            notes.append(f"The model's columns could not be read: {exc}")
    settings = service.SYNC_TYPES.get(sync_type)
    fields = form_fields(settings, definition, skip=OWN_KEYS, main=MAIN_SETTINGS) if settings else []
    schedule = definition.get("schedule") or {}
    destination = ws.config.destinations.get(str(definition.get("destination")))
    quota = None
    if destination is not None and destination.environment == "production":
        quota = next((q for q in service.quota_usage(ws) if q.organization == destination.organization), None)
    counted = (
        name is not None
        and name in ws.config.syncs
        and (ws.config.destinations[ws.config.syncs[name].destination].environment == "production")
    )
    preview_state = _preview(ws, new_name or name or "draft", definition, preview_key, None) if preview else None
    return page(
        request,
        "sync_form.html",
        status_code,
        nav="syncs",
        viewer=viewer,
        name=name,
        new_name=new_name,
        definition=definition,
        sync_type=sync_type,
        types=TYPES,
        models=list(ws.config.models),
        destinations=list(ws.config.destinations),
        fields=fields,
        rows=rows,
        kinds=KINDS,
        nested=nested,
        columns=columns,
        notes=notes,
        schedule=schedule,
        quota=quota,
        counted=counted,
        list_ref=definition.get("list") if isinstance(definition.get("list"), dict) else {},
        field_types=[*dict(definition.get("field_types") or {}).items(), *[("", "")] * BLANK_ROWS],
        field_type_choices=FIELD_TYPES,
        preview=preview_state,
        problem=problem,
    )


def _preview(
    ws: service.Workspace, name: str, definition: dict[str, Any], key: str | None, problem: str | None
) -> dict[str, Any]:
    """The request the draft would send for one row (the model's first, or ``key``'s), or why not."""
    if problem is not None:
        return {"test": None, "problem": problem, "key": key}
    try:
        test = service.preview_sync(ws, name, definition, (key or "").strip() or None)
    except SmartIngestError as exc:
        return {"test": None, "problem": str(exc), "key": key}
    return {"test": test, "problem": None, "key": key}
