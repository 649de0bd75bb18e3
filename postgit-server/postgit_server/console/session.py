"""The console's session in requests: the dependency every page declares, rendering with it, login and logout."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postgit_server.console.access import (
    COOKIE,
    SESSION_SECONDS,
    CsrfRefused,
    Session,
    SessionKeeper,
    check_origin,
    set_cookie,
)
from postgit_server.console.rendering import templates

HOME = "/ui/instances"
router = APIRouter(prefix="/ui", include_in_schema=False)


class LoginNeeded(Exception):
    """The request needs a logged-in session and has none."""


async def console_session(request: Request) -> Session:
    """The request's session; without a token a new one is opened on the first visit.

    Raises:
        LoginNeeded: the server has a token and the request no valid session.
    """
    keeper: SessionKeeper = request.app.state.console
    session = await live_session(request)
    if session is None:
        if keeper.login_required:
            raise LoginNeeded
        session = keeper.new_session(None)
        request.state.new_console_session = session
    return session


async def live_session(request: Request) -> Session | None:
    """The request's valid session, unless it logged out (a copy of its cookie is refused by every server process)."""
    keeper: SessionKeeper = request.app.state.console
    session = keeper.read(request)
    store = request.app.state.service.store
    if session is not None and session.authenticated and await store.console_session_ended(session.sid):
        return None
    return session


def page(
    request: Request, session: Session | None, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    """Render a console template with what every page needs: the session, its CSRF token, the login state."""
    keeper: SessionKeeper = request.app.state.console
    response = templates.TemplateResponse(
        request,
        template,
        {
            **context,
            "session": session,
            "csrf": keeper.csrf_token(session) if session else "",
            "login_required": keeper.login_required,
        },
        status_code=status,
    )
    fresh = getattr(request.state, "new_console_session", None)
    if fresh is not None:
        set_cookie(response, keeper, fresh, request)
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_needed(request: Request, exc: LoginNeeded) -> Response:
    """Send a browser to the login page (an htmx request through ``HX-Redirect``), back here afterwards.

    Back, for an htmx request (a page's live part), means the page it came from (``HX-Current-URL``), not the part.
    """
    target = "/ui/login?next=" + _quote_next(request.url.path, request.url.query)
    if request.headers.get("hx-request"):
        current = urlsplit(request.headers.get("hx-current-url", ""))
        if current.path.startswith("/ui/"):
            target = "/ui/login?next=" + _quote_next(current.path, current.query)
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The login form (straight on to ``next`` when the server has no token or the browser is logged in)."""
    keeper: SessionKeeper = request.app.state.console
    target = safe_next(request.query_params.get("next"))
    if not keeper.login_required or await live_session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, target, None, 200)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token and open a session; the form again with the reason when the token is wrong."""
    keeper: SessionKeeper = request.app.state.console
    form = await request.form()
    target = safe_next(str(form.get("next") or ""))
    if not keeper.login_required:
        return RedirectResponse(target, status_code=303)
    try:  # a login form can only be posted from this server's own pages
        check_origin(request)
    except CsrfRefused as exc:
        return _login_page(request, target, str(exc), 403)
    token = form.get("token")
    found = keeper.check_token(token.strip()) if isinstance(token, str) else None
    if found is None:
        return _login_page(request, target, "that is not this server's API token, nor one of its named tokens", 401)
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, keeper, keeper.new_session(found), request)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the browser's session: its cookie is removed, and refused from now on should a copy of it be sent."""
    keeper: SessionKeeper = request.app.state.console
    session = await live_session(request)
    form = await request.form()
    if session is not None:
        try:
            keeper.check_csrf(request, session, str(form.get("csrf") or ""))
        except CsrfRefused as exc:
            return page(request, session, "error.html", {"message": str(exc)}, status=403)
        if session.authenticated:
            await request.app.state.service.store.end_console_session(session.sid, keep_seconds=SESSION_SECONDS)
    response = RedirectResponse("/ui/login" if keeper.login_required else HOME, status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this server only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    return target


def _quote_next(path: str, query: str) -> str:
    return quote(path + (f"?{query}" if query else ""), safe="")


def _login_page(request: Request, target: str, error: str | None, status: int) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "login.html", {"next": target, "error": error, "session": None, "login_required": True},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip
