"""The web console: server-rendered pages at ``/ui`` (``/`` leads there), with htmx for live parts.

:func:`install_console` adds it to the API's app; the API's own paths are unchanged.
"""

from __future__ import annotations

import json

import psycopg
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from postgit_server.console import pages, session
from postgit_server.console.access import SessionKeeper
from postgit_server.console.session import HOME, LoginNeeded, live_session, login_needed, page
from postgit_server.settings import ServerSettings

SWAGGER_UI = "/ui/static/swagger-ui"
"""Where the vendored Swagger UI is served: ``/docs`` works on a machine without internet access."""


def install_console(app: FastAPI, settings: ServerSettings) -> None:
    """Serve the console on ``app``, and ``/docs`` (with a token, for a logged-in browser only)."""
    app.state.console = SessionKeeper(settings)
    app.add_exception_handler(LoginNeeded, login_needed)  # type: ignore[arg-type]
    _pages_say_why_the_database_is_unavailable(app)
    app.mount("/ui/static", StaticFiles(packages=[("postgit_server.console", "static")]), name="console-static")
    app.include_router(session.router)
    app.include_router(pages.router)

    @app.get("/", include_in_schema=False)
    async def console_home() -> Response:
        return RedirectResponse(HOME, status_code=303)

    @app.get("/docs", include_in_schema=False)
    async def docs_page(request: Request) -> Response:
        if settings.auth_required and await live_session(request) is None:
            return await login_needed(request, LoginNeeded())
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Postgit API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        )


def _pages_say_why_the_database_is_unavailable(app: FastAPI) -> None:
    """On a console page, the API's 503 for an unavailable database becomes an error page saying the same."""
    api_answer = app.exception_handlers[psycopg.OperationalError]

    async def answer(request: Request, exc: psycopg.OperationalError) -> Response:
        response = await api_answer(request, exc)
        if not request.url.path.startswith("/ui/"):
            return response
        detail = json.loads(bytes(response.body)).get("detail", "database unavailable")
        shown = page(request, None, "error.html", {"message": detail}, status=response.status_code)
        if "retry-after" in response.headers:
            shown.headers["Retry-After"] = response.headers["retry-after"]
        return shown

    app.add_exception_handler(psycopg.OperationalError, answer)  # type: ignore[arg-type]
