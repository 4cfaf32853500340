"""Suggested field mappings for a sync: from the model's column names and the destination's own fields.

A column whose name, ignoring case and punctuation, is a field the destination already has is mapped to
that field (so ``FIRST_NAME`` meets an existing ``firstName`` instead of creating ``first_name``); the
identifier the sync matches on is mapped from the column that names it (``email``, ``e-mail``,
``email_address``; ``user_id``, ``userid``); every other column gets Iterable's naming convention,
lower camel case (``first_name`` -> ``firstName``). Nothing is written: the caller shows the list.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from smartingest.config.models import CatalogSync, IdentifiedSync
from smartingest.engine.destination import CHECK_POLICY
from smartingest.engine.pipeline import SyncTarget
from smartingest.errors import DestinationError
from smartingest.iterable.catalogs import read_field_types as read_catalog_field_types
from smartingest.iterable.client import IterableClient
from smartingest.iterable.fields import read_field_types

IDENTIFIER_NAMES = {"email": ("email", "emailaddress", "mail"), "userId": ("userid",)}


@dataclass(frozen=True)
class Suggestion:
    """One suggested mapping and why."""

    column: str
    field: str
    why: str

    def as_mapping(self) -> dict[str, str]:
        return {"from": self.column, "to": self.field}


@dataclass(frozen=True)
class Suggestions:
    """The suggested mappings of a sync, and what they were made from."""

    sync_name: str
    mappings: list[Suggestion]
    destination_fields: int | None  # how many fields the destination had; None when it could not be read
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync": self.sync_name,
            "mappings": [{**s.as_mapping(), "why": s.why} for s in self.mappings],
            "destination_fields": self.destination_fields,
            "notes": self.notes,
        }


def suggest_mappings(target: SyncTarget, schema: pa.Schema) -> Suggestions:
    """Mappings for every column of the model (see the module docstring), reading the destination's
    fields when it answers (a destination that does not answer leaves only the naming conventions)."""
    notes: list[str] = []
    try:
        existing = asyncio.run(_destination_fields(target))
    except DestinationError as exc:
        existing = None
        notes.append(f"the destination's fields could not be read ({exc}): names follow Iterable's conventions only")
    by_key = {_key(name): name for name in (existing or {})}
    sync = target.sync
    identifier = sync.identifier_field if isinstance(sync, IdentifiedSync) else None
    suggestions: list[Suggestion] = []
    taken: set[str] = set()
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            notes.append(f"column {field.name!r} holds binary data, which Iterable cannot store: left out")
            continue
        suggestion = _suggest(field.name, identifier, by_key, existing or {})
        if suggestion.field in taken:
            notes.append(f"column {field.name!r} would also go to {suggestion.field!r}: left out")
            continue
        taken.add(suggestion.field)
        suggestions.append(suggestion)
    if identifier is not None and identifier not in taken:
        notes.append(f"no column looks like the identifier {identifier!r}: map one to it")
    return Suggestions(target.name, suggestions, None if existing is None else len(existing), notes)


def _suggest(column: str, identifier: str | None, by_key: dict[str, str], existing: dict[str, str]) -> Suggestion:
    key = _key(column)
    for field, names in IDENTIFIER_NAMES.items():
        if key in names:
            matched = " (the sync matches users on it)" if field == identifier else ""
            return Suggestion(column, field, f"Iterable's {field} field{matched}")
    if key in by_key:
        field = by_key[key]
        return Suggestion(column, field, f"the destination's field {field!r} ({existing[field]})")
    return Suggestion(column, camel_case(column), "Iterable's naming convention (lower camel case)")


def camel_case(name: str) -> str:
    """``first_name``, ``First Name``, ``first-name`` -> ``firstName``; ``firstName`` stays."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    if not words:
        return name
    if len(words) == 1:
        word = words[0]
        return word if not word.isupper() else word.lower()
    head, *rest = words
    return head.lower() + "".join(w[:1].upper() + w[1:].lower() for w in rest)


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


async def _destination_fields(target: SyncTarget) -> dict[str, str]:
    """The fields the sync's rows land in: the catalog's for a catalog sync (none yet when it does not
    exist), the project's user fields otherwise. Raises DestinationError when Iterable does not answer."""
    async with IterableClient(target.destination, policy=CHECK_POLICY) as client:
        if isinstance(target.sync, CatalogSync):
            return await read_catalog_field_types(client, target.sync.catalog) or {}
        return await read_field_types(client)
