"""Postgit's errors, request validation errors and an unavailable database, as answers with a one-line ``detail``."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from postgit.errors import Conflict, DefinitionError, InvalidInput, NotFound, PostgitError
from postgit.outbox import DeliveryFailed
from postgit_server.database import unavailable_reason

log = logging.getLogger("postgit.server")

RETRY_AFTER_SECONDS = 5
"""What a 503's ``Retry-After`` suggests: the pool tries to reconnect within a few seconds."""

SERVICE_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database cannot be reached, refuses connections or does not answer in time",
        # JSON even on routes whose own answers are not (the event stream), as for 401
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        "headers": {
            "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
        },
    }
}
"""The 503 every route that uses the database may answer, for the OpenAPI schema."""

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_STATUS: list[tuple[type[PostgitError], int]] = [
    (DefinitionError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (InvalidInput, status.HTTP_400_BAD_REQUEST),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (DeliveryFailed, status.HTTP_502_BAD_GATEWAY),
]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON answers."""
    app.add_exception_handler(PostgitError, _postgit_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.DataError, _data_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(UnicodeEncodeError, _unencodable)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        # Starlette's Allow names the methods of the first route on the path only; GET and POST /workflows are two
        headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
        exc = HTTPException(exc.status_code, exc.detail, headers)
    return await http_exception_handler(request, exc)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route fully matches on the request's path (routes only tell whether they match a scope)."""
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.routes)
    ]


def status_for(exc: PostgitError) -> int:
    """The HTTP status for one of Postgit's errors (400 for kinds not listed)."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


async def _postgit_error(request: Request, exc: PostgitError) -> JSONResponse:
    content: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, DefinitionError):
        content = {"detail": definition_summary(exc), "issues": [issue.as_dict() for issue in exc.issues]}
    return JSONResponse(content, status_code=status_for(exc))


def definition_summary(exc: DefinitionError) -> str:
    """One line: the first issue (node id, field, message), and how many more there are."""
    if not exc.issues:
        return "invalid workflow definition"
    first = f"invalid workflow definition: {exc.issues[0]}"
    more = len(exc.issues) - 1
    return first if more == 0 else f"{first} (and {more} more issue{'s' if more > 1 else ''})"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_error_row(error) for error in exc.errors()]
    detail = "; ".join(f"{row['location']}: {row['message']}" if row["location"] else row["message"] for row in errors)
    return JSONResponse(
        {"detail": detail or "invalid request", "errors": errors},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _error_row(error: dict[str, Any]) -> dict[str, str]:
    """A validation error without the offending input (which may be huge): where it is and what is wrong."""
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "json_invalid":
        message = f"request body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
        location = "body"
    return {"location": location, "message": message, "type": str(error.get("type", ""))}


async def _data_error(request: Request, exc: psycopg.DataError) -> JSONResponse:
    # A value PostgreSQL cannot store (a NUL character, an out-of-range number) is the client's input.
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if exc.diag.message_detail:
        reason = f"{reason} ({exc.diag.message_detail.rstrip('.')})"
    log.info("%s %s: refused a value the database cannot store: %s", request.method, request.url.path, reason)
    return JSONResponse(
        {"detail": f"the request holds a value the database cannot store: {reason}"},
        status_code=status.HTTP_400_BAD_REQUEST,
    )


async def _database_unavailable(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
    # The database is down, unreachable, out of connections or too slow: not the client's fault, and not a bug.
    # The watch logs outages once; one line per refused request would bury that in an outage.
    reason = unavailable_reason(exc, request.app.state.database, request.app.state.settings)
    log.debug("%s %s: 503, database unavailable: %s (%s)", request.method, request.url.path, reason, exc)
    return JSONResponse(
        {"detail": f"database unavailable: {reason}; try again later"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _unencodable(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the request holds text that is not valid Unicode: {exc.reason} (e.g. a lone \\ud800 escape)"},
        status_code=status.HTTP_400_BAD_REQUEST,
    )
