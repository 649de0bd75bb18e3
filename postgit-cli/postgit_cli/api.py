"""A Python client of the Postgit server: :class:`Client` and :class:`AsyncClient`; ``pst`` is built on the first.

Both speak the REST API over httpx (no engine or server code is imported) and raise the typed errors of
:mod:`postgit_cli.errors` (``NotFound``, ``InvalidDefinition``, ``Unauthorized``, ``ServerUnavailable``, ...).
A connection that cannot be made is tried again for every request; a request that may have reached the server is
sent again only when sending it twice is harmless (reads, deploys, starts with an idempotency key, events with an
event id).

    from postgit_cli import Client

    with Client("http://localhost:3000") as client:
        client.deploy(definition, "greet")
        handle = client.start("greet", input={"name": "ada"}, idempotency_key="greet-ada")
        state = handle.result(timeout=60)  # the final state; InstanceFailed / InstanceCancelled otherwise
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any

import httpx

from postgit_cli import calls
from postgit_cli.calls import Call
from postgit_cli.errors import CliError, ServerUnavailable
from postgit_cli.handles import AsyncInstanceHandle, InstanceHandle
from postgit_cli.protocol import (
    REQUEST_TIMEOUT,
    StreamDropped,
    connection_settings,
    decode_json,
    error_for,
    guarded,
    invalid_url,
    never_sent,
    reason,
    stream_request,
    unreachable,
)
from postgit_cli.sse import ServerSentEvent, iter_sse

CONNECT_RETRIES = 3
"""How often a connection that could not be made is tried again (the request never left: safe for every call)."""
RESEND_ATTEMPTS = 3
"""How often a request harmless to repeat is sent when the server is unavailable (a 503, or the connection broke)."""
RESEND_BACKOFF_SECONDS = 0.2
PAGE_SIZE = 100

Rows = list[dict[str, Any]]
"""A listing: one JSON object per row (named so as not to be read as :meth:`Client.list`)."""


def _failure(call: Call, base_url: str, exc: httpx.TransportError) -> tuple[CliError, bool]:
    """The error for a request that got no answer, and whether sending it again may help."""
    return unreachable(base_url, exc), call.resend and not never_sent(exc)


def _answer_error(call: Call, response: httpx.Response, base_url: str, token: str | None) -> tuple[CliError, bool]:
    """The error for an error answer, and whether sending the request again may help (a 503)."""
    error = error_for(response, base_url, token)
    return error, call.resend and isinstance(error, ServerUnavailable)


class Client:
    """A synchronous client of the Postgit server.

    It talks to ``base_url`` (default ``DC_API_URL``), sending ``token`` (default ``POSTGIT_API_TOKEN``). Use it
    as a context manager, or call :meth:`close`. Every method raises a typed :class:`~postgit_cli.CliError` with
    one clear line when the server refuses the request or cannot be reached.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None):
        self.base_url, self.token, headers = connection_settings(base_url, token)
        try:
            self._http = httpx.Client(
                base_url=self.base_url,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
                transport=httpx.HTTPTransport(retries=CONNECT_RETRIES),
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise invalid_url(self.base_url, exc) from None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, call: Call) -> Any:
        for attempt in range(1, RESEND_ATTEMPTS + 1):
            try:
                response = self._http.request(call.method, call.path, **call.request_kwargs())
            except httpx.TransportError as exc:
                error, again = _failure(call, self.base_url, exc)
            except httpx.InvalidURL as exc:
                raise invalid_url(self.base_url, exc) from None
            else:
                if not response.is_error:
                    return decode_json(response, self.base_url)
                error, again = _answer_error(call, response, self.base_url, self.token)
            if not again or attempt == RESEND_ATTEMPTS:
                raise error
            time.sleep(RESEND_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    # -- workflows ---------------------------------------------------------------------------------------------

    def deploy(self, workflow_or_definition: Any, name: str) -> dict[str, Any]:
        """Deploy a definition (an SDK node or ``Workflow``, or its JSON) as the next version of ``name``.

        Returns ``{"name", "version", "created", ...}``; an unchanged definition returns its existing version.
        Raises InvalidDefinition with every issue (node id, field, message) when it does not pass the checks.
        """
        return self._send(calls.deploy(workflow_or_definition, name))

    def workflows(self) -> Rows:
        """The deployed workflows, each with its latest version and its versions."""
        return self._send(calls.workflows())

    def check(self, workflow_or_definition: Any, name: str, *, instances: int = 20) -> dict[str, Any]:
        """Replay a new definition of ``name`` over its latest ``instances`` finished instances (nothing deployed).

        Returns ``{"workflow", "version", "checked", "diverged", "instances": [...]}``, each instance with the
        first node where the new definition would act differently, if any.
        """
        return self._send(calls.check(workflow_or_definition, name, instances))

    # -- instances ---------------------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        version: int | None = None,
        start_at: str | None = None,
        priority: int | None = None,
    ) -> InstanceHandle:
        """Start an instance of ``name`` (its latest version unless ``version``); its handle.

        With ``idempotency_key``, starting again returns the same instance (``handle.created`` is False).
        ``start_at`` (ISO 8601 with its offset): a delayed start, ``pending`` until then. ``priority``: 1 (claimed
        first) to 5 (last), 3 by default.
        """
        started = self._send(calls.start(name, input, idempotency_key, version, start_at, priority))
        return InstanceHandle(self, str(started["id"]), started.get("created"), started)

    def start_batch(
        self,
        name: str,
        instances: Iterable[dict[str, Any]],
        *,
        version: int | None = None,
        start_at: str | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        """Start up to 1,000 instances of ``name`` with one request, each item ``{"input", "idempotency_key"}``.

        An item may carry its own ``"priority"``; ``priority`` is every other item's.
        Returns ``{"workflow", "started", "existing", "failed", "results"}``, one result per item in order
        (``{"index", "id", "status", "created", "error"}``): an item that cannot start has an ``error`` and the
        others start. Sent again after a broken connection only when every item has an idempotency key.
        ``start_at``: a delayed start for every item.
        """
        return self._send(calls.start_batch(name, instances, version, start_at, priority))

    def handle(self, instance_id: str) -> InstanceHandle:
        """A handle of an existing instance (nothing is asked of the server)."""
        return InstanceHandle(self, instance_id)

    def get(self, instance_id: str, *, logs: bool = False) -> dict[str, Any]:
        """The instance with its state, branches and latest steps (NotFound when there is none).

        With ``logs`` each step attempt has ``logs``: what its handler logged through ``ctx.logger``.
        """
        return self._send(calls.get_instance(instance_id, logs))

    def list(self, *, status: str | None = None, workflow: str | None = None) -> Iterator[dict[str, Any]]:
        """Every instance (of ``workflow``, in ``status``), newest first, fetched a page at a time."""
        offset: int | None = 0
        while offset is not None:
            page = self.list_page(status=status, workflow=workflow, limit=PAGE_SIZE, offset=offset)
            yield from page["items"]
            offset = page["next_offset"]

    def list_page(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """One page of instances, newest first: ``{"items", "limit", "offset", "next_offset"}`` (null at the end)."""
        return self._send(calls.list_page(status, workflow, limit, offset))

    def cancel(self, instance_id: str) -> dict[str, Any]:
        """Cancel an unfinished instance (Conflict when it already finished)."""
        return self._send(calls.cancel(instance_id))

    def pause(self, instance_id: str, reason: str | None = None) -> dict[str, Any]:
        """Pause an unfinished instance: no worker takes it until :meth:`resume` (a running step finishes)."""
        return self._send(calls.pause(instance_id, reason))

    def resume(self, instance_id: str) -> dict[str, Any]:
        """Resume a paused instance (Conflict when it is not paused)."""
        return self._send(calls.resume(instance_id))

    def retry(self, instance_id: str, *, from_node: str | None = None, latest: bool = False) -> dict[str, Any]:
        """Run a failed or cancelled instance again from where it failed, or from ``from_node``.

        Completed steps before it are kept; ``latest``: on the workflow's latest version. Returns ``{"id",
        "status", "version", "retry", "steps_retired"}``.
        """
        return self._send(calls.retry(instance_id, from_node, latest))

    def bulk(
        self,
        action: str,
        *,
        workflow: str,
        status: str,
        since: str | None = None,
        dry_run: bool = False,
        latest: bool = False,
    ) -> dict[str, Any]:
        """``retry``, ``cancel``, ``pause`` or ``resume`` every instance of ``workflow`` in ``status``.

        ``since``: only those created from then on; ``dry_run``: only count them. Returns ``{"action", "dry_run",
        "matched", "done", "skipped", "errors"}``.
        """
        return self._send(calls.bulk(action, workflow, status, since, dry_run=dry_run, latest=latest))

    def delete(self, instance_id: str) -> None:
        """Delete a finished instance with its steps and events (Conflict while it has not finished)."""
        self._send(calls.delete(instance_id))

    # -- events ------------------------------------------------------------------------------------------------

    def send_event(
        self, instance_id: str, name: str, data: Any = None, *, event_id: str | None = None
    ) -> dict[str, Any]:
        """Send an event to one instance; with ``event_id`` it is applied once however often it is sent."""
        return self._send(calls.send_event(instance_id, name, data, event_id))

    def send_keyed_event(self, name: str, key: str, data: Any = None, *, event_id: str | None = None) -> dict[str, Any]:
        """Send an event to every instance waiting on ``name`` and ``key`` (kept for those that wait later)."""
        return self._send(calls.send_keyed_event(name, key, data, event_id))

    @contextmanager
    def event_stream(
        self, instance_id: str, last_event_id: str | None = None, *, read_timeout: float | None = None
    ) -> Iterator[Iterator[ServerSentEvent]]:
        """Open the instance's live activity log (``GET /instances/{id}/events``): an iterator over its events.

        Each event's ``data`` is a JSON object ``{"id", "kind", "node_id", "data", "at"}``. Resumes after
        ``last_event_id`` when given. A stream silent for ``read_timeout`` seconds (default 60) counts as dropped.

        Raises:
            StreamDropped: the connection could not be made or broke off (worth reconnecting).
            CliError: the server refused the request (not found, authentication); reconnecting will not help.
        """
        path, headers, params, timeout = stream_request(instance_id, last_event_id, read_timeout)
        try:
            with self._http.stream("GET", path, headers=headers, params=params, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise error_for(response, self.base_url, self.token)
                yield guarded(iter_sse(response.iter_lines()))
        except httpx.TransportError as exc:
            raise StreamDropped(reason(exc)) from None

    # -- plugins, workers, outbox ------------------------------------------------------------------------------

    def plugins(self) -> Rows:
        """The node types: the package and version providing each, and which live workers have it."""
        return self._send(calls.plugins())

    def workers(self) -> Rows:
        """The live workers, each with its node types."""
        return self._send(calls.workers())

    def outbox(self, *, status: str | None = None, limit: int | None = None) -> Rows:
        """The emails of the outbox, oldest first, each with its delivery (``sent_at``, ``sent_via``).

        By default those parked because no SMTP server was configured; ``status="sent"``: those sent since,
        ``"all"``: both.
        """
        return self._send(calls.outbox(status, limit))

    def send_outbox_message(self, message_id: int) -> dict[str, Any]:
        """Send one parked email through the server's ``POSTGIT_SMTP_URL``, once.

        Returns ``{"id", "status", "message_id", "sent_at", "sent_via", "error"}``: ``status`` is ``sent``, or
        ``already_sent`` when it was sent before (not sent again). Raises Conflict when the server has no SMTP
        server configured, NotFound for no such message, CliError (HTTP 502) when the SMTP server refused it.
        """
        return self._send(calls.send_outbox_message(message_id))

    def send_outbox(self, *, after_id: int = 0, limit: int | None = None) -> dict[str, Any]:
        """Send the parked emails after ``after_id``, oldest first, up to ``limit`` (100; at most 500), each once.

        Returns ``{"sent", "already_sent", "failed", "busy", "results", "next_after_id"}``: one result per message
        (as :meth:`send_outbox_message` returns it, a failure with its ``error``), and, when more parked messages
        follow, the ``after_id`` to go on with.
        """
        return self._send(calls.send_outbox(after_id, limit))

    # -- schedules ---------------------------------------------------------------------------------------------

    def create_schedule(self, schedule: dict[str, Any]) -> dict[str, Any]:
        """Create a schedule from its fields (``name``, ``workflow``, ``cron``, ``timezone``, ``input``, ...)."""
        return self._send(calls.create_schedule(schedule))

    def schedules(self) -> Rows:
        """The schedules, each with its next fire times."""
        return self._send(calls.schedules())

    def schedule(self, name: str) -> dict[str, Any]:
        """One schedule, its next fire times and its latest fires."""
        return self._send(calls.schedule(name))

    def pause_schedule(self, name: str) -> dict[str, Any]:
        """Stop firing the schedule (trigger and backfill still work)."""
        return self._send(calls.schedule_action(name, "pause"))

    def resume_schedule(self, name: str) -> dict[str, Any]:
        """Fire again from the next time after now."""
        return self._send(calls.schedule_action(name, "resume"))

    def trigger_schedule(self, name: str) -> dict[str, Any]:
        """Start an instance of the schedule's workflow now, whatever its overlap policy."""
        return self._send(calls.schedule_action(name, "trigger"))

    def backfill_schedule(self, name: str, start: str, end: str) -> dict[str, Any]:
        """One instance per fire time from ``start`` to ``end`` (ISO 8601 times), each started once."""
        return self._send(calls.backfill_schedule(name, start, end))

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule and its fire records (the instances it started stay)."""
        self._send(calls.delete_schedule(name))


class AsyncClient:
    """:class:`Client` for asyncio.

    The same methods, awaited: ``list`` is an async iterator, ``event_stream`` an async context manager.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None):
        self.base_url, self.token, headers = connection_settings(base_url, token)
        try:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
                transport=httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES),
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise invalid_url(self.base_url, exc) from None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        for attempt in range(1, RESEND_ATTEMPTS + 1):
            try:
                response = await self._http.request(call.method, call.path, **call.request_kwargs())
            except httpx.TransportError as exc:
                error, again = _failure(call, self.base_url, exc)
            except httpx.InvalidURL as exc:
                raise invalid_url(self.base_url, exc) from None
            else:
                if not response.is_error:
                    return decode_json(response, self.base_url)
                error, again = _answer_error(call, response, self.base_url, self.token)
            if not again or attempt == RESEND_ATTEMPTS:
                raise error
            await asyncio.sleep(RESEND_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    async def deploy(self, workflow_or_definition: Any, name: str) -> dict[str, Any]:
        return await self._send(calls.deploy(workflow_or_definition, name))

    async def workflows(self) -> Rows:
        return await self._send(calls.workflows())

    async def check(self, workflow_or_definition: Any, name: str, *, instances: int = 20) -> dict[str, Any]:
        return await self._send(calls.check(workflow_or_definition, name, instances))

    async def start(
        self,
        name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        version: int | None = None,
        start_at: str | None = None,
        priority: int | None = None,
    ) -> AsyncInstanceHandle:
        started = await self._send(calls.start(name, input, idempotency_key, version, start_at, priority))
        return AsyncInstanceHandle(self, str(started["id"]), started.get("created"), started)

    async def start_batch(
        self,
        name: str,
        instances: Iterable[dict[str, Any]],
        *,
        version: int | None = None,
        start_at: str | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        return await self._send(calls.start_batch(name, instances, version, start_at, priority))

    def handle(self, instance_id: str) -> AsyncInstanceHandle:
        return AsyncInstanceHandle(self, instance_id)

    async def get(self, instance_id: str, *, logs: bool = False) -> dict[str, Any]:
        return await self._send(calls.get_instance(instance_id, logs))

    async def list(self, *, status: str | None = None, workflow: str | None = None) -> AsyncIterator[dict[str, Any]]:
        offset: int | None = 0
        while offset is not None:
            page = await self.list_page(status=status, workflow=workflow, limit=PAGE_SIZE, offset=offset)
            for item in page["items"]:
                yield item
            offset = page["next_offset"]

    async def list_page(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        return await self._send(calls.list_page(status, workflow, limit, offset))

    async def cancel(self, instance_id: str) -> dict[str, Any]:
        return await self._send(calls.cancel(instance_id))

    async def pause(self, instance_id: str, reason: str | None = None) -> dict[str, Any]:
        return await self._send(calls.pause(instance_id, reason))

    async def resume(self, instance_id: str) -> dict[str, Any]:
        return await self._send(calls.resume(instance_id))

    async def retry(self, instance_id: str, *, from_node: str | None = None, latest: bool = False) -> dict[str, Any]:
        return await self._send(calls.retry(instance_id, from_node, latest))

    async def bulk(
        self,
        action: str,
        *,
        workflow: str,
        status: str,
        since: str | None = None,
        dry_run: bool = False,
        latest: bool = False,
    ) -> dict[str, Any]:
        return await self._send(calls.bulk(action, workflow, status, since, dry_run=dry_run, latest=latest))

    async def delete(self, instance_id: str) -> None:
        await self._send(calls.delete(instance_id))

    async def send_event(
        self, instance_id: str, name: str, data: Any = None, *, event_id: str | None = None
    ) -> dict[str, Any]:
        return await self._send(calls.send_event(instance_id, name, data, event_id))

    async def send_keyed_event(
        self, name: str, key: str, data: Any = None, *, event_id: str | None = None
    ) -> dict[str, Any]:
        return await self._send(calls.send_keyed_event(name, key, data, event_id))

    @asynccontextmanager
    async def event_stream(
        self, instance_id: str, last_event_id: str | None = None, *, read_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
        """See :meth:`Client.event_stream`."""
        path, headers, params, timeout = stream_request(instance_id, last_event_id, read_timeout)
        try:
            async with self._http.stream("GET", path, headers=headers, params=params, timeout=timeout) as response:
                if response.is_error:
                    await response.aread()
                    raise error_for(response, self.base_url, self.token)
                yield _events(response)
        except httpx.TransportError as exc:
            raise StreamDropped(reason(exc)) from None

    async def plugins(self) -> Rows:
        return await self._send(calls.plugins())

    async def workers(self) -> Rows:
        return await self._send(calls.workers())

    async def outbox(self, *, status: str | None = None, limit: int | None = None) -> Rows:
        return await self._send(calls.outbox(status, limit))

    async def send_outbox_message(self, message_id: int) -> dict[str, Any]:
        return await self._send(calls.send_outbox_message(message_id))

    async def send_outbox(self, *, after_id: int = 0, limit: int | None = None) -> dict[str, Any]:
        return await self._send(calls.send_outbox(after_id, limit))

    async def create_schedule(self, schedule: dict[str, Any]) -> dict[str, Any]:
        return await self._send(calls.create_schedule(schedule))

    async def schedules(self) -> Rows:
        return await self._send(calls.schedules())

    async def schedule(self, name: str) -> dict[str, Any]:
        return await self._send(calls.schedule(name))

    async def pause_schedule(self, name: str) -> dict[str, Any]:
        return await self._send(calls.schedule_action(name, "pause"))

    async def resume_schedule(self, name: str) -> dict[str, Any]:
        return await self._send(calls.schedule_action(name, "resume"))

    async def trigger_schedule(self, name: str) -> dict[str, Any]:
        return await self._send(calls.schedule_action(name, "trigger"))

    async def backfill_schedule(self, name: str, start: str, end: str) -> dict[str, Any]:
        return await self._send(calls.backfill_schedule(name, start, end))

    async def delete_schedule(self, name: str) -> None:
        await self._send(calls.delete_schedule(name))


async def _events(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream as they arrive (an event ends at a blank line)."""
    lines: list[str] = []
    try:
        async for line in response.aiter_lines():
            lines.append(line)
            if not line:
                for event in iter_sse(lines):
                    yield event
                lines = []
    except httpx.TransportError as exc:
        raise StreamDropped(reason(exc)) from None
