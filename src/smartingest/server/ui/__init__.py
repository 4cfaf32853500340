"""The web UI: server-rendered pages (Jinja) over the same service layer as the REST API, made lively with
htmx (vendored in ``static/``: no JavaScript build step), signed in with an API token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from smartingest import service
from smartingest.server.ui import models, runs, sync_editor, syncs
from smartingest.server.ui.definitions import DESTINATIONS, SOURCES, router_for
from smartingest.server.ui.render import HERE, page
from smartingest.server.ui.session import (
    SignInRequired,
    end_session,
    safe_next,
    same_origin,
    sign_in_redirect,
    start_session,
)

pages = APIRouter(include_in_schema=False)


@pages.get("/")
def home() -> Response:
    return RedirectResponse("/syncs", status_code=303)


@pages.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", next=safe_next(next))


@pages.post("/login")
def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/syncs") -> Response:
    if not same_origin(request):
        return page(request, "login.html", 403, next=safe_next(next), problem="This form was posted from another site.")
    if not token.strip() or service.token_owner(request.app.state.ws, token.strip()) is None:
        problem = "That token is not valid: create one with `smartingest token create NAME`, or ask for a new one."
        return page(request, "login.html", 401, next=safe_next(next), problem=problem)
    response = RedirectResponse(safe_next(next), status_code=303)
    start_session(response, request, token.strip())
    return response


@pages.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    end_session(response)
    return response


def mount_ui(app: FastAPI) -> None:
    """Serve the UI's pages and assets from ``app``."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # The editor's routes first: /syncs/new and /syncs/NAME/edit before /syncs/NAME and its actions.
    routers = (pages, sync_editor.router, syncs.router, runs.router, models.router)
    for router in (*routers, router_for(SOURCES), router_for(DESTINATIONS)):
        app.include_router(router, include_in_schema=False)

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request, exc.next_path)
