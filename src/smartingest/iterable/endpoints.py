"""The Iterable endpoints we call, with the limits the API contract documents for each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

MB = 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    """One API operation: its path (a template such as ``/api/catalogs/{catalogName}/items``), documented
    rate limit (requests/second, per project), body cap, and daily cap (requests per 24 hours, per project)."""

    name: str
    method: str
    path: str
    rate_per_second: float
    max_body_bytes: int | None = None
    daily_cap: int | None = None

    def url_path(self, values: Mapping[str, str] | None = None) -> str:
        """The path with its template's names filled, each value URL-quoted whole (a ``/`` in an email or id
        cannot change the path); raises KeyError naming a missing value."""
        if not values:
            return self.path
        return self.path.format_map({name: quote(str(value), safe="") for name, value in values.items()})


USERS_BULK_UPDATE = Endpoint("users/bulkUpdate", "POST", "/api/users/bulkUpdate", 5, 4 * MB)
USERS_GET_FIELDS = Endpoint("users/getFields", "GET", "/api/users/getFields", 3)
EVENTS_TRACK_BULK = Endpoint("events/trackBulk", "POST", "/api/events/trackBulk", 10, 4 * MB)

# Catalogs. The contract states 100 requests/second per API key for the bulk item write; for the other
# catalog operations it states no rate: the bulk delete is paced like the bulk write beside it, and the
# catalog's creation and field mappings (one request each per run) at a modest 10/s.
CATALOG_CREATE = Endpoint("catalogs/create", "POST", "/api/catalogs/{catalogName}", 10)
CATALOG_GET_FIELD_MAPPINGS = Endpoint(
    "catalogs/getFieldMappings", "GET", "/api/catalogs/{catalogName}/fieldMappings", 10
)
CATALOG_SET_FIELD_MAPPINGS = Endpoint(
    "catalogs/setFieldMappings", "PUT", "/api/catalogs/{catalogName}/fieldMappings", 10, 4 * MB
)
CATALOG_ITEMS_BULK_CREATE = Endpoint(
    "catalogs/items/bulkCreate", "POST", "/api/catalogs/{catalogName}/items", 100, 4 * MB
)
CATALOG_ITEMS_BULK_DELETE = Endpoint(
    "catalogs/items/bulkDelete", "DELETE", "/api/catalogs/{catalogName}/items", 100, 4 * MB
)
# The contract's limits per catalog item: "Max number of pairs in list is 1000. Max size of each json
# value is 30kb" (30 KiB of compact JSON, as the sandbox measures it).
CATALOG_MAX_ITEMS_PER_REQUEST = 1000
CATALOG_MAX_ITEM_BYTES = 30 * 1024
# Single-user requests. updateEmail states no rate in the contract: it is paced like users/update (500/s),
# its nearest documented sibling; concurrency bounds it well below that in practice.
USERS_UPDATE_EMAIL = Endpoint("users/updateEmail", "POST", "/api/users/updateEmail", 500, 4 * MB)
USERS_GET_BY_EMAIL = Endpoint("users/getByEmail", "GET", "/api/users/getByEmail", 100)
USERS_DELETE_BY_EMAIL = Endpoint("users/delete (by email)", "DELETE", "/api/users/{email}", 100)
USERS_DELETE_BY_USER_ID = Endpoint("users/delete (by userId)", "DELETE", "/api/users/byUserId/{userId}", 100)
# forget and unforget also have a daily cap of 1000 requests per 24 hours per project; the client learns
# that it is reached from Iterable's 429 (see IterableClient.capped) rather than counting requests of
# other processes, and the cap names itself in the rows it defers.
USERS_FORGET = Endpoint("users/forget", "POST", "/api/users/forget", 3, 4 * MB, daily_cap=1000)
USERS_UNFORGET = Endpoint("users/unforget", "POST", "/api/users/unforget", 3, 4 * MB, daily_cap=1000)
# Static lists. The contract states 100 requests/second for listing them and no rate for creating one,
# subscribing or unsubscribing: subscribe and unsubscribe are bulk user updates, paced like their
# documented sibling users/bulkUpdate (5/s); a list's creation (one request per run at most) at 10/s.
LISTS_GET = Endpoint("lists/get", "GET", "/api/lists", 100)
LISTS_CREATE = Endpoint("lists/create", "POST", "/api/lists", 10, 4 * MB)
LISTS_SUBSCRIBE = Endpoint("lists/subscribe", "POST", "/api/lists/subscribe", 5, 4 * MB)
LISTS_UNSUBSCRIBE = Endpoint("lists/unsubscribe", "POST", "/api/lists/unsubscribe", 5, 4 * MB)
USERS_GET_BY_USER_ID = Endpoint("users/byUserId", "GET", "/api/users/byUserId/{userId}", 100)
