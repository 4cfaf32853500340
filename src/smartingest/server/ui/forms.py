"""Forms made from the definitions' own pydantic models: a connector's settings, a destination. A field's
input follows its type (a password for a secret, a list for choices, a number, a checkbox), its label and
help come from the model, and what the form posts is turned back into the keys a project file holds, so
the model stays the one source of truth for what a form asks."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi import Depends, Request
from pydantic import BaseModel, SecretStr

from smartingest.service import MASKED

Kind = Literal["text", "number", "password", "select", "checkbox", "list"]


async def posted_form(request: Request) -> dict[str, str]:
    """What a form posted, as text. A dependency: the route itself can then be a plain function, run off
    the event loop (the service's calls block)."""
    return {key: str(value) for key, value in (await request.form()).items()}


Posted = Annotated[dict[str, str], Depends(posted_form)]


@dataclass(frozen=True)
class FormField:
    """One input of a form, as a template draws it."""

    name: str
    label: str
    kind: Kind
    value: str  # as the input holds it ("" for a secret: it is never sent to the page)
    required: bool
    help: str
    choices: list[str] = field(default_factory=list)
    checked: bool = False
    secret_stored: bool = False  # a secret whose stored value is kept when the input is left empty
    advanced: bool = False  # drawn folded: it has a default most users keep
    group: str = ""  # drawn folded under this title with the others of its group (an SSH tunnel's keys)


def form_fields(
    model: type[BaseModel],
    values: Mapping[str, Any],
    skip: frozenset[str] = frozenset(),
    main: frozenset[str] | None = None,
) -> list[FormField]:
    """The inputs of ``model``'s fields (but ``skip``), holding ``values`` (a definition as the service shows
    it: secrets ``MASKED``); fields with a default that are not in ``main`` are advanced."""
    fields = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        kind, choices = _kind(info.annotation)
        if kind is None:
            continue  # nested settings: not for a form (the project file and the API take them)
        key = info.alias or name
        value = values.get(key, None if info.is_required() else info.default)
        secret = kind == "password"
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        fields.append(
            FormField(
                name=key,
                label=_label(name),
                kind=kind,
                value="" if secret or value is None else _shown(value),
                required=info.is_required(),
                help=info.description or "",
                choices=choices,
                checked=bool(value) if kind == "checkbox" else False,
                secret_stored=secret and value == MASKED,
                advanced=not info.is_required() and main is not None and name not in main,
                group=str(extra.get("group", "")),
            )
        )
    return fields


def read_form(model: type[BaseModel], form: Mapping[str, str], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The keys a project file would hold for what the form posted: empty inputs left out (their defaults
    apply), a secret left empty kept as stored (``MASKED``), lists split on commas, checkboxes as booleans.
    Types are checked when the definition is saved, with messages naming the key."""
    definition: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        kind, _choices = _kind(info.annotation)
        key = info.alias or name
        if kind == "checkbox":
            definition[key] = form.get(key) == "on"
            continue
        raw = (form.get(key) or "").strip()
        if kind == "password" and not raw and form.get(f"{key}__stored") == "1":
            definition[key] = MASKED
        elif raw and kind == "list":
            definition[key] = [part.strip() for part in raw.split(",") if part.strip()]
        elif raw:
            definition[key] = raw
    return definition


def _kind(annotation: Any) -> tuple[Kind | None, list[str]]:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        annotation = args[0]  # Optional[X] is X that may be left empty
    if annotation is SecretStr:
        return "password", []
    if annotation is bool:
        return "checkbox", []
    if annotation in (int, float):
        return "number", []
    if annotation is str:
        return "text", []
    if get_origin(annotation) is Literal:
        return "select", [str(choice) for choice in get_args(annotation)]
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return "list", []
    return None, []


_WORDS = {
    "api": "API",
    "url": "URL",
    "ssl": "SSL",
    "tls": "TLS",
    "ca": "CA",
    "sql": "SQL",
    "id": "ID",
    "ssh": "SSH",
}


def _label(name: str) -> str:
    """A field's name as a label: api_key -> "API key"."""
    words = [_WORDS.get(word, word) for word in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
