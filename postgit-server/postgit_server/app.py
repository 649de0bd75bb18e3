"""The FastAPI application: ``create_app`` wires settings, lifespan, auth, error handlers and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from postgit.db import Store
from postgit.db.pool import DatabaseWatch
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from postgit.service import WorkflowService
from postgit_server import __version__
from postgit_server.auth import require_token
from postgit_server.database import migrate_when_reachable, open_server_pool
from postgit_server.errors import SERVICE_UNAVAILABLE, install_error_handlers
from postgit_server.models import ValidationErrorBody
from postgit_server.routes import events, health, instances, outbox, plugins, signals, workers, workflows
from postgit_server.settings import ServerSettings

log = logging.getLogger("postgit.server")

DESCRIPTION = """\
Postgit's REST API: deploy workflow definitions, start and cancel instances, follow their activity, send them
events, and list the node types and workers available.

When the server runs with `POSTGIT_API_TOKEN` set, every route except `/health` requires
`Authorization: Bearer <token>`, this schema included, and the `/docs` page is off.

When the database cannot be reached, refuses connections or does not answer within `POSTGIT_DB_TIMEOUT_SECONDS`,
every route answers 503 with a one-line `detail` (`database unavailable: ...`) and a `Retry-After` header, and
`/health` says why; the server serves again on its own once the database is back.
"""

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "The server has an API token and the request does not carry it",
        # JSON even on routes whose own answers are not (the event stream): spelled out rather than a `model`,
        # which FastAPI would document under the route's media type
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    }
}


def create_app(settings: ServerSettings, registry: NodeRegistry | None = None) -> FastAPI:
    """Build the application.

    Its lifespan loads the node registry (unless ``registry`` is given), migrates the database and opens the
    connection pool, waiting for the database while it cannot be reached, and closes the pool on shutdown. Call
    :func:`begin_shutdown` when the server starts to stop, so that open event streams end instead of holding the
    shutdown up.

    Args:
        settings: how to reach the database, and the API token.
        registry: the node types to validate definitions against; loaded from installed plugins when None.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nodes = registry if registry is not None else load_registry()
        version = await migrate_when_reachable(settings, app.state.database)
        pool = await open_server_pool(settings, app.state.database)
        log.info("schema version %d; %d node types: %s", version, len(nodes), ", ".join(nodes))
        app.state.service = WorkflowService(Store(pool), nodes)
        try:
            yield
        finally:
            begin_shutdown(app)
            await pool.close()
            log.info("connection pool closed")

    app = FastAPI(
        title="Postgit",
        summary="Durable workflows on PostgreSQL",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        # with a token, the schema is served only to authenticated clients (below), and there is no docs page:
        # a browser could not send the token with the schema request it makes
        openapi_url=None if settings.api_token else "/openapi.json",
        docs_url=None if settings.api_token else "/docs",
        redoc_url=None if settings.api_token else "/redoc",
    )
    app.state.settings = settings
    app.state.stopping = asyncio.Event()
    app.state.database = DatabaseWatch(log)
    install_error_handlers(app)
    app.include_router(health.router)
    protected = [Depends(require_token)]
    for module in (workflows, instances, events, signals, plugins, workers, outbox):
        app.include_router(module.router, dependencies=protected, responses={**UNAUTHORIZED, **SERVICE_UNAVAILABLE})
    if settings.api_token:

        @app.get("/openapi.json", include_in_schema=False, dependencies=protected)
        async def openapi_schema() -> JSONResponse:
            return JSONResponse(app.openapi())

    _document_error_bodies(app)
    return app


def begin_shutdown(app: FastAPI) -> None:
    """Tell long-lived responses (event streams) to end: the server is stopping."""
    app.state.stopping.set()


def _document_error_bodies(app: FastAPI) -> None:
    """Describe 422 answers as this server sends them (see :mod:`postgit_server.errors`), not FastAPI's default."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = schema["components"]["schemas"]
            body = ValidationErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas["HTTPValidationError"] = body
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
