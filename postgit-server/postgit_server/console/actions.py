"""The console's actions on an instance, each one call of the server's own API.

An action is offered when the app has its API route (so retry, pause and resume appear once their routes exist)
and the instance's status allows it, and shown when the session's role allows it. Running one calls that route
in-process on behalf of the session's token: the API's role checks, errors and audit log apply to the console exactly
as to the CLI. To add an action, append an
:class:`InstanceAction` to :data:`INSTANCE_ACTIONS`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.routing import Match

from postgit.errors import InvalidInput
from postgit_server.auth import CONSOLE_ACTOR, CONSOLE_ROLE
from postgit_server.console.access import Session
from postgit_server.roles import Role

ACTIVE = frozenset({"pending", "running", "waiting"})
FINISHED_BADLY = frozenset({"failed", "cancelled"})


@dataclass(frozen=True)
class ActionField:
    """An input an action asks for: its form name, label, whether it is required, and a textarea or a line."""

    name: str
    label: str
    required: bool = False
    multiline: bool = False
    hint: str = ""


def _no_body(form: Mapping[str, str]) -> Any:
    return None


@dataclass(frozen=True)
class InstanceAction:
    """An action on one instance.

    Attributes:
        name: its path segment in the console (``/ui/instances/{id}/do/{name}``).
        label: the button's text.
        question: the confirmation's question, about ``{id}``.
        route: the API route it calls (``POST``), with ``{instance_id}``.
        statuses: the instance statuses it is offered in.
        when_paused: offered only to a paused instance (True), only to one not paused (False), or to either (None).
        role: the least role that may run it.
        fields: what the form asks for.
        body: the JSON body the API route gets, from the submitted form (InvalidInput naming a bad field).
        done: what the console says once it is done.
    """

    name: str
    label: str
    question: str
    route: str
    statuses: frozenset[str]
    role: Role = Role.operator
    fields: tuple[ActionField, ...] = ()
    body: Callable[[Mapping[str, str]], Any] = field(default=_no_body)
    when_paused: bool | None = None
    done: str = "done"
    danger: bool = False

    def offered(self, app: FastAPI, status: str, paused: bool = False) -> bool:
        """Whether the app has the action's route and the instance's status (and pause) allows it."""
        allowed = status in self.statuses and (self.when_paused is None or self.when_paused == paused)
        return allowed and has_route(app, "POST", self.route)


def _event_body(form: Mapping[str, str]) -> dict[str, Any]:
    name = (form.get("name") or "").strip()
    if not name:
        raise InvalidInput("event field 'name': give the event's name")
    body: dict[str, Any] = {"name": name}
    raw = (form.get("data") or "").strip()
    if raw:
        try:
            body["data"] = json.loads(raw)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise InvalidInput(f"event field 'data': not JSON ({exc.msg} at {where})") from None
    event_id = (form.get("event_id") or "").strip()
    if event_id:
        body["event_id"] = event_id
    return body


INSTANCE_ACTIONS: list[InstanceAction] = [
    InstanceAction(
        name="cancel",
        label="Cancel",
        question="Cancel instance {id}? A step running now has its result discarded.",
        route="/instances/{instance_id}/cancel",
        statuses=ACTIVE,
        done="cancelled",
        danger=True,
    ),
    InstanceAction(
        name="event",
        label="Send event",
        question="Send this event to instance {id}?",
        route="/instances/{instance_id}/events",
        statuses=ACTIVE,
        fields=(
            ActionField("name", "Event name", required=True),
            ActionField("data", "Data (JSON)", multiline=True, hint="optional"),
            ActionField("event_id", "Event id", hint="optional: the same id is delivered once"),
        ),
        body=_event_body,
        done="event sent",
    ),
    InstanceAction(
        name="retry",
        label="Retry",
        question="Retry instance {id} from its failed node?",
        route="/instances/{instance_id}/retry",
        statuses=FINISHED_BADLY,
        done="retried",
    ),
    InstanceAction(
        name="pause",
        label="Pause",
        question="Pause instance {id}? It takes no new step until resumed.",
        route="/instances/{instance_id}/pause",
        statuses=ACTIVE,
        when_paused=False,
        done="paused",
    ),
    InstanceAction(
        name="resume",
        label="Resume",
        question="Resume instance {id}?",
        route="/instances/{instance_id}/resume",
        statuses=ACTIVE,
        when_paused=True,
        done="resumed",
    ),
]


def find_action(name: str) -> InstanceAction | None:
    """The action called ``name``, or None."""
    return next((action for action in INSTANCE_ACTIONS if action.name == name), None)


def has_route(app: FastAPI, method: str, path: str) -> bool:
    """Whether some route of the app fully matches ``method`` on ``path`` (``{instance_id}`` filled in)."""
    concrete = path.replace("{instance_id}", str(uuid.UUID(int=0)))
    scope = {"type": "http", "method": method, "path": concrete, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in app.routes)


@dataclass(frozen=True)
class ApiAnswer:
    """What the API answered a console call: its status, its JSON body, and its one-line error when it failed."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def error(self) -> str:
        detail = self.body.get("detail") if isinstance(self.body, dict) else None
        return detail if isinstance(detail, str) else f"the API answered {self.status}"


async def call_api(app: FastAPI, session: Session, method: str, path: str, body: Any = None) -> ApiAnswer:
    """Call the app's own API in-process on behalf of ``session``'s token (its name and role).

    The request carries the process's console key, which only this process knows, in place of a token.
    """
    headers = {
        "Authorization": f"Bearer {app.state.console_key}",
        CONSOLE_ACTOR: session.name,
        CONSOLE_ROLE: session.role.value,
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.internal") as client:
        response = await client.request(method, path, json=body, headers=headers)
    try:
        data = response.json()
    except ValueError:
        data = None
    return ApiAnswer(response.status_code, data)
