"""The sandbox's HTTP surface: Iterable's /api routes and the /_sandbox admin routes.

The user routes are here; events, lists and catalogs bring theirs (`event_routes`, `list_routes`,
`catalog_routes`), served through the same pipeline.

Each /api request goes through the same pipeline, in this order: fault injection (latency, then a
drop, a status burst or an injected error), the `Api-Key` check (401 `BadApiKey`), the endpoint's
rate limit (429 `RateLimitExceeded`), the body-size limit (413 `BatchTooLarge` above 4 MB), JSON
parsing (400 `BadJsonBody`), then the handler. Storage work runs on the storage worker thread.
Admin routes never fault, need no key and are not rate limited.

A path under /api that no route serves answers 404 `NotFound` before any of that. The
`/api/users/{email}` routes only take a last segment containing `@`: anything else there
(`getSentMessages`, `update` with the wrong method, ...) is an unknown path, not an email.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from .catalog_routes import CATALOG_ROUTES
from .catalog_store import CatalogStore
from .catalogs import Catalogs
from .envelope import ApiError, code_for_status, envelope, error_response, json_response
from .event_routes import EVENT_ROUTES
from .events import Events
from .faults import FaultInjector, drop_connection, quiet_injected_drops
from .list_routes import LIST_ROUTES
from .lists import StaticLists
from .project import Project
from .project_settings import SETTINGS_ROUTES
from .ratelimit import RateLimiter
from .recording import RECORDING_ROUTES, RequestRecorder
from .settings import FaultSettings, SandboxSettings
from .stats import Stats
from .store import Store
from .worker import StorageWorker

MAX_BODY_BYTES = 4 * 1024 * 1024  # the contract's "Max size of request body: 4MB"
MAX_PAGE = 10_000

log = logging.getLogger("smartingest.sandbox")


@dataclass
class Sandbox:
    """The state one sandbox app serves from."""

    settings: SandboxSettings
    worker: StorageWorker
    faults: FaultInjector
    limiter: RateLimiter
    stats: Stats
    catalogs: Catalogs
    events: Events
    lists: StaticLists
    recorder: RequestRecorder

    @property
    def project(self) -> Project:
        return self.worker.project


Handler = Callable[[Sandbox, Request, bytes], Awaitable[Response]]


def _call_with_json(method: Callable[[Any], Any], body: bytes) -> Any:
    """Parse a request body and call a project method with it (both on the worker thread)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "BadJsonBody", f"Malformed JSON body: {exc}") from exc
    return method(payload)


async def _read_body(request: Request) -> bytes:
    """The request body; raises 413 `BatchTooLarge` beyond `MAX_BODY_BYTES`."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise _too_large(int(length))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            # uvicorn discards the rest of the body once the response is sent.
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


class _BodyTracker:
    """Wraps `receive` to know whether the whole request body has been received."""

    def __init__(self, receive: Receive):
        self._receive = receive
        self.done = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message


async def _drain(receive: Receive) -> None:
    """Receive and discard the request body (up to twice the body limit)."""
    size = 0
    while size <= 2 * MAX_BODY_BYTES:
        message = await receive()
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _too_large(size: int) -> ApiError:
    return ApiError(
        413,
        "BatchTooLarge",
        f"Request body of {size} bytes exceeds the maximum of {MAX_BODY_BYTES} bytes (4 MB)",
        {"maxBytes": MAX_BODY_BYTES},
    )


class ApiEndpoint:
    """One /api route (an ASGI app): faults, auth, rate limit and body limit around a handler."""

    def __init__(self, sandbox: Sandbox, name: str, handler: Handler, reads_body: bool):
        self.sandbox = sandbox
        self.name = name
        self.handler = handler
        self.reads_body = reads_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox = self.sandbox
        tracked = _BodyTracker(receive)
        decision = sandbox.faults.decide(self.name)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.action == "drop" and not decision.after_processing:
            await self._drop(tracked, send)
        if decision.action == "status":
            headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after is not None else None
            code = code_for_status(decision.status)
            response = envelope(code, f"Injected fault: HTTP {decision.status}", decision.status, None, headers)
        elif decision.action == "error":
            response = envelope("GenericError", "Injected fault: internal server error", 500)
        else:
            response = await self._process(Request(scope, tracked))
        if decision.action == "drop":
            await self._drop(tracked, send)
        self.sandbox.stats.record(self.name, str(response.status_code))
        await response(scope, tracked, send)

    async def _drop(self, receive: _BodyTracker, send: Send) -> None:
        self.sandbox.stats.record(self.name, "dropped")
        if not receive.done:
            # Closing a socket with unread input makes the kernel send a reset, and the client would
            # then see a ReadError some of the time instead of a cut-off response.
            await _drain(receive)
        await drop_connection(send)

    async def _process(self, request: Request) -> Response:
        try:
            api_key = self._authenticate(request)
            refusal = self.sandbox.limiter.check(api_key, self.name)
            if refusal is not None:
                raise ApiError(429, "RateLimitExceeded", f"Rate limit exceeded: {refusal}")
            body = await _read_body(request) if self.reads_body else b""
            self.sandbox.recorder.record(self.name, request, body)
            return await self.handler(self.sandbox, request, body)
        except ApiError as error:
            return error_response(error)
        except ClientDisconnect:
            # The client went away mid-body: nobody will read the answer, nothing was applied.
            return envelope("BadParams", "Client disconnected before sending the whole body", 400)
        except Exception:
            log.exception("sandbox error in %s", self.name)
            return envelope("GenericError", "Internal error in the sandbox (see its log)", 500)

    def _authenticate(self, request: Request) -> str:
        api_key = request.headers.get("api-key")
        if not api_key:
            raise ApiError(401, "BadApiKey", "Missing API key: send it in the Api-Key header")
        expected = self.sandbox.settings.api_key or ""
        if not secrets.compare_digest(api_key.encode(), expected.encode()):
            raise ApiError(401, "BadApiKey", "Invalid API key")
        return api_key


# ---- /api handlers


async def _bulk_update(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    result = await sandbox.worker.run(_call_with_json, sandbox.project.bulk_update, body)
    return json_response(result)


async def _update(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    msg = await sandbox.worker.run(_call_with_json, sandbox.project.update, body)
    return envelope("Success", msg)


async def _update_email(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    msg = await sandbox.worker.run(_call_with_json, sandbox.project.update_email, body)
    return envelope("Success", msg)


def _required_param(value: str | None, name: str) -> str:
    if not value:
        raise ApiError(400, "BadParams", f"Missing required parameter {name!r}")
    return value


async def _get_by_email_query(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    email = _required_param(request.query_params.get("email"), "email")
    return json_response(await sandbox.worker.run(sandbox.project.get_by_email, email))


async def _get_by_email_path(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    email = _required_param(request.path_params.get("email"), "email")
    return json_response(await sandbox.worker.run(sandbox.project.get_by_email, email))


async def _get_by_user_id_query(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    user_id = _required_param(request.query_params.get("userId"), "userId")
    return json_response(await sandbox.worker.run(sandbox.project.get_by_user_id, user_id))


async def _get_by_user_id_path(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    user_id = _required_param(request.path_params.get("userId"), "userId")
    return json_response(await sandbox.worker.run(sandbox.project.get_by_user_id, user_id))


async def _get_fields(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(sandbox.project.get_fields))


async def _delete_by_email(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    email = _required_param(request.path_params.get("email"), "email")
    return envelope("Success", await sandbox.worker.run(sandbox.project.delete_by_email, email))


async def _delete_by_user_id(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    user_id = _required_param(request.path_params.get("userId"), "userId")
    return envelope("Success", await sandbox.worker.run(sandbox.project.delete_by_user_id, user_id))


async def _forget(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return envelope("Success", await sandbox.worker.run(_call_with_json, sandbox.project.forget, body))


async def _unforget(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return envelope("Success", await sandbox.worker.run(_call_with_json, sandbox.project.unforget, body))


async def _forgotten_emails(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(sandbox.project.forgotten_hashes, "email"))


async def _forgotten_user_ids(sandbox: Sandbox, request: Request, body: bytes) -> Response:
    return json_response(await sandbox.worker.run(sandbox.project.forgotten_hashes, "userId"))


# (method, path, handler, reads body). Order matters: fixed paths before the {email} catch-all.
API_ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("POST", "/api/users/update", _update, True),
    ("POST", "/api/users/updateEmail", _update_email, True),
    ("POST", "/api/users/bulkUpdate", _bulk_update, True),
    ("POST", "/api/users/forget", _forget, True),
    ("POST", "/api/users/unforget", _unforget, True),
    ("GET", "/api/users/getByEmail", _get_by_email_query, False),
    ("GET", "/api/users/getFields", _get_fields, False),
    ("GET", "/api/users/forgotten", _forgotten_emails, False),
    ("GET", "/api/users/forgottenUserIds", _forgotten_user_ids, False),
    ("GET", "/api/users/byUserId", _get_by_user_id_query, False),
    ("GET", "/api/users/byUserId/{userId}", _get_by_user_id_path, False),
    ("DELETE", "/api/users/byUserId/{userId}", _delete_by_user_id, False),
    ("GET", "/api/users/{email}", _get_by_email_path, False),
    ("DELETE", "/api/users/{email}", _delete_by_email, False),
    *CATALOG_ROUTES,
    *EVENT_ROUTES,
    *LIST_ROUTES,
]


async def _unknown_api_route(request: Request) -> Response:
    return envelope("NotFound", f"No such endpoint in the sandbox: {request.method} {request.url.path}", 404)


class _EmailRoute(Route):
    """A route with an `{email}` path parameter that only matches values containing `@`.

    Iterable's other /api/users endpoints share the `/api/users/{email}` shape; a segment without
    `@` names one of them (or nothing), never a user, so it falls through to the 404 route. A value
    with `@` is an email, answered 400 `InvalidEmailAddressError` by the handler when malformed.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE and "@" not in child_scope["path_params"]["email"]:
            return Match.NONE, {}
        return match, child_scope


# ---- /_sandbox admin handlers


def _sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox


async def _health(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    return json_response({"status": "ok", "project_type": sandbox.settings.project_type})


async def _get_faults(request: Request) -> Response:
    return json_response(_sandbox_of(request).faults.snapshot())


async def _put_faults(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    try:
        settings = FaultSettings.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        return json_response({"error": "invalid fault settings", "details": exc.errors(include_url=False)}, 400)
    sandbox.faults.configure(settings)
    return json_response(sandbox.faults.snapshot())


async def _clear_faults(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    sandbox.faults.configure(FaultSettings())
    return json_response(sandbox.faults.snapshot())


async def _reset(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    await sandbox.worker.run(sandbox.project.reset)
    await sandbox.worker.run(sandbox.catalogs.reset)
    await sandbox.worker.run(sandbox.events.reset, sandbox.settings.disallowed_event_names)
    await sandbox.worker.run(sandbox.lists.reset)
    sandbox.stats.reset()
    sandbox.recorder.clear()
    sandbox.limiter.reset()
    sandbox.limiter.daily_cap = sandbox.settings.gdpr_daily_cap
    sandbox.faults.configure(sandbox.settings.faults)
    return json_response({"reset": True})


async def _stats(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    snapshot = sandbox.stats.snapshot()
    snapshot.update(await sandbox.worker.run(sandbox.project.counts))
    snapshot.update(await sandbox.worker.run(sandbox.catalogs.counts))
    snapshot["events"] = await sandbox.worker.run(sandbox.events.count)
    snapshot["lists"] = await sandbox.worker.run(sandbox.lists.count)
    return json_response(snapshot)


async def _users(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    try:
        after = int(request.query_params.get("after", "0"))
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        return json_response({"error": "after and limit must be integers"}, 400)
    if not 1 <= limit <= MAX_PAGE:
        return json_response({"error": f"limit must be between 1 and {MAX_PAGE}"}, 400)
    return json_response(await sandbox.worker.run(sandbox.project.list_users, after, limit))


ADMIN_ROUTES = [
    Route("/_sandbox/health", _health, methods=["GET"]),
    Route("/_sandbox/faults", _get_faults, methods=["GET"]),
    Route("/_sandbox/faults", _put_faults, methods=["PUT"]),
    Route("/_sandbox/faults", _clear_faults, methods=["DELETE"]),
    Route("/_sandbox/reset", _reset, methods=["POST"]),
    Route("/_sandbox/stats", _stats, methods=["GET"]),
    Route("/_sandbox/users", _users, methods=["GET"]),
]


def create_app(settings: SandboxSettings) -> Starlette:
    """The sandbox ASGI app for `settings`; opens (or creates) the project database now.

    Raises `ProjectTypeMismatchError` when the data directory holds another project type. The
    database is closed when the app's lifespan ends.
    """
    worker = StorageWorker(lambda: Project(Store(settings.data_dir, settings.project_type), settings.project_type))
    sandbox = Sandbox(
        settings=settings,
        worker=worker,
        faults=FaultInjector(settings.faults),
        limiter=RateLimiter(settings.rate_limits, settings.rate_limit_scale, daily_cap=settings.gdpr_daily_cap),
        stats=Stats(),
        catalogs=Catalogs(CatalogStore(settings.data_dir)),
        # Their tables are created on the worker thread, which owns the project's connection.
        events=worker.call(Events, worker.project, settings.disallowed_event_names),
        lists=worker.call(StaticLists, worker.project),
        recorder=RequestRecorder(settings.record_requests),
    )
    quiet_injected_drops()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            worker.close()
            sandbox.catalogs.store.close()

    api_routes = [
        (_EmailRoute if "{email}" in path else Route)(
            path.replace("{email}", "{email:path}")
            .replace("{userId}", "{userId:path}")
            .replace("{listId}", "{listId:int}"),
            ApiEndpoint(sandbox, f"{method} {path}", handler, reads_body),
            methods=[method],
            name=f"{method} {path}",
        )
        for method, path, handler, reads_body in API_ROUTES
    ]
    catch_all = Route("/api/{rest:path}", _unknown_api_route, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    admin_routes = [*ADMIN_ROUTES, *SETTINGS_ROUTES, *RECORDING_ROUTES]
    app = Starlette(routes=[*api_routes, catch_all, *admin_routes], lifespan=lifespan)
    app.state.sandbox = sandbox
    return app
