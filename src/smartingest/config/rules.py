"""Rules about field mappings that need no connection: the config models check them when a project file is
loaded (so ``validate`` refuses what a run would refuse), and the mapping compiler applies the same functions.

Nothing here knows Iterable's wire format: a static value is cast to a Python value (``date`` gives a
``datetime.date`` or a naive UTC ``datetime.datetime``); the mapping package encodes it for Iterable.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

StaticValue = str | int | float | bool | None
CastValue = str | int | float | bool | datetime.date | datetime.datetime | None

# Fields sent beside dataFields rather than inside it: they identify the user, so only a column may fill them,
# and a dot path under one of them is a dataFields object of its own, which does not clash with it.
TOP_LEVEL_FIELDS = ("email", "userId")


class KeyPathError(ValueError):
    """A validator's finding about a key below the model being validated.

    ``path`` (e.g. ``("mappings", 2, "to")``) is appended to the model's own location when the error is
    reported, so the message names the exact key (``syncs.NAME.mappings[2].to``).
    """

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.path = path


def cast_static_value(value: StaticValue, to_type: str | None) -> CastValue:
    """A static mapping's value cast to its declared ``type`` (None: left as YAML typed it).

    string: text (booleans as ``true``/``false``); number: an int when the value is a whole number given as
    an int or text, else a float (booleans refused); boolean: true/yes/1 or false/no/0 (any case); date: an
    ISO date (``2024-01-31``) gives a ``datetime.date``, an ISO date-time a naive ``datetime.datetime`` in
    UTC (an offset is converted, no offset is taken as UTC); null: null, whatever the value (``static: ~``
    says the same). A null stays null whatever the type. Raises ValueError saying which value is not of which
    type.
    """
    if to_type == "null":
        return None
    if to_type is None or value is None:
        return value
    try:
        if to_type == "string":
            return str(value).lower() if isinstance(value, bool) else str(value)
        if to_type == "number":
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            number = float(value)
            return int(number) if number.is_integer() and not isinstance(value, float) else number
        if to_type == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1"):
                return True
            if text in ("false", "no", "0"):
                return False
            raise ValueError("expected true or false")
        if to_type == "date":
            return _static_date(str(value))
    except ValueError as exc:
        raise ValueError(f"static value {value!r} is not a {to_type}: {exc}") from exc
    raise ValueError(f"unknown type {to_type!r} (string, number, boolean or date)")


def _static_date(text: str) -> datetime.date | datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return datetime.date.fromisoformat(text)
    if len(text) == 10:  # a bare date that fromisoformat also reads as midnight
        return parsed.date()
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
    return parsed


def path_conflict(targets: Sequence[str | None]) -> tuple[int, int] | None:
    """The first pair ``(i, j)`` where ``targets[i]`` is a value and ``targets[j]`` a dot path under it.

    A field cannot be both a value and the parent object of another (``address`` and ``address.city``).
    None entries (fields that do not take part, such as the top-level identity) are ignored. Returns None
    when the targets are consistent.
    """
    index = {target: i for i, target in enumerate(targets) if target is not None}
    for j, target in enumerate(targets):
        if target is None:
            continue
        parts = target.split(".")
        for depth in range(1, len(parts)):
            i = index.get(".".join(parts[:depth]))
            if i is not None:
                return i, j
    return None


__all__ = ["TOP_LEVEL_FIELDS", "CastValue", "KeyPathError", "StaticValue", "cast_static_value", "path_conflict"]
