"""A catalog's existence and field types: what a catalog sync reads or sets before it writes items.

- ``read_field_types``: ``GET /api/catalogs/{catalogName}/fieldMappings``, the catalog's typed fields by
  dot path, or None when there is no such catalog (Iterable answers 404);
- ``create_catalog``: ``POST /api/catalogs/{catalogName}``;
- ``set_field_types``: ``PUT /api/catalogs/{catalogName}/fieldMappings``, dot paths sent as nested
  definitions (a parent is an ``object`` whose ``children`` are its fields).

Each raises DestinationAuthError for a refused API key and DestinationError for any other answer that
leaves the question open, with Iterable's reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from smartingest.errors import DestinationError
from smartingest.iterable.client import Accepted, Capped, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import CATALOG_CREATE, CATALOG_GET_FIELD_MAPPINGS, CATALOG_SET_FIELD_MAPPINGS

# The field types the contract lists for catalogs ("Valid types: boolean, date, geo_location, long,
# double, object, and string").
CATALOG_FIELD_TYPES = ("string", "long", "double", "boolean", "date", "geo_location", "object")


async def read_field_types(client: IterableClient, catalog: str) -> dict[str, str] | None:
    """The catalog's field types (``definedMappings``: dot path -> type), or None when it does not exist.

    Iterable's own clients read the answer from an envelope's ``params``; the contract puts it at the
    top level: either is accepted.
    """
    answer = await client.send(CATALOG_GET_FIELD_MAPPINGS, path={"catalogName": catalog})
    match answer:
        case Accepted(body):
            params = body.get("params")
            mappings = body.get("definedMappings")
            if mappings is None and isinstance(params, dict):
                mappings = params.get("definedMappings")
            if not isinstance(mappings, dict):
                raise DestinationError(f"Iterable's field mappings of catalog {catalog!r} have no 'definedMappings'")
            return {str(path): str(kind) for path, kind in mappings.items()}
        case Refused(status=404):
            return None
        case Refused() as refused:
            raise DestinationError(f"Iterable refused to read the field types of catalog {catalog!r}: {refused.reason}")
        case Exhausted(reason) | Capped(reason):
            raise DestinationError(f"Iterable did not answer about catalog {catalog!r}: {reason}")


async def create_catalog(client: IterableClient, catalog: str) -> None:
    """Create the catalog (its name is checked by the sync's configuration)."""
    answer = await client.send(CATALOG_CREATE, path={"catalogName": catalog})
    match answer:
        case Accepted():
            return
        case Refused() as refused:
            raise DestinationError(f"Iterable refused to create catalog {catalog!r}: {refused.reason}")
        case Exhausted(reason) | Capped(reason):
            raise DestinationError(f"Iterable did not answer when creating catalog {catalog!r}: {reason}")


async def set_field_types(client: IterableClient, catalog: str, types: dict[str, str]) -> None:
    """Give fields their types before any value does (``types``: dot path -> type).

    A type, once set, never changes: Iterable refuses a mapping that would change one, so callers send
    only the fields that have none yet.
    """
    body = orjson.dumps({"mappingsUpdates": field_definitions(types)})
    answer = await client.send(CATALOG_SET_FIELD_MAPPINGS, body, path={"catalogName": catalog})
    match answer:
        case Accepted():
            return
        case Refused() as refused:
            raise DestinationError(f"Iterable refused the field types of catalog {catalog!r}: {refused.reason}")
        case Exhausted(reason) | Capped(reason):
            raise DestinationError(f"Iterable did not answer when typing the fields of catalog {catalog!r}: {reason}")


def field_definitions(types: dict[str, str]) -> list[dict[str, Any]]:
    """``CatalogFieldDefinitionSerializedModel``s for dot paths: ``{"a.b": "long"}`` becomes an object
    field ``a`` whose children hold ``b``; a parent not listed itself is sent as ``object``."""
    tree: dict[str, Any] = {}
    for path in sorted(types):
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return _definitions(tree, "", types)


def _definitions(tree: dict[str, Any], prefix: str, types: dict[str, str]) -> list[dict[str, Any]]:
    definitions: list[dict[str, Any]] = []
    for name, children in tree.items():
        path = prefix + name
        definition: dict[str, Any] = {"fieldName": name, "fieldType": "object" if children else types[path]}
        if children:
            definition["children"] = _definitions(children, path + ".", types)
        definitions.append(definition)
    return definitions
