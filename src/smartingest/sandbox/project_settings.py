"""Project settings that can change while the sandbox runs: `GET` / `PATCH /_sandbox/settings`.

They are the settings a real Iterable project has outside the API: the daily cap of the GDPR
endpoints (`gdpr_daily_cap`, fixed at 1000 by Iterable; lowering it lets a test reach it) and the
custom event names the project refuses (`disallowed_event_names`, Iterable's Manage Custom Events).
They start from `SandboxSettings`, and `POST /_sandbox/reset` restores those start values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .envelope import json_response

if TYPE_CHECKING:
    from .app import Sandbox


class ProjectSettings(BaseModel):
    """A change of the run-time project settings; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    gdpr_daily_cap: int | None = Field(
        None, ge=0, description="Requests per 24 hours to each of users/forget and users/unforget; null: no cap."
    )
    disallowed_event_names: list[str] = Field(
        default_factory=list, description="Custom event names the project refuses to track."
    )


def _sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox


def current(sandbox: Sandbox) -> dict[str, Any]:
    """The run-time project settings now."""
    return {
        "gdpr_daily_cap": sandbox.limiter.daily_cap,
        "disallowed_event_names": sorted(sandbox.events.disallowed_names),
    }


async def apply(sandbox: Sandbox, change: ProjectSettings) -> None:
    """Apply the fields a change sets."""
    if "gdpr_daily_cap" in change.model_fields_set:
        sandbox.limiter.daily_cap = change.gdpr_daily_cap
    if "disallowed_event_names" in change.model_fields_set:
        names = set(change.disallowed_event_names)
        # The worker thread reads the names while tracking: change them there.
        await sandbox.worker.run(setattr, sandbox.events, "disallowed_names", names)


async def _get(request: Request) -> Response:
    return json_response(current(_sandbox_of(request)))


async def _patch(request: Request) -> Response:
    sandbox = _sandbox_of(request)
    try:
        change = ProjectSettings.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        return json_response({"error": "invalid settings", "details": exc.errors(include_url=False)}, 400)
    await apply(sandbox, change)
    return json_response(current(sandbox))


SETTINGS_ROUTES = [
    Route("/_sandbox/settings", _get, methods=["GET"]),
    Route("/_sandbox/settings", _patch, methods=["PATCH"]),
]
