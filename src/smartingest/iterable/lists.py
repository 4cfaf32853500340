"""A project's static lists: reading them (``GET /api/lists``) and creating one (``POST /api/lists``).

Both raise DestinationAuthError for a refused key and DestinationError when Iterable refuses or does
not answer: a sync that cannot name its list cannot send anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from smartingest.errors import DestinationError
from smartingest.iterable.client import Accepted, Capped, Exhausted, IterableClient, Refused
from smartingest.iterable.endpoints import LISTS_CREATE, LISTS_GET

STATIC = "Standard"  # the listType of a static list: the only kind that takes subscribers


@dataclass(frozen=True)
class ListInfo:
    """One list of the project, as ``GET /api/lists`` describes it (``ListDetails``)."""

    id: int
    name: str
    list_type: str

    @property
    def static(self) -> bool:
        return self.list_type == STATIC


async def read_lists(client: IterableClient) -> list[ListInfo]:
    """Every list of the project (static, dynamic, suppression...), in Iterable's order."""
    answer = await client.send(LISTS_GET)
    match answer:
        case Accepted(body):
            found = body.get("lists")
            if not isinstance(found, list):
                raise DestinationError("Iterable's answer to GET /api/lists has no 'lists' array")
            return [info for item in found if (info := _list_info(item)) is not None]
        case Refused() as refused:
            raise DestinationError(f"Iterable refused to list the project's lists: {refused.reason}")
        case Exhausted(reason) | Capped(reason):
            raise DestinationError(f"Iterable did not list the project's lists: {reason}")


async def create_list(client: IterableClient, name: str, description: str) -> int:
    """Create a static list; returns its id."""
    body = orjson.dumps({"name": name, "description": description})
    answer = await client.send(LISTS_CREATE, body)
    match answer:
        case Accepted(response):
            list_id = response.get("listId")
            if not isinstance(list_id, int) or isinstance(list_id, bool):
                raise DestinationError(f"Iterable created the list {name!r} but its answer has no listId")
            return list_id
        case Refused() as refused:
            raise DestinationError(f"Iterable refused to create the static list {name!r}: {refused.reason}")
        case Exhausted(reason) | Capped(reason):
            raise DestinationError(f"Iterable did not create the static list {name!r}: {reason}")


def _list_info(item: object) -> ListInfo | None:
    """A ``ListDetails`` object read leniently: an entry without an integer id and a name is skipped."""
    if not isinstance(item, dict):
        return None
    list_id, name = item.get("id"), item.get("name")
    if not isinstance(list_id, int) or isinstance(list_id, bool) or not isinstance(name, str):
        return None
    list_type = item.get("listType")
    return ListInfo(list_id, name, list_type if isinstance(list_type, str) else "")
