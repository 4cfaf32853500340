"""Field types of user profiles: inferred from values, fixed project-wide by the first value seen.

A field is named by its dot path through nested objects (`address.city`). Its type is one of
`string`, `long`, `double`, `boolean`, `date`, `object`, `array`; `null` has no type and fits any
field. Once a path has a type, later values must be compatible with it:

- the same type always fits;
- a `long` fits a `double` field;
- a `double` with an integral value (`3.0`) fits a `long` field; `3.5` does not (it would lose data);
- a `date` string fits a `string` field (it is a string); a non-date string does not fit a `date` field;
- anything else is a mismatch. The elements of a data field's array are not typed.

A string is a `date` when it is in a format Iterable parses as a date: `yyyy-MM-dd HH:mm:ss ZZ`
(`2024-01-31 13:45:00 +00:00`, zone optional), ISO 8601 `yyyy-MM-dd'T'HH:mm:ss[.SSS][Z|+hh:mm]`, or
`yyyy-MM-dd`, and the calendar date and time exist.

Every project also has Iterable's system fields (`email`, `userId`, `signupDate`, `profileUpdatedAt`,
...), typed before any user exists: `system_fields` gives them. A dataField named like one is that
system field and must fit its type. The system fields that hold lists are typed by their elements,
as Iterable types them: `emailListIds` is `long` (a list of longs), `devices` is `object`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .settings import ProjectType

FieldType = Literal["string", "long", "double", "boolean", "date", "object", "array"]

# What may follow `yyyy-MM-ddTHH:mm:ss` (fraction, zone) and `yyyy-MM-dd HH:mm:ss` (a spaced zone).
_AFTER_ISO_TIME = re.compile(r"(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?")
_AFTER_SPACED_TIME = re.compile(r"(?: (?:Z|UTC|[+-]\d{2}:?\d{2}))?")


# The fields a real Iterable project lists in getFields before it has data fields of its own, with
# their types (a recorded answer of a project without data fields). Lists of ids are typed by their
# elements; `devices` is a list of objects. The static-list field depends on the project type.
_SYSTEM_FIELDS: dict[str, FieldType] = {
    "devices": "object",
    "devices.appBuild": "string",
    "devices.appPackageName": "string",
    "devices.appVersion": "string",
    "devices.applicationName": "string",
    "devices.deviceId": "string",
    "devices.endpointEnabled": "boolean",
    "devices.iterableSdkVersion": "string",
    "devices.platform": "string",
    "devices.platformEndpoint": "string",
    "devices.token": "string",
    "email": "string",
    "itblInternal.emailDomain": "string",
    "phoneNumber": "string",
    "phoneNumberDetails": "object",
    "phoneNumberDetails.carrier": "string",
    "phoneNumberDetails.countryCodeISO": "string",
    "phoneNumberDetails.lineType": "string",
    "phoneNumberDetails.updatedAt": "date",
    "profileUpdatedAt": "date",
    "signupDate": "date",
    "signupSource": "string",
    "unsubscribedChannelIds": "long",
    "unsubscribedMessageTypeIds": "long",
    "userId": "string",
}
# Email-based projects keep static-list subscriptions in `emailListIds`, the others in `userListIds`.
_LIST_FIELD: dict[str, str] = {"email": "emailListIds", "userid": "userListIds", "hybrid": "userListIds"}


def system_fields(project_type: ProjectType) -> dict[str, FieldType]:
    """Iterable's system fields of a project of this type, path -> type (a new dict each call)."""
    return {**_SYSTEM_FIELDS, _LIST_FIELD[project_type]: "long"}


def list_field(project_type: ProjectType) -> str:
    """The system field holding a user's static-list subscriptions in a project of this type."""
    return _LIST_FIELD[project_type]


def system_list_fields(project_type: ProjectType) -> frozenset[str]:
    """The system fields whose values are lists, typed by their elements."""
    return frozenset({"devices", "unsubscribedChannelIds", "unsubscribedMessageTypeIds", _LIST_FIELD[project_type]})


def is_date_string(value: str) -> bool:
    """Whether `value` is a string Iterable would store as a date."""
    # Positional checks first: most strings are not dates, and this runs for every string value.
    size = len(value)
    if size < 10 or value[4] != "-" or value[7] != "-":
        return False
    if size == 10:
        head = value
    elif size >= 19 and value[13] == ":" and value[16] == ":" and value[10] in "T ":
        after = _AFTER_ISO_TIME if value[10] == "T" else _AFTER_SPACED_TIME
        if after.fullmatch(value, 19) is None:
            return False
        head = value[:19]
    else:
        return False
    if not head.isascii() or not head.replace("-", "").replace(":", "").replace("T", "").replace(" ", "").isdigit():
        return False
    try:
        # Checks that the calendar date and the time exist (no 2024-02-30, no 25:00:00).
        datetime.fromisoformat(head)
    except ValueError:
        return False
    return True


def value_type(value: Any) -> FieldType | None:
    """The field type of a JSON value, or None for null."""
    kind = type(value)
    if kind is str:
        return "date" if is_date_string(value) else "string"
    if kind is bool:
        return "boolean"
    if kind is int:
        return "long"
    if kind is float:
        return "double"
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    return None


def compatible(fixed: str, got: str, value: Any) -> bool:
    """Whether a value of type `got` may be stored in a field fixed as `fixed`."""
    if fixed == got:
        return True
    if fixed == "string":
        return got == "date"
    if fixed == "double":
        return got == "long"
    if fixed == "long":
        return got == "double" and float(value).is_integer()
    return False


# The Python type that certainly fits a field type (a `date` field needs a format check, so none).
_EXACT_TYPE: dict[str, type] = {
    "string": str,
    "long": int,
    "double": float,
    "boolean": bool,
    "object": dict,
    "array": list,
}
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TypeMismatch:
    """A value whose type does not fit its field's type."""

    field: str
    fixed_type: str
    request_type: str


@dataclass
class EntryFields:
    """What the checker found in one user's dataFields."""

    new_paths: list[str] = field(default_factory=list)
    """Paths the project has no type for yet (their type is in `FieldTypeChecker.request_types`)."""
    bad_key: str | None = None
    """A field name that is empty or contains a dot (the path separator), if any."""


class FieldTypeChecker:
    """Checks the dataFields of one request against the project's fixed types and against each other.

    The first value of a new path in the request fixes that path's type for the rest of the request,
    so two users disagreeing about a new field is a mismatch too. A list given for a path in
    `element_typed` (the system fields that hold lists) is checked element by element against the
    path's type; objects among its elements are walked like nested objects.
    """

    def __init__(self, fixed: Mapping[str, str], element_typed: frozenset[str] = frozenset()):
        self.fixed = fixed
        self.element_typed = element_typed
        self.request_types: dict[str, str] = {}
        self.mismatches: dict[str, TypeMismatch] = {}

    def check(self, data: Mapping[str, Any], skip_top_level: frozenset[str] = frozenset()) -> EntryFields:
        """Check one user's dataFields; mismatches accumulate in `self.mismatches`."""
        found = EntryFields()
        self._walk(data, "", found, skip_top_level)
        return found

    def _walk(self, data: Mapping[str, Any], prefix: str, found: EntryFields, skip: frozenset[str]) -> None:
        fixed, seen = self.fixed, self.request_types
        for key, value in data.items():
            if key in skip:
                continue
            if not key or "." in key:
                found.bad_key = found.bad_key or prefix + key
                continue
            if value is None:
                continue
            path = prefix + key
            expected = fixed.get(path)
            if type(value) is list and path in self.element_typed and expected is not None:
                self._check_elements(path, expected, value, found)
                continue
            # Fast path: after the first requests nearly every value has exactly its field's type.
            if expected is not None and type(value) is _EXACT_TYPE.get(expected):
                if expected == "object" and isinstance(value, dict):
                    self._walk(value, path + ".", found, _NOTHING)
                continue
            got = value_type(value)
            if got is None:
                continue
            if expected is None:
                found.new_paths.append(path)
                expected = seen.get(path)
                if expected is None:
                    seen[path] = expected = got
            if expected != got and not compatible(expected, got, value):
                self.mismatches.setdefault(path, TypeMismatch(path, expected, got))
            if got == "object" and expected == "object":
                self._walk(value, path + ".", found, _NOTHING)

    def _check_elements(self, path: str, expected: str, items: list[Any], found: EntryFields) -> None:
        for item in items:
            got = value_type(item)
            if got is None:
                continue
            if got != expected and not compatible(expected, got, item):
                self.mismatches.setdefault(path, TypeMismatch(path, expected, got))
            elif got == "object":
                self._walk(item, path + ".", found, _NOTHING)


def drop_unknown(
    data: Mapping[str, Any], known: Mapping[str, str], prefix: str = "", keep: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """Remove the paths the project has no type for (`createNewFields: false`).

    Returns the filtered data and the dropped paths. Top-level keys in `keep` are kept as they are.
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in data.items():
        path = prefix + key
        if not prefix and key in keep:
            kept[key] = value
            continue
        if path not in known:
            dropped.append(path)
            continue
        if known[path] == "object":
            if type(value) is dict:
                value, inner = drop_unknown(value, known, path + ".")
                dropped.extend(inner)
            elif type(value) is list:
                # A list of objects (a system field such as `devices`): filter each object.
                value, inner = _drop_unknown_in_list(value, known, path + ".")
                dropped.extend(inner)
        kept[key] = value
    return kept, dropped


def _drop_unknown_in_list(items: list[Any], known: Mapping[str, str], prefix: str) -> tuple[list[Any], list[str]]:
    kept: list[Any] = []
    dropped: dict[str, None] = {}
    for item in items:
        if type(item) is dict:
            item, inner = drop_unknown(item, known, prefix)
            dropped.update(dict.fromkeys(inner))
        kept.append(item)
    return kept, list(dropped)
