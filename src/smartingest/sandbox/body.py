"""Request bodies as JSON, for handlers that parse them on the storage worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .envelope import ApiError


def parse_json(body: bytes) -> Any:
    """A request body as JSON; 400 `BadJsonBody` when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "BadJsonBody", f"Malformed JSON body: {exc}") from exc


def call_with_json(method: Callable[[Any], Any], body: bytes) -> Any:
    """Parse a body and call `method` with it (run both on the worker thread)."""
    return method(parse_json(body))
