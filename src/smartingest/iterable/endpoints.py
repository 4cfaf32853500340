"""The Iterable endpoints we call, with the limits the API contract documents for each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

MB = 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    """One API operation: its path (a template such as ``/api/catalogs/{catalogName}/items``), documented
    rate limit (requests/second, per project) and body cap."""

    name: str
    method: str
    path: str
    rate_per_second: float
    max_body_bytes: int | None = None

    def url_path(self, values: Mapping[str, str] | None = None) -> str:
        """The path with its template's names filled, each value URL-quoted whole (a ``/`` in an email or id
        cannot change the path); raises KeyError naming a missing value."""
        if not values:
            return self.path
        return self.path.format_map({name: quote(str(value), safe="") for name, value in values.items()})


USERS_BULK_UPDATE = Endpoint("users/bulkUpdate", "POST", "/api/users/bulkUpdate", 5, 4 * MB)
USERS_GET_FIELDS = Endpoint("users/getFields", "GET", "/api/users/getFields", 3)
EVENTS_TRACK_BULK = Endpoint("events/trackBulk", "POST", "/api/events/trackBulk", 10, 4 * MB)
