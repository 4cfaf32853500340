"""Pages from Jinja templates (autoescaped: what a user or a database wrote is shown, never run), with
the filters every page uses to show times, durations and counts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from smartingest import __version__, service

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """The page ``template`` rendered with ``context``, and what every page may show: the version, and
    why definitions cannot be edited here (``read_only``) when they live in a project file."""
    ws: service.Workspace | None = getattr(request.app.state, "ws", None)
    shared = {"version": __version__, "read_only": service.definitions_read_only(ws) if ws else None}
    return templates.TemplateResponse(request, template, {**shared, **context}, status_code=status_code)


def not_found(request: Request, viewer: str, nav: str, what: str) -> Response:
    """The page of a name or run that does not exist (404), saying which."""
    return page(request, "not_found.html", 404, nav=nav, viewer=viewer, what=what)


def when(value: dt.datetime | None) -> str:
    """A moment as a page shows it: UTC, to the second."""
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago (or, in the future, in how long) a moment is, roughly."""
    if value is None:
        return ""
    seconds = ((now or dt.datetime.now(dt.UTC)) - value).total_seconds()
    text = _span(abs(seconds))
    return f"in {text}" if seconds < 0 else f"{text} ago"


def duration(seconds: float | None) -> str:
    """A length of time: 850 ms, 12.4 s, 3 min 5 s, 2 h 10 min."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _span(seconds: float) -> str:
    if seconds < 60:
        return "moments"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def number(value: int | float | None) -> str:
    return "" if value is None else f"{value:,}"


def css_name(text: str) -> str:
    """A status as a CSS class: "In Progress" -> "in-progress"."""
    return text.lower().replace(" ", "-").replace("_", "-")


templates.env.filters.update(when=when, ago=ago, duration=duration, number=number, css=css_name)
