"""The sandbox's /api/catalogs routes: request parsing and answers; the rules are in `catalogs`.

`CATALOG_ROUTES` has the shape of the app's route table: (method, path, handler, reads body). The app
wraps each handler in the common /api pipeline (faults, `Api-Key`, rate limit, body size), so a
handler only parses its parameters, runs the operation on the storage worker and shapes the answer.

Answers, as the contract gives them: the reads answer their schema (`GetCatalogsResponse`,
`GetCatalogItemsResponse`, `CatalogItemWithProperties`, `CatalogFieldMappingsResponse`); creating a
catalog answers 201, the item writes and deletes the contract calls asynchronous answer 202, the
other writes 200, each with an `IterableApiResponse` envelope.

Paging (`page` from 1, `pageSize` default 10, at most 100 catalogs or 1000 items a page) answers
`nextPageUrl` when a later page has results and `previousPageUrl` from page 2 on: absolute URLs of
the same request with another `page`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .envelope import ApiError, envelope, json_response

if TYPE_CHECKING:
    from .app import Sandbox

DEFAULT_PAGE_SIZE = 10  # the contract's default
MAX_CATALOGS_PAGE_SIZE = 100
MAX_ITEMS_PAGE_SIZE = 1000

CatalogHandler = Callable[["Sandbox", Request, bytes], Awaitable[Response]]


def _with_json(method: Callable[..., Any], *args: Any) -> Any:
    """Parse a request body and call a catalog operation with it (both on the worker thread)."""
    try:
        payload = orjson.loads(args[-1])
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "BadJsonBody", f"Malformed JSON body: {exc}") from exc
    return method(*args[:-1], payload)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(400, "BadParams", f"{name} must be an integer from {low} to {high}, not {raw!r}", {name: raw})
    return value


def _paging(request: Request, max_page_size: int) -> tuple[int, int]:
    page = _int_param(request, "page", 1, 1, 2**31 - 1)
    return page, _int_param(request, "pageSize", DEFAULT_PAGE_SIZE, 1, max_page_size)


def _page_urls(request: Request, page: int, page_size: int, total: int) -> dict[str, str]:
    urls: dict[str, str] = {}
    if page * page_size < total:
        urls["nextPageUrl"] = str(request.url.include_query_params(page=page + 1, pageSize=page_size))
    if page > 1:
        urls["previousPageUrl"] = str(request.url.include_query_params(page=page - 1, pageSize=page_size))
    return urls


def _order(request: Request) -> tuple[str | None, bool]:
    order_by = request.query_params.get("orderBy") or None
    if order_by is not None and ('"' in order_by or "." in order_by):
        raise ApiError(400, "BadParams", f"orderBy names a top-level field: {order_by!r}", {"orderBy": order_by})
    raw = request.query_params.get("sortAscending", "false").lower()
    if raw not in ("true", "false"):
        raise ApiError(400, "BadParams", f"sortAscending must be true or false, not {raw!r}", {"sortAscending": raw})
    return order_by, raw == "true"


def _catalog_name(request: Request) -> str:
    return request.path_params["catalogName"]


def _item_id(request: Request) -> str:
    return request.path_params["itemId"]


async def _list_catalogs(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    page, page_size = _paging(request, MAX_CATALOGS_PAGE_SIZE)
    names, total = await sandbox.worker.run(sandbox.catalogs.list_catalogs, page, page_size)
    return json_response(
        {"catalogNames": names, "totalCatalogsCount": total, **_page_urls(request, page, page_size, total)}
    )


async def _create_catalog(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    created = await sandbox.worker.run(sandbox.catalogs.create_catalog, _catalog_name(request))
    return envelope("Success", "Catalog created", 201, created)


async def _delete_catalog(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return envelope("Success", await sandbox.worker.run(sandbox.catalogs.delete_catalog, _catalog_name(request)))


async def _get_field_mappings(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(sandbox.catalogs.field_mappings, _catalog_name(request)))


async def _set_field_mappings(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    catalogs = sandbox.catalogs
    msg = await sandbox.worker.run(_with_json, catalogs.set_field_mappings, _catalog_name(request), body)
    return envelope("Success", msg)


async def _bulk_write(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    count = await sandbox.worker.run(_with_json, sandbox.catalogs.bulk_write, _catalog_name(request), body)
    return envelope("Success", f"Request to bulk upload {count} items received", 202)


async def _bulk_delete(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    msg = await sandbox.worker.run(_with_json, sandbox.catalogs.bulk_delete, _catalog_name(request), body)
    return envelope("Success", msg, 202)


async def _list_items(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    page, page_size = _paging(request, MAX_ITEMS_PAGE_SIZE)
    order_by, ascending = _order(request)
    items, total = await sandbox.worker.run(
        sandbox.catalogs.list_items, _catalog_name(request), page, page_size, order_by, ascending
    )
    return json_response(
        {"catalogItemsWithProperties": items, "totalItemsCount": total, **_page_urls(request, page, page_size, total)}
    )


async def _get_item(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    item = await sandbox.worker.run(sandbox.catalogs.get_item, _catalog_name(request), _item_id(request))
    return json_response(item)


async def _put_item(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    catalogs = sandbox.catalogs
    msg = await sandbox.worker.run(_with_json, catalogs.put_item, _catalog_name(request), _item_id(request), body)
    return envelope("Success", msg, 202)


async def _patch_item(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    catalogs = sandbox.catalogs
    msg = await sandbox.worker.run(_with_json, catalogs.patch_item, _catalog_name(request), _item_id(request), body)
    return envelope("Success", msg, 202)


async def _delete_item(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    msg = await sandbox.worker.run(sandbox.catalogs.delete_item, _catalog_name(request), _item_id(request))
    return envelope("Success", msg, 202)


CATALOG_ROUTES: list[tuple[str, str, CatalogHandler, bool]] = [
    ("GET", "/api/catalogs", _list_catalogs, False),
    ("POST", "/api/catalogs/{catalogName}", _create_catalog, False),
    ("DELETE", "/api/catalogs/{catalogName}", _delete_catalog, False),
    ("GET", "/api/catalogs/{catalogName}/fieldMappings", _get_field_mappings, False),
    ("PUT", "/api/catalogs/{catalogName}/fieldMappings", _set_field_mappings, True),
    ("POST", "/api/catalogs/{catalogName}/items", _bulk_write, True),
    ("DELETE", "/api/catalogs/{catalogName}/items", _bulk_delete, True),
    ("GET", "/api/catalogs/{catalogName}/items", _list_items, False),
    ("GET", "/api/catalogs/{catalogName}/items/{itemId}", _get_item, False),
    ("PUT", "/api/catalogs/{catalogName}/items/{itemId}", _put_item, True),
    ("PATCH", "/api/catalogs/{catalogName}/items/{itemId}", _patch_item, True),
    ("DELETE", "/api/catalogs/{catalogName}/items/{itemId}", _delete_item, False),
]
