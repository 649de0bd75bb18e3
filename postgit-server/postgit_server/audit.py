"""The audit log: every state-changing API request written with who sent it and the status it was answered.

A route is state-changing when it needs more than the viewer role (:func:`postgit_server.auth.needs`). The entry is
written when the response starts, before the client sees it, with the response's status: a refused request (403,
404, 409, 422) is recorded as well as a done one. The entries of requests answered at the same time share one
statement. The console's actions call the API in-process, so they are recorded the same way, as sent by the console
session's token (``via`` = ``console``); an action the console refuses itself for the session's role is recorded
as the API's refusal would be (:func:`record_console_refusal`). A failure to write the entry is logged and the
response goes out unchanged: the audit never turns an answer into a 500.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postgit.db.store import Store
from postgit.gathering import GatheredWriter
from postgit_server.roles import ANONYMOUS, Caller, Role

log = logging.getLogger("postgit.server.audit")

DETAIL_VALUE_CHARS = 200
MAX_ENTRIES_PER_STATEMENT = 500
STATEMENTS_IN_FLIGHT = 2
"""Audit statements running at once; entries of requests answered meanwhile wait for the next one."""
_TARGETS = (("instance_id", "instance"), ("message_id", "outbox message"))


def note(request: Request, *, target: str | None = None, **detail: Any) -> None:
    """Add what a route knows of its action to its audit entry: a target, and small values (never secrets)."""
    if target is not None:
        request.state.audit_target = target
    noted = getattr(request.state, "audit_detail", None) or {}
    noted.update(detail)
    request.state.audit_detail = noted


def install_audit(app: FastAPI, routes: Sequence[APIRoute]) -> None:
    """Record the app's state-changing requests in the audit log; ``routes``: the API's, for the console's refusals."""
    app.state.audited_routes = tuple(routes)
    app.add_middleware(AuditMiddleware)  # type: ignore[arg-type]


class AuditMiddleware:
    """Writes the audit entry of each state-changing request as its response starts (or when it fails)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        started = False

        async def send_after_recording(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await _record(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_after_recording)
        except Exception:
            if not started:
                await _record(scope, 500)
            raise


async def _record(scope: Scope, status: int) -> None:
    state: Mapping[str, Any] = scope.get("state") or {}
    needed = state.get("role_needed")
    route = scope.get("route")
    if needed is None or needed is Role.viewer or not isinstance(route, APIRoute):
        return
    app = scope["app"]
    who: Caller = state.get("caller") or ANONYMOUS
    entry = {
        "actor": who.name,
        "role": who.role.value,
        "via": "console" if _from_console(scope, app.state.console_key) else "api",
        "action": route.name,
        "target": state.get("audit_target") or _target(route, scope.get("path_params") or {}),
        "detail": {key: _small(value) for key, value in (state.get("audit_detail") or {}).items()},
        "status": status,
    }
    await _write(app, entry)


async def record_console_refusal(app: FastAPI, *, actor: str, role: Role, method: str, path: str) -> None:
    """Record a request the console refused itself (403: the session's role may not), as the API would have.

    ``method`` and ``path`` are the API call the console would have made: the entry names its route and target.
    """
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    for route in app.state.audited_routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            params = child.get("path_params") or {}
            entry = {"actor": actor, "role": role.value, "via": "console", "action": route.name,
                     "target": _target(route, params), "detail": {}, "status": 403}  # fmt: skip
            await _write(app, entry)
            return


async def _write(app: FastAPI, entry: dict[str, Any]) -> None:
    service = getattr(app.state, "service", None)
    if service is None:
        return
    try:
        await _writer(app, service.store).submit([entry])
    except Exception as exc:  # the action's answer stands; the missing entry is logged instead
        log.error(
            "audit entry not written (%s by %s, status %d): %s", entry["action"], entry["actor"], entry["status"], exc
        )


class AuditWriter(GatheredWriter[dict[str, Any], None]):
    """Writes the entries of requests answered at the same time with one statement (see :class:`GatheredWriter`).

    Each request still waits until its own entry is written before its response starts.
    """

    def __init__(self, store: Store):
        async def write(entries: list[dict[str, Any]]) -> list[None]:
            await store.record_audit(entries)
            return [None] * len(entries)

        super().__init__(write, max_items=MAX_ENTRIES_PER_STATEMENT, max_in_flight=STATEMENTS_IN_FLIGHT)
        self.store = store


def _writer(app: FastAPI, store: Store) -> AuditWriter:
    """The app's audit writer for ``store``: one per app, so that its requests share statements."""
    writer: AuditWriter | None = getattr(app.state, "audit_writer", None)
    if writer is None or writer.store is not store:
        writer = app.state.audit_writer = AuditWriter(store)
    return writer


def _target(route: APIRoute, path_params: Mapping[str, Any]) -> str | None:
    for param, kind in _TARGETS:
        if param in path_params:
            return f"{kind} {path_params[param]}"
    if "name" in path_params:
        kind = "schedule" if route.path_format.startswith("/schedules") else "workflow"
        return f"{kind} {path_params['name']}"
    return None


def _from_console(scope: Scope, key: str) -> bool:
    """Whether the request is the console's own in-process call (it carries the process's console key)."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return hmac.compare_digest(value, f"Bearer {key}".encode())
    return False


def _small(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DETAIL_VALUE_CHARS:
        return value[:DETAIL_VALUE_CHARS] + "…"
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)[:DETAIL_VALUE_CHARS]
