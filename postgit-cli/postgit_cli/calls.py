"""Each operation of the Postgit REST API as a :class:`Call`: what to send, and whether sending it twice is harmless.

:class:`~postgit_cli.Client` and :class:`~postgit_cli.AsyncClient` send the same calls, one blocking and one awaited,
so both speak the API in exactly one way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from postgit_cli.protocol import path_segment


@dataclass(frozen=True)
class Call:
    """One request: its method, path, query and JSON body.

    ``resend``: whether the request may be sent again when the server answered 503 or the connection broke after
    it was sent (the server may have acted on it): only when acting on it twice changes nothing.
    """

    method: str
    path: str
    resend: bool
    params: dict[str, Any] | None = None
    body: Any = None

    def request_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` for this call."""
        kwargs: dict[str, Any] = {}
        if self.params:
            kwargs["params"] = {key: value for key, value in self.params.items() if value is not None}
        if self.body is not None:
            kwargs["json"] = self.body
        return kwargs


def definition_json(workflow_or_definition: Any) -> dict[str, Any]:
    """The JSON of an SDK node or ``Workflow`` (anything with ``to_json()``), or a definition given as a dict."""
    if hasattr(workflow_or_definition, "to_json"):
        return workflow_or_definition.to_json()
    if isinstance(workflow_or_definition, dict):
        return workflow_or_definition
    raise TypeError(f"not a workflow or a definition: {type(workflow_or_definition).__name__}")


# -- workflows -------------------------------------------------------------------------------------------------


def deploy(workflow_or_definition: Any, name: str) -> Call:
    """Deploying an unchanged definition again returns its existing version: harmless to repeat."""
    return Call("POST", "/workflows", True, body={"name": name, "definition": definition_json(workflow_or_definition)})


def workflows() -> Call:
    """The deployed workflows."""
    return Call("GET", "/workflows", True)


def check(workflow_or_definition: Any, name: str, instances: int) -> Call:
    """A replay of a new definition over recorded instances: it changes nothing, so it is harmless to repeat."""
    body = {"definition": definition_json(workflow_or_definition), "instances": instances}
    return Call("POST", f"/workflows/{path_segment(name)}/check", True, body=body)


# -- instances -------------------------------------------------------------------------------------------------


def _given(body: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """``body`` with the ``optional`` fields that were given (not None): the server applies its defaults to the rest."""
    return {**body, **{key: value for key, value in optional.items() if value is not None}}


def start(
    name: str,
    input: Any,
    idempotency_key: str | None,
    version: int | None,
    start_at: str | None = None,
    priority: int | None = None,
) -> Call:
    """Harmless to repeat only with an idempotency key: the server then returns the instance it started."""
    body = _given(
        {"input": input}, idempotency_key=idempotency_key, version=version, start_at=start_at, priority=priority
    )
    return Call("POST", f"/workflows/{path_segment(name)}/instances", idempotency_key is not None, body=body)


def start_batch(
    name: str,
    instances: Iterable[dict[str, Any]],
    version: int | None,
    start_at: str | None = None,
    priority: int | None = None,
) -> Call:
    """Harmless to repeat only when every item has an idempotency key."""
    items = [dict(item) for item in instances]
    body = _given({"instances": items}, version=version, start_at=start_at, priority=priority)
    resend = all(item.get("idempotency_key") is not None for item in items)
    return Call("POST", f"/workflows/{path_segment(name)}/instances/batch", resend, body=body)


def get_instance(instance_id: str, logs: bool = False) -> Call:
    """One instance with its state, runs and latest steps (with what their handlers logged when ``logs``)."""
    params = {"logs": "true"} if logs else None
    return Call("GET", f"/instances/{path_segment(instance_id)}", True, params=params)


def list_page(status: str | None, workflow: str | None, limit: int, offset: int) -> Call:
    """One page of instances, newest first."""
    params = {"status": status, "workflow": workflow, "limit": limit, "offset": offset}
    return Call("GET", "/instances", True, params=params)


def cancel(instance_id: str) -> Call:
    """Not repeated: a second cancel of a cancelled instance is a Conflict that would hide the first's success."""
    return Call("POST", f"/instances/{path_segment(instance_id)}/cancel", False)


def pause(instance_id: str, reason: str | None) -> Call:
    """Not repeated: a second pause is a Conflict (already paused) that would hide the first's success."""
    body = {"reason": reason} if reason is not None else None
    return Call("POST", f"/instances/{path_segment(instance_id)}/pause", False, body=body)


def resume(instance_id: str) -> Call:
    """Not repeated: a second resume is a Conflict (not paused) that would hide the first's success."""
    return Call("POST", f"/instances/{path_segment(instance_id)}/resume", False)


def retry(instance_id: str, from_node: str | None, latest: bool) -> Call:
    """Not repeated: a second retry of a retried instance is a Conflict (it is pending) or re-runs it again."""
    body = _given({"latest": latest}, **{"from": from_node})
    return Call("POST", f"/instances/{path_segment(instance_id)}/retry", False, body=body)


def bulk(action: str, workflow: str, status: str, since: str | None, *, dry_run: bool, latest: bool = False) -> Call:
    """A dry run changes nothing, so it is harmless to repeat; an action is not repeated."""
    body = _given({"action": action, "workflow": workflow, "status": status, "dry_run": dry_run}, since=since)
    if latest:
        body["latest"] = True
    return Call("POST", "/bulk/instances", dry_run, body=body)


def delete(instance_id: str) -> Call:
    """Not repeated: a second delete would answer 404 for an instance the first deleted."""
    return Call("DELETE", f"/instances/{path_segment(instance_id)}", False)


# -- events ----------------------------------------------------------------------------------------------------


def _event_body(name: str, data: Any, event_id: str | None, key: str | None = None) -> dict[str, Any]:
    body = {"name": name, "data": data, "event_id": event_id, "key": key}
    return {field: value for field, value in body.items() if value is not None or field == "data"}


def send_event(instance_id: str, name: str, data: Any, event_id: str | None) -> Call:
    """Harmless to repeat with an event id: the server applies an event id once."""
    path = f"/instances/{path_segment(instance_id)}/events"
    return Call("POST", path, event_id is not None, body=_event_body(name, data, event_id))


def send_keyed_event(name: str, key: str, data: Any, event_id: str | None) -> Call:
    """Harmless to repeat with an event id, as :func:`send_event`."""
    return Call("POST", "/events", event_id is not None, body=_event_body(name, data, event_id, key))


# -- plugins, workers, outbox ----------------------------------------------------------------------------------


def plugins() -> Call:
    """The node types, their packages and the live workers that have them."""
    return Call("GET", "/plugins", True)


def workers() -> Call:
    """The live workers."""
    return Call("GET", "/workers", True)


def outbox(status: str | None, limit: int | None) -> Call:
    """The emails of the outbox: parked (the default), sent, or all."""
    return Call("GET", "/outbox", True, params={"status": status, "limit": limit})


def send_outbox_message(message_id: int) -> Call:
    """Harmless to repeat: a message is sent once, and asking again answers that it was sent."""
    return Call("POST", f"/outbox/{int(message_id)}/send", True)


def send_outbox(after_id: int, limit: int | None) -> Call:
    """Harmless to repeat, as :func:`send_outbox_message`."""
    return Call("POST", "/outbox/send", True, body=_given({"after_id": after_id}, limit=limit))


# -- schedules -------------------------------------------------------------------------------------------------


def create_schedule(schedule: dict[str, Any]) -> Call:
    """Not repeated: a second create of the same name is a Conflict that would hide the first's success."""
    return Call("POST", "/schedules", False, body=schedule)


def schedules() -> Call:
    """The schedules, each with its next fire times."""
    return Call("GET", "/schedules", True)


def schedule(name: str) -> Call:
    """One schedule, its next fire times and its latest fires."""
    return Call("GET", f"/schedules/{path_segment(name)}", True)


def schedule_action(name: str, action: str) -> Call:
    """``pause`` and ``resume`` change nothing when repeated; ``trigger`` starts another instance each time."""
    return Call("POST", f"/schedules/{path_segment(name)}/{action}", action != "trigger")


def backfill_schedule(name: str, start: str, end: str) -> Call:
    """Each fire time starts under its own idempotency key: harmless to repeat."""
    return Call("POST", f"/schedules/{path_segment(name)}/backfill", True, body={"from": start, "to": end})


def delete_schedule(name: str) -> Call:
    """Not repeated: a second delete would answer 404 for a schedule the first deleted."""
    return Call("DELETE", f"/schedules/{path_segment(name)}", False)
