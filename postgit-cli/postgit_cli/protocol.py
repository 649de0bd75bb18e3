"""The wire protocol of the Postgit REST API, shared by :class:`~postgit_cli.Client` and its async twin.

Where the server is (``DC_API_URL``, default ``http://localhost:3000``) and the token every request carries
(``POSTGIT_API_TOKEN``, as ``Authorization: Bearer <token>``); how an event stream is asked for; and how every
HTTP failure becomes a typed :class:`~postgit_cli.errors.CliError` with one clear line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from postgit_cli import __version__
from postgit_cli.errors import (
    CliError,
    Conflict,
    Forbidden,
    InvalidDefinition,
    InvalidRequest,
    NotFound,
    ServerUnavailable,
    Unauthorized,
)
from postgit_cli.sse import ServerSentEvent

DEFAULT_API_URL = "http://localhost:3000"
API_URL_VARIABLE = "DC_API_URL"
TOKEN_VARIABLE = "POSTGIT_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
STREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
"""A stream silent for longer than ``read`` counts as dropped, and the watcher reconnects."""


class StreamDropped(Exception):
    """The event stream could not be opened or broke off; the caller may reconnect."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def path_segment(value: str) -> str:
    """``value`` quoted for use as one path segment (a name or id never escapes its place in the URL)."""
    return quote(value, safe="")


def connection_settings(base_url: str | None, token: str | None) -> tuple[str, str | None, dict[str, str]]:
    """The base URL (default ``DC_API_URL``), the token (default ``POSTGIT_API_TOKEN``) and the request headers."""
    url = (base_url or os.environ.get(API_URL_VARIABLE) or DEFAULT_API_URL).rstrip("/")
    token = token if token is not None else (os.environ.get(TOKEN_VARIABLE) or None)
    headers = {"Accept": "application/json", "User-Agent": f"postgit-cli/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return url, token, headers


def stream_request(
    instance_id: str, last_event_id: str | None, read_timeout: float | None
) -> tuple[str, dict[str, str], dict[str, str], httpx.Timeout]:
    """The path, headers, query and timeout of a request for an instance's event stream."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    params = {}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
        params["after"] = last_event_id
    timeout = STREAM_TIMEOUT
    if read_timeout is not None:
        timeout = httpx.Timeout(connect=10.0, read=read_timeout, write=30.0, pool=10.0)
    return f"/instances/{path_segment(instance_id)}/events", headers, params, timeout


def decode_json(response: httpx.Response, base_url: str) -> Any:
    """The JSON body of a successful answer (None when empty); CliError when it is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CliError(
            f"{base_url} answered {response.request.method} {response.request.url.path} with something "
            f"that is not JSON (is {API_URL_VARIABLE} the Postgit server?)"
        ) from None


def never_sent(exc: httpx.TransportError) -> bool:
    """Whether the request surely did not reach the server: no connection could be made (already tried again)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol)


def invalid_url(base_url: str, exc: Exception) -> CliError:
    """The error for a server URL that is not a URL (a usage error: exit code 2)."""
    return CliError(f"{API_URL_VARIABLE}={base_url!r} is not a valid URL: {exc}", exit_code=2)


def unreachable(base_url: str, exc: Exception) -> ServerUnavailable:
    """The error for a server at ``base_url`` that cannot be reached at all."""
    return ServerUnavailable(f"cannot reach the Postgit server at {base_url}: {reason(exc)}")


def error_for(response: httpx.Response, base_url: str, token: str | None) -> CliError:
    """The typed error for an HTTP error answer, its message one line from the server's ``detail`` and ``issues``."""
    error = _describe(response, base_url, token)
    error.http_status = response.status_code
    return error


def _describe(response: httpx.Response, base_url: str, token: str | None) -> CliError:
    status = response.status_code
    body = _error_body(response)
    detail = _detail_text(body.get("detail"))
    if status == 401:
        fix = f"{TOKEN_VARIABLE} does not match the server's token" if token else f"set {TOKEN_VARIABLE}"
        return Unauthorized(f"authentication refused by {base_url}: {fix}")
    if status == 403:
        return Forbidden(f"access refused by {base_url}: {detail or 'forbidden'}")
    issues = body.get("issues")
    if status == 422 and isinstance(issues, list) and issues:
        return InvalidDefinition("invalid definition: " + "; ".join(_issue_text(issue) for issue in issues), issues)
    kind = _ERRORS_BY_STATUS.get(status, CliError)
    if detail and detail != response.reason_phrase:
        return kind(detail)
    # No detail of its own (e.g. a path no route matches): say what was asked of whom.
    request = response.request
    asked = f"{request.method} {request.url.raw_path.decode()}"
    hint = f" (is {API_URL_VARIABLE} the Postgit server?)" if status == 404 else ""
    return kind(f"{base_url} answered {status} {response.reason_phrase} to {asked}{hint}")


_ERRORS_BY_STATUS: dict[int, type[CliError]] = {
    400: InvalidRequest,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
    503: ServerUnavailable,
}


def guarded(events: Iterator[ServerSentEvent]) -> Iterator[ServerSentEvent]:
    """Re-raise transport errors that happen while reading the stream as StreamDropped."""
    try:
        yield from events
    except httpx.TransportError as exc:
        raise StreamDropped(reason(exc)) from None


def reason(exc: Exception) -> str:
    """Why a request got no answer, in a few words."""
    text = str(exc).strip()
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({text})" if text else "timed out"
    return text or type(exc).__name__


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _detail_text(detail: Any) -> str:
    """The server's ``detail``: a string, or FastAPI's list of request-validation errors."""
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                message = str(item.get("msg", item))
                parts.append(f"{location}: {message}" if location else message)
            else:
                parts.append(str(item))
        return "invalid request: " + "; ".join(parts)
    return json.dumps(detail)


def _issue_text(issue: Any) -> str:
    """``node 'x', field 'y': message``, the same shape as postgit's DefinitionIssue."""
    if not isinstance(issue, dict):
        return str(issue)
    where = []
    if issue.get("node_id") is not None:
        where.append(f"node '{issue['node_id']}'")
    if issue.get("field") is not None:
        where.append(f"field '{issue['field']}'")
    message = str(issue.get("message", ""))
    return f"{', '.join(where)}: {message}" if where else message
