"""Signing in to the web UI: with an API token (``smartingest token create NAME``), kept in a cookie that
scripts cannot read (HttpOnly) and that other sites' forms never carry (SameSite=Lax: a link from an
alert still opens the page signed in). A form posted from another origin is refused too (its Origin
header), so no other page can act for a user."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from smartingest import service

COOKIE = "smartingest_session"
MAX_AGE = 12 * 3600  # a sign-in lasts a working day; the token itself lasts until revoked


class SignInRequired(Exception):
    """The request has no valid session: the page asks to sign in, then comes back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def viewer(request: Request) -> str:
    """The name of the signed-in token; raises SignInRequired without one, and refuses (403) a form
    posted from another origin."""
    token = request.cookies.get(COOKIE)
    owner = service.token_owner(request.app.state.ws, token) if token else None
    if owner is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path if request.method == "GET" else "/")
    if request.method != "GET" and not same_origin(request):
        raise HTTPException(403, "this form was posted from another site")
    return owner


Viewer = Annotated[str, Depends(viewer)]


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return True  # not a browser's cross-site form (browsers send Origin with every POST)
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another site's address)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/syncs"
    return path


def sign_in_redirect(request: Request, next_path: str) -> Response:
    target = f"/login?next={quote(next_path, safe='/')}"
    if request.headers.get("hx-request"):  # an htmx fragment: the whole page goes to the sign-in page
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def start_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")
