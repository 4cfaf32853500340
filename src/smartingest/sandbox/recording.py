"""An opt-in record of the requests the sandbox received: the last N per /api endpoint.

With `SandboxSettings.record_requests` (`--record-requests N`) above 0, every /api request that
passed authentication, the rate limit and the body-size limit is kept, as received, before its
handler runs: refused requests are kept too, since what a client sent is the point. Requests
answered by an injected fault are not kept (they never reached that far). Only the newest N per
endpoint stay, so memory is bounded whatever runs against the sandbox. Off (0) by default: the record
holds request bodies, which can be large and carry personal data.

Read it with `GET /_sandbox/requests` (optionally `?endpoint=POST /api/users/bulkUpdate`), clear it
with `DELETE /_sandbox/requests`; `POST /_sandbox/reset` clears it too. Tests use it to check the
bodies that real syncs sent against Iterable's API contract.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .envelope import json_response

if TYPE_CHECKING:
    from .app import Sandbox


class RequestRecorder:
    """The newest `limit` requests per endpoint name (`POST /api/users/bulkUpdate`), oldest first.

    Only the event loop records and reads, so no lock is needed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._requests: dict[str, deque[dict[str, Any]]] = {}

    def record(self, endpoint: str, request: Request, body: bytes) -> None:
        """Keep one received request (nothing when recording is off)."""
        if self.limit <= 0:
            return
        kept = self._requests.setdefault(endpoint, deque(maxlen=self.limit))
        kept.append(
            {
                "path": request.url.path,
                "query": request.url.query,
                "content_type": request.headers.get("content-type"),
                # The bytes as sent, as text: a body that is not JSON is shown as it came.
                "body": body.decode("utf-8", errors="replace"),
            }
        )

    def snapshot(self, endpoint: str | None = None) -> dict[str, Any]:
        """`{"record_requests": N, "requests": {endpoint: [{path, query, content_type, body}]}}`."""
        names = sorted(self._requests) if endpoint is None else [endpoint]
        requests = {name: list(self._requests[name]) for name in names if self._requests.get(name)}
        return {"record_requests": self.limit, "requests": requests}

    def clear(self) -> None:
        """Forget every kept request."""
        self._requests.clear()


def _recorder_of(request: Request) -> RequestRecorder:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox.recorder


async def _get(request: Request) -> Response:
    return json_response(_recorder_of(request).snapshot(request.query_params.get("endpoint")))


async def _delete(request: Request) -> Response:
    recorder = _recorder_of(request)
    recorder.clear()
    return json_response(recorder.snapshot())


RECORDING_ROUTES = [
    Route("/_sandbox/requests", _get, methods=["GET"]),
    Route("/_sandbox/requests", _delete, methods=["DELETE"]),
]
