"""ApiClient: the CLI's only way to the Postgit server, with every HTTP failure turned into a one-line CliError.

The server is ``DC_API_URL`` (default ``http://localhost:3000``); when ``POSTGIT_API_TOKEN`` is set, every request
carries ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from postgit_cli import __version__
from postgit_cli.errors import CliError
from postgit_cli.sse import ServerSentEvent, iter_sse

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


class ApiClient:
    """A synchronous client of the Postgit REST API.

    Methods return the decoded JSON body and raise :class:`CliError` with one clear line for anything else:
    the server cannot be reached, the token is refused, the resource does not exist, the input is invalid.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None):
        """Create a client for ``base_url`` (default: ``DC_API_URL``) sending ``token`` (``POSTGIT_API_TOKEN``)."""
        self.base_url = (base_url or os.environ.get(API_URL_VARIABLE) or DEFAULT_API_URL).rstrip("/")
        self.token = token if token is not None else (os.environ.get(TOKEN_VARIABLE) or None)
        headers = {"Accept": "application/json", "User-Agent": f"postgit-cli/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=REQUEST_TIMEOUT)
        except (httpx.InvalidURL, ValueError) as exc:
            raise CliError(f"{API_URL_VARIABLE}={self.base_url!r} is not a valid URL: {exc}", exit_code=2) from None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- plain requests ----------------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """``GET path`` and return the JSON body."""
        clean = {key: value for key, value in (params or {}).items() if value is not None}
        return self._request("GET", path, params=clean)

    def post(self, path: str, body: Any = None) -> Any:
        """``POST path`` with a JSON body and return the JSON body of the answer."""
        return self._request("POST", path, json=body)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        except httpx.InvalidURL as exc:
            raise CliError(f"{API_URL_VARIABLE}={self.base_url!r} is not a valid URL: {exc}", exit_code=2) from None
        if response.is_error:
            raise self.error_for(response)
        return self._json(response)

    def _json(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CliError(
                f"{self.base_url} answered {response.request.method} {response.request.url.path} with something "
                f"that is not JSON (is {API_URL_VARIABLE} the Postgit server?)"
            ) from None

    # -- server-sent events ------------------------------------------------------------------------------------

    @contextmanager
    def event_stream(self, instance_id: str, last_event_id: str | None = None) -> Iterator[Iterator[ServerSentEvent]]:
        """Open ``GET /instances/{id}/events`` and yield an iterator over its events.

        Resumes after ``last_event_id`` (sent as ``Last-Event-ID`` and ``?after=``) when given.

        Raises:
            StreamDropped: the connection could not be made or broke off (worth reconnecting).
            CliError: the server refused the request (not found, authentication); reconnecting will not help.
        """
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        params = {}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
            params["after"] = last_event_id
        path = f"/instances/{path_segment(instance_id)}/events"
        try:
            with self._http.stream("GET", path, headers=headers, params=params, timeout=STREAM_TIMEOUT) as response:
                if response.is_error:
                    response.read()
                    raise self.error_for(response)
                yield _guarded(iter_sse(response.iter_lines()))
        except httpx.TransportError as exc:
            raise StreamDropped(_reason(exc)) from None

    # -- errors ------------------------------------------------------------------------------------------------

    def unreachable(self, exc: Exception) -> CliError:
        """The error for a server that cannot be reached at all."""
        return CliError(f"cannot reach the Postgit server at {self.base_url}: {_reason(exc)}")

    def error_for(self, response: httpx.Response) -> CliError:
        """One line describing an HTTP error answer, from the server's ``detail`` (and ``issues``) when present."""
        error = self._describe(response)
        error.http_status = response.status_code
        return error

    def _describe(self, response: httpx.Response) -> CliError:
        status = response.status_code
        body = _error_body(response)
        detail = _detail_text(body.get("detail"))
        if status == 401:
            fix = f"{TOKEN_VARIABLE} does not match the server's token" if self.token else f"set {TOKEN_VARIABLE}"
            return CliError(f"authentication refused by {self.base_url}: {fix}")
        if status == 403:
            return CliError(f"access refused by {self.base_url}: {detail or 'forbidden'}")
        issues = body.get("issues")
        if status == 422 and isinstance(issues, list) and issues:
            return CliError("invalid definition: " + "; ".join(_issue_text(issue) for issue in issues))
        request = response.request
        if detail and detail != response.reason_phrase:
            return CliError(detail)
        # No detail of its own (e.g. a path no route matches): say what was asked of whom.
        asked = f"{request.method} {request.url.raw_path.decode()}"
        hint = f" (is {API_URL_VARIABLE} the Postgit server?)" if status == 404 else ""
        return CliError(f"{self.base_url} answered {status} {response.reason_phrase} to {asked}{hint}")


def _guarded(events: Iterator[ServerSentEvent]) -> Iterator[ServerSentEvent]:
    """Re-raise transport errors that happen while reading the stream as StreamDropped."""
    try:
        yield from events
    except httpx.TransportError as exc:
        raise StreamDropped(_reason(exc)) from None


def _reason(exc: Exception) -> str:
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
