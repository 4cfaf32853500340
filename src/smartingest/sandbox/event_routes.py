"""The HTTP handlers of Iterable's event endpoints; `EVENT_ROUTES` joins the app's /api routes.

Each handler gets the request after the common pipeline (faults, `Api-Key`, rate limit, body size)
and runs the storage work on the worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from .body import call_with_json
from .envelope import envelope, json_response
from .events import parse_limit

if TYPE_CHECKING:
    from .app import Handler, Sandbox


async def _track(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    msg, params = await sandbox.worker.run(call_with_json, sandbox.events.track, body)
    return envelope("Success", msg, params=params)


async def _track_bulk(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(call_with_json, sandbox.events.track_bulk, body))


async def _events_by_email(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    limit = parse_limit(request.query_params.get("limit"))
    email = request.path_params["email"]
    return json_response(await sandbox.worker.run(sandbox.events.of_email, email, limit))


async def _events_by_user_id(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    limit = parse_limit(request.query_params.get("limit"))
    user_id = request.path_params["userId"]
    return json_response(await sandbox.worker.run(sandbox.events.of_user_id, user_id, limit))


# (method, path, handler, reads body); the byUserId path comes before the {email} one.
EVENT_ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("POST", "/api/events/track", _track, True),
    ("POST", "/api/events/trackBulk", _track_bulk, True),
    ("GET", "/api/events/byUserId/{userId}", _events_by_user_id, False),
    ("GET", "/api/events/{email}", _events_by_email, False),
]
