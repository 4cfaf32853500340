"""The Iterable endpoints we call, with the limits the API contract documents for each."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    """One API operation: its path, documented rate limit (requests/second, per project) and body cap."""

    name: str
    method: str
    path: str
    rate_per_second: float
    max_body_bytes: int | None = None


USERS_BULK_UPDATE = Endpoint("users/bulkUpdate", "POST", "/api/users/bulkUpdate", 5, 4 * MB)
USERS_GET_FIELDS = Endpoint("users/getFields", "GET", "/api/users/getFields", 3)
