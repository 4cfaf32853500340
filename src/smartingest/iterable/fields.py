"""A project's user field types, and which values fit them.

Iterable fixes a field's type (string, long, double, boolean, date, object, array...) by the first
value it stores; a later request whose value does not fit fails whole, with
``RequestFieldsTypesMismatched``. Reading the types first (``GET /api/users/getFields``) lets a run
refuse such rows before sending them, with a reason that names the field, instead of splitting
batches down to single rows to find them.
"""

from __future__ import annotations

from smartingest.errors import DestinationError
from smartingest.iterable.client import Accepted, Capped, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import USERS_GET_FIELDS

_KNOWN_TYPES = frozenset({"string", "long", "double", "boolean", "date", "object", "array"})
# What a JSON value of one kind may go into, besides a field of its own kind.
_ALSO_FITS: dict[str, frozenset[str]] = {
    "long": frozenset({"double"}),  # a whole number is a fine double
    "date": frozenset({"string"}),  # a date string is a string
}


def fits(field_type: str, sent: str) -> bool | None:
    """Whether values of kind ``sent`` fit a field of ``field_type``: True, False, or None when it
    depends on each value (text into a date field fits only where the text is a date)."""
    if field_type == sent or field_type in _ALSO_FITS.get(sent, frozenset()):
        return True
    if sent == "string" and field_type == "date":
        return None
    # A type this version does not know (geo_location...): let Iterable decide.
    return field_type not in _KNOWN_TYPES


def json_kind(value: object) -> str | None:
    """The kind of a JSON value as Iterable types fields (``date`` is a string only Iterable can tell)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return None


async def read_field_types(client: IterableClient) -> dict[str, str]:
    """Every user field of the project and its type, nested fields by dot path.

    Raises DestinationAuthError for a refused key, DestinationError when Iterable cannot answer.
    """
    answer = await client.send(USERS_GET_FIELDS)
    match answer:
        case Accepted(body):
            fields = body.get("fields")
            if not isinstance(fields, dict):
                raise DestinationError("Iterable's getFields answer has no 'fields' object")
            return {str(name): str(kind) for name, kind in fields.items()}
        case Refused() as refused:
            raise DestinationError(f"Iterable refused to list the project's fields: {refused.reason}")
        case Exhausted(reason) | Capped(reason):
            raise DestinationError(f"Iterable did not answer: {reason}")
