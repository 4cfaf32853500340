"""Field types of catalog items: set by field mappings, else fixed by the first value written.

A catalog field is named by its dot path through nested objects (`bestItem.dish`); a field name is
never empty and never contains `.`. Its type is one of `CATALOG_FIELD_TYPES`. A field gets its type
either from `PUT /fieldMappings` (before any value, or while only nulls were seen) or from the first
non-null value written to it, inferred as for user fields (`string`, `date`, `long`, `double`,
`boolean`, `object`); `geo_location` is never inferred, it must be mapped. A field seen only with
nulls or empty lists has no type yet: it is an undefined field.

A list is typed by its elements (Iterable stores lists of any type): `["a", "b"]` fits a `string`
field, a list of objects walks each object's fields. Values must fit their field's type:

- the same type always fits; a `long` fits a `double` field; an integral `double` (`3.0`) fits a
  `long` field; a `date` string fits a `string` field;
- a `geo_location` field takes an object with numeric `lat` (-90..90) and `lon` (-180..180);
- anything else is a mismatch, and a mismatch refuses the whole request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from .fields import compatible, value_type

CatalogFieldType = Literal["string", "long", "double", "boolean", "date", "geo_location", "object"]
CATALOG_FIELD_TYPES: frozenset[str] = frozenset(get_args(CatalogFieldType))


def is_valid_field_name(name: Any) -> bool:
    """Whether `name` may name a catalog field: a non-empty string without `.`."""
    return type(name) is str and name != "" and "." not in name


def fits_geo_location(value: Any) -> bool:
    """Whether `value` is a geo location: an object with numeric `lat` (-90..90) and `lon` (-180..180)."""
    if type(value) is not dict:
        return False
    lat, lon = value.get("lat"), value.get("lon")
    # type() rather than isinstance: a boolean is not a coordinate.
    if type(lat) not in (int, float) or type(lon) not in (int, float):
        return False
    return bool(-90 <= cast(float, lat) <= 90 and -180 <= cast(float, lon) <= 180)


@dataclass(frozen=True)
class CatalogTypeMismatch:
    """A value whose type does not fit its catalog field's type."""

    field: str
    fixed_type: str
    request_type: str


@dataclass
class CatalogFieldChecker:
    """Checks the item values of one request against a catalog's field types and against each other.

    `fixed` maps the paths that have a type; the first value of an untyped path in the request fixes
    that path's type for the rest of the request (`new_types`). Every path seen, typed or not, is
    collected in `seen`, so the catalog can list its undefined fields.
    """

    fixed: Mapping[str, str]
    new_types: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    mismatches: dict[str, CatalogTypeMismatch] = field(default_factory=dict)
    mismatched_items: list[str] = field(default_factory=list)

    def check_item(self, item_id: str, value: Mapping[str, Any]) -> None:
        """Check one item's value; its mismatches accumulate in `mismatches`."""
        found: list[CatalogTypeMismatch] = []
        self._walk(value, "", found)
        for mismatch in found:
            self.mismatches.setdefault(mismatch.field, mismatch)
        if found:
            self.mismatched_items.append(item_id)

    def type_of(self, path: str) -> str | None:
        """The type a path has, from the catalog or fixed earlier in this request."""
        return self.fixed.get(path) or self.new_types.get(path)

    def _walk(self, data: Mapping[str, Any], prefix: str, found: list[CatalogTypeMismatch]) -> None:
        for key, value in data.items():
            path = prefix + key
            self.seen.add(path)
            self._check(path, value, found)

    def _check(self, path: str, value: Any, found: list[CatalogTypeMismatch]) -> None:
        if value is None:
            return
        if type(value) is list:
            for element in value:
                self._check(path, element, found)
            return
        expected = self.type_of(path)
        if expected == "geo_location":
            if not fits_geo_location(value):
                found.append(CatalogTypeMismatch(path, expected, value_type(value) or "null"))
            return  # a geo location's lat and lon are not fields of their own
        got = value_type(value)
        if got is None:
            return
        if expected is None:
            self.new_types[path] = expected = got
        elif expected != got and not compatible(expected, got, value):
            found.append(CatalogTypeMismatch(path, expected, got))
            return
        if got == "object":
            self._walk(value, path + ".", found)


def invalid_field_names(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The paths of field names that are empty or contain `.`, through nested objects and lists."""
    bad: list[str] = []
    for key, value in data.items():
        if not is_valid_field_name(key):
            bad.append(prefix + key)
            continue
        for nested in _objects_in(value):
            bad.extend(invalid_field_names(nested, prefix + key + "."))
    return bad


def _objects_in(value: Any) -> list[dict[str, Any]]:
    """The objects a value holds directly: itself, or the objects among a (nested) list's elements."""
    if type(value) is dict:
        return [value]
    if type(value) is list:
        return [obj for element in value for obj in _objects_in(element)]
    return []
