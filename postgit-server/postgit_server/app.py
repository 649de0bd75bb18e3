"""The FastAPI application: ``create_app`` wires settings, lifespan, auth, error handlers and routes."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from postgit.db import Store
from postgit.db.pool import DatabaseWatch
from postgit.engine.changes import ChangeHub
from postgit.engine.scheduler import Scheduler
from postgit.outbox import OutboxSender
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from postgit.schedules import ScheduleService
from postgit.service import WorkflowService
from postgit_server import __version__
from postgit_server.audit import install_audit
from postgit_server.auth import bearer, require_token, role_of
from postgit_server.console import install_console
from postgit_server.console.session import live_session
from postgit_server.database import migrate_when_reachable, open_server_pool
from postgit_server.errors import SERVICE_UNAVAILABLE, install_error_handlers
from postgit_server.metrics import DatabaseMetrics
from postgit_server.models import ValidationErrorBody
from postgit_server.roles import Role
from postgit_server.routes import (
    audit,
    events,
    health,
    instances,
    metrics,
    operations,
    outbox,
    plugins,
    schedules,
    signals,
    workers,
    workflows,
)
from postgit_server.settings import ServerSettings

log = logging.getLogger("postgit.server")

DESCRIPTION = """\
Postgit's REST API: deploy workflow definitions, start and cancel instances, follow their activity, send them
events, start workflows on a schedule, and list the node types and workers available.

When the server runs with `POSTGIT_API_TOKEN` or named tokens (`POSTGIT_API_TOKENS`) set, every route except
`/health` requires `Authorization: Bearer <token>`, this schema included (a browser logged in to the console reads it
and the `/docs` page with its session instead); only then does this schema declare bearer security. Each token has a
role: `viewer` may read (every GET), `operator` may also start, cancel and send events and mail, `admin` may do
everything (deploy, delete, schedules); `POSTGIT_API_TOKEN` is an admin's. A token without the role a route needs is
answered 403, naming the role. Every state-changing request is written to the audit log (`GET /audit`).

The web console is served at `/` (its pages under `/ui`); they are not part of this API.

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


ROUTE_MODULES = (workflows, instances, operations, events, signals, plugins, workers, outbox, schedules, audit)
"""The API's routers behind the token check (``/health`` and ``/metrics`` aside)."""

FORBIDDEN: dict[str, Any] = {
    "description": "The token's role does not allow this: the detail names the role needed",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def create_app(settings: ServerSettings, registry: NodeRegistry | None = None) -> FastAPI:
    """Build the application.

    Its lifespan loads the node registry (unless ``registry`` is given), migrates the database and opens the
    connection pool, waiting for the database while it cannot be reached, starts the one connection that listens
    for changes (:class:`~postgit.engine.changes.ChangeHub`, which the console's live views wait on), and closes
    them on shutdown. Call
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
        store = Store(pool)
        app.state.service = WorkflowService(store, nodes)
        app.state.metrics = DatabaseMetrics(store)
        app.state.outbox = OutboxSender(store, settings.smtp)
        app.state.schedules = ScheduleService(app.state.service)
        scheduler = asyncio.create_task(Scheduler(app.state.service).run(), name="scheduler")
        listener = asyncio.create_task(
            app.state.changes.run(settings.listen_url, probe=lambda token: store.notify_changes([token])),
            name="change-listener",
        )
        try:
            yield
        finally:
            begin_shutdown(app)
            scheduler.cancel()
            listener.cancel()
            await asyncio.gather(scheduler, return_exceptions=True)
            # bounded: the change listener must never hold a shutdown up
            await asyncio.wait({listener}, timeout=5.0)
            await store.changes.aclose()
            await pool.close()
            log.info("connection pool closed")

    app = FastAPI(
        title="Postgit",
        summary="Durable workflows on PostgreSQL",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        # with a token, the schema and the docs page are served only to authenticated clients (below): a browser
        # could not send the token with the schema request it makes, so it logs in to the console first
        openapi_url=None if settings.auth_required else "/openapi.json",
        docs_url=None,  # the console serves /docs, with Swagger UI from its own static files
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.console_key = secrets.token_urlsafe(32)
    app.state.stopping = asyncio.Event()
    app.state.changes = ChangeHub()
    app.state.database = DatabaseWatch(log)
    install_error_handlers(app)
    app.include_router(health.router)
    # without a token nothing is required, and the schema declares no security: a client generated from it asks
    # for no token
    protected = [Depends(require_token)] if settings.auth_required else []
    refusals = {**UNAUTHORIZED, **SERVICE_UNAVAILABLE} if settings.auth_required else SERVICE_UNAVAILABLE
    for module in ROUTE_MODULES:
        app.include_router(module.router, dependencies=protected, responses=refusals)
    # /metrics answers without the database (its series left out) rather than with a 503
    app.include_router(metrics.router, dependencies=protected, responses=UNAUTHORIZED if settings.auth_required else {})
    install_console(app, settings)
    install_audit(app, api_routes())
    if settings.auth_required:

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi_schema(request: Request) -> JSONResponse:
            # a browser logged in to the console reads it too: that is how its /docs page works
            if await live_session(request) is None:
                await require_token(request, await bearer(request))
            return JSONResponse(app.openapi())

    _shape_schema(app)
    return app


def api_routes() -> list[APIRoute]:
    """The routes of :data:`ROUTE_MODULES` (included without a prefix: each route's path is its path in the app)."""
    return [route for module in ROUTE_MODULES for route in module.router.routes if isinstance(route, APIRoute)]


def _document_refusals(schema: dict[str, Any]) -> None:
    """Every operation that needs more than a viewer says that a token without its role gets a 403."""
    refusable = {
        route.name for route in api_routes() if role_of(route.dependant.dependencies) not in (None, Role.viewer)
    }
    for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
        if operation.get("operationId") in refusable:
            operation["responses"].setdefault("403", FORBIDDEN)


def operation_id(route: APIRoute) -> str:
    """An operation's id in the schema: its function's name (``deploy``, ``start_instance``), unique across routes.

    Generated clients name their functions after it; FastAPI's default appends the path and method.
    """
    return route.name


def begin_shutdown(app: FastAPI) -> None:
    """Tell long-lived responses (event streams, the console's live views) to end: the server is stopping."""
    app.state.stopping.set()
    app.state.changes.close()


def _shape_schema(app: FastAPI) -> None:
    """Build the OpenAPI schema as FastAPI does, with two corrections.

    422 answers are described as this server sends them (see :mod:`postgit_server.errors`), not as FastAPI's default
    ones, and optional parameters as absent rather than null.
    """

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
            # one model under one name (a generator refuses two models both titled ValidationErrorBody)
            schemas["ValidationErrorBody"] = body
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            _replace_refs(
                schema["paths"], "#/components/schemas/HTTPValidationError", "#/components/schemas/ValidationErrorBody"
            )
            _drop_null_from_optional_parameters(schema)
            if app.state.settings.auth_required:
                _document_refusals(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_null_from_optional_parameters(schema: dict[str, Any]) -> None:
    """An optional parameter (``x: int | None = None``) is left out when it has no value, never sent as null.

    FastAPI describes it as ``anyOf: [<type>, null]``; a query string or header has no null, so the schema states the
    type alone (a client would otherwise send ``?after=null``, or a generator expect the server to take it).
    """
    for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
        for parameter in operation.get("parameters", []):
            options = parameter.get("schema", {}).get("anyOf")
            if parameter.get("required") or not options or {"type": "null"} not in options or len(options) != 2:
                continue
            rest = {key: value for key, value in parameter["schema"].items() if key != "anyOf"}
            (kept,) = [option for option in options if option != {"type": "null"}]
            parameter["schema"] = {**kept, **rest}


def _replace_refs(node: Any, old: str, new: str) -> None:
    """Point every ``$ref`` to ``old`` inside ``node`` at ``new`` instead."""
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _replace_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, old, new)
