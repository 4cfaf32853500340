"""The HTTP handlers of Iterable's static-list endpoints; `LIST_ROUTES` joins the app's /api routes.

`getUsers` and `size` answer text/plain, as the contract's `produces` and Iterable do: one user per
line, and the member count as digits. Their errors are JSON envelopes like every other error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from .body import call_with_json
from .envelope import ApiError, envelope, json_response

if TYPE_CHECKING:
    from .app import Handler, Sandbox


def _text(body: str) -> Response:
    return Response(body, media_type="text/plain")


def _list_id_param(value: str | None) -> int:
    if not value:
        raise ApiError(400, "BadParams", "Missing required parameter 'listId'")
    if not value.isdigit():
        raise ApiError(400, "BadParams", f"listId must be an integer, not {value!r}")
    return int(value)


def _bool_param(value: str | None, name: str) -> bool:
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise ApiError(400, "BadParams", f"{name} must be true or false, not {value!r}")


async def _get_lists(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(sandbox.lists.all))


async def _create_list(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(call_with_json, sandbox.lists.create, body))


async def _delete_list(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    msg = await sandbox.worker.run(sandbox.lists.delete, request.path_params["listId"])
    return envelope("Success", msg)


async def _subscribe(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(call_with_json, sandbox.lists.subscribe, body))


async def _unsubscribe(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(call_with_json, sandbox.lists.unsubscribe, body))


async def _get_users(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    list_id = _list_id_param(request.query_params.get("listId"))
    prefer_user_id = _bool_param(request.query_params.get("preferUserId"), "preferUserId")
    return _text(await sandbox.worker.run(sandbox.lists.users, list_id, prefer_user_id))


async def _size(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return _text(await sandbox.worker.run(sandbox.lists.size, request.path_params["listId"]))


# (method, path, handler, reads body). {listId} only matches digits: /api/lists/other is no list.
LIST_ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("GET", "/api/lists", _get_lists, False),
    ("POST", "/api/lists", _create_list, True),
    ("POST", "/api/lists/subscribe", _subscribe, True),
    ("POST", "/api/lists/unsubscribe", _unsubscribe, True),
    ("GET", "/api/lists/getUsers", _get_users, False),
    ("GET", "/api/lists/{listId}/size", _size, False),
    ("DELETE", "/api/lists/{listId}", _delete_list, False),
]
