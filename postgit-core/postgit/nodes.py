"""The node protocol: what a plugin provides for each node type, and what its handler receives."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from postgit.clock import SYSTEM_CLOCK, Clock
from postgit.retry import RetryPolicy

DEFAULT_STEP_TIMEOUT = 300.0
"""Seconds a step may run unless its node type or node says otherwise."""


class MailOutbox(Protocol):
    """Where a step may durably park an email when no SMTP server is configured."""

    async def enqueue_mail(self, *, idempotency_key: str, message: dict[str, Any]) -> None:
        """Store ``message`` once per ``idempotency_key``."""


@dataclass(frozen=True)
class StepContext:
    """What a handler knows about the step it runs.

    Attributes:
        instance_id: the workflow instance.
        node_id: the node being executed.
        attempt: 1 for the first try, 2 for the first retry, ...
        idempotency_key: stable for this step across retries and crash re-runs; hand it to the service you call
            so that running the step twice has the effect of running it once.
        logger: a logger that names the instance and node.
        resume: the ``data`` of the :class:`~postgit.outcomes.Suspended` this step returned before it was woken
            up again, or None on the step's first run.
        suspended_until: when the step was suspended, the time it asked to be woken up at.
        outbox: the durable mail outbox.
        run_key: the run: the node id, followed by the item index of each enclosing ForEach (``ship[3]``).
        clock: where the engine reads the time; use :meth:`now` rather than the system's clock, so that a test
            that skips time (:mod:`postgit.testing`) skips it for the handler too.
        traceparent: when the worker traces steps (OpenTelemetry), the W3C ``traceparent`` of this attempt's span:
            send it to the services the step calls (``HitEndpoint`` does) so that their spans join the trace.
    """

    instance_id: str
    node_id: str
    attempt: int
    idempotency_key: str
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    resume: dict[str, Any] | None = None
    suspended_until: datetime | None = None
    outbox: MailOutbox | None = None
    run_key: str = ""
    clock: Clock = SYSTEM_CLOCK
    traceparent: str | None = None

    def now(self) -> datetime:
        """The current time (timezone-aware) on the engine's clock: compute a ``Suspended(until=...)`` from it."""
        return self.clock.now()


Handler = Callable[[StepContext, Any], Awaitable[Any] | Any]
"""``handler(ctx, params)``: ``params`` is an instance of the node type's params model with refs and templates
resolved. ``async def`` handlers run on the worker's event loop; plain functions run in a bounded thread pool.
Return a JSON value or an outcome (:mod:`postgit.outcomes`); raise ``RetryableError`` or ``FatalError``."""


@dataclass(frozen=True)
class NodeType:
    """A node type as a plugin declares it.

    Attributes:
        name: the type name used in definitions (``"HitEndpoint"``).
        params: a pydantic model of the node's params, checked at deploy time and again at run time once refs
            and templates are resolved.
        handler: the function that executes a step of this type.
        description: one line, shown by ``pst plugins ls``.
        retry: the default retry policy; a node in a definition may override it.
        timeout: default seconds a step may run before it fails as retryable (a node may override it).
    """

    name: str
    params: type[BaseModel]
    handler: Handler
    description: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_STEP_TIMEOUT
