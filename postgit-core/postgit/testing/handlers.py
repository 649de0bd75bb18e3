"""Run one handler as the engine runs a step, without a database: for plugin authors' unit tests.

:func:`run_handler` resolves the params (refs, templates and secrets against ``state``), checks them against the
node type's model, calls the handler with a real :class:`~postgit.nodes.StepContext` and turns what it returned or
raised into what the engine would record: the same code path as a worker's, the same messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from postgit.clock import SYSTEM_CLOCK, Clock
from postgit.decider import ReadyRun, Scope
from postgit.definition import NodeSpec
from postgit.engine.deadlines import StepDeadlines
from postgit.engine.steps import PluginSteps
from postgit.nodes import NodeType
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry, Provenance, RegisteredNodeType
from postgit.retry import RetryPolicy
from postgit.runs import LeafRecord
from postgit.sdk import Node
from postgit.testing.errors import PostgitTestingError


class MemoryOutbox:
    """A mail outbox in memory: what ``SendEmail`` parks when no SMTP server is configured."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._keys: set[str] = set()

    async def enqueue_mail(self, *, idempotency_key: str, message: dict[str, Any]) -> None:
        if idempotency_key not in self._keys:
            self._keys.add(idempotency_key)
            self.messages.append(message)


@dataclass(frozen=True)
class HandlerResult:
    """How the step ended, as the engine records it.

    Attributes:
        status: ``completed``, ``failed`` or ``suspended``.
        output: the output, when it completed.
        error: when it failed, ``{"message", "type", "node_id", "attempt", ...}``; ``type`` is ``RetryableError``
            for anything but a ``FatalError`` (an exception of another class included).
        retry_at: when it failed and its retry policy allows another attempt, when that attempt is due.
        until: when it suspended, when it asked to be woken up (None: only an event wakes it).
        resume: when it suspended, the ``data`` it handed its next call (``ctx.resume``).
        params: the params it ran with (refs and templates resolved; secrets as ``***``).
        outbox: the messages it parked in the outbox.
    """

    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    retry_at: datetime | None = None
    until: datetime | None = None
    resume: dict[str, Any] | None = None
    params: Any = None
    outbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def retryable(self) -> bool:
        """Whether it failed with an error that its retry policy will try again."""
        return self.status == "failed" and self.retry_at is not None


async def arun_handler(
    node_type: str | NodeType,
    params: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    node_id: str = "node",
    attempt: int = 1,
    instance_id: str | None = None,
    resume: dict[str, Any] | None = None,
    suspended_until: datetime | None = None,
    retry: RetryPolicy | dict[str, Any] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - the node's step timeout, as in a definition
    plugins: Iterable[object] = (),
    clock: Clock = SYSTEM_CLOCK,
) -> HandlerResult:
    """Run one step of ``node_type`` (its name among the installed types, or a :class:`NodeType`) with ``params``.

    Args:
        node_type: the node type: its name, or the :class:`NodeType` itself (installed or not).
        params: the node's params as in a definition: values, ``postgit.ref(...)``, templates, ``secret(...)``.
        state: the instance's state the refs and templates read (``{"input": ...}`` and what earlier nodes wrote).
        node_id: the node's id (``ctx.node_id``).
        attempt: the attempt it runs as (the retry policy decides ``retry_at`` from it).
        instance_id: ``ctx.instance_id`` (default: a new UUID); the idempotency key is ``<instance_id>:<node_id>``.
        resume: for the call after a ``Suspended``: its ``data`` (``ctx.resume``).
        suspended_until: for the call after a ``Suspended``: its ``until`` (``ctx.suspended_until``).
        retry: the node's retry policy, as a definition would set it.
        timeout: the node's step timeout in seconds, as a definition would set it.
        plugins: plugin objects to load besides the installed ones, to find ``node_type`` by name.
        clock: where ``ctx.now()`` reads the time.
    """
    registry, name = _registry_for(node_type, plugins)
    sdk_node = Node(name, id=node_id, retry=retry, timeout=timeout)
    sdk_node.params = dict(params)  # every key is a param, ``timeout`` too (HitEndpoint's request timeout)
    node = NodeSpec.from_json(sdk_node.to_json())
    record = None
    if resume is not None or suspended_until is not None:
        record = LeafRecord(node_id, attempt, "suspended", due_at=suspended_until, resume={"data": resume})
    outbox = MemoryOutbox()
    deadlines = StepDeadlines()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgit-testing-step") as threads:
        steps = PluginSteps(registry, threads, outbox, deadlines, None, clock)
        watch = asyncio.create_task(deadlines.watch_forever())
        try:
            run = ReadyRun(node_id, node, Scope(), attempt, record)
            result = await steps.run(run, instance_id or str(uuid.uuid4()), state or {})
        finally:
            watch.cancel()
    return HandlerResult(
        status=result.status,
        output=result.output,
        error=result.error,
        retry_at=result.due_at if result.status == "failed" else None,
        until=result.due_at if result.status == "suspended" else None,
        resume=(result.resume or {}).get("data") if result.status == "suspended" else None,
        params=result.params,
        outbox=outbox.messages,
    )


def run_handler(node_type: str | NodeType, params: dict[str, Any], **options: Any) -> HandlerResult:
    """:func:`arun_handler` for a test that does not run an event loop (``await arun_handler(...)`` in one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun_handler(node_type, params, **options))
    raise PostgitTestingError("run_handler() was called on a running event loop: await arun_handler(...) there")


def _registry_for(node_type: str | NodeType, plugins: Iterable[object]) -> tuple[NodeRegistry, str]:
    if isinstance(node_type, NodeType):
        entry = RegisteredNodeType(node_type, Provenance(plugin="postgit.testing", package=None, version=None))
        return NodeRegistry([entry]), node_type.name
    registry = load_registry(plugins)
    if node_type not in registry:
        raise PostgitTestingError(
            f"node type '{node_type}' is not installed (installed: {', '.join(registry) or 'none'}); "
            "pass its NodeType, or its plugin with plugins=[...]"
        )
    return registry, node_type
