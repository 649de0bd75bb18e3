"""One attempt of one leaf run: calling a plugin's handler, and what came of it.

:class:`StepResult` is the common currency of the engine: a plugin step, a ``WaitForEvent`` and a
``SubWorkflow`` all end in one, which the instance's driver applies to its view and writes as a step row.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from postgit.decider import ReadyRun
from postgit.engine.deadlines import StepDeadlines
from postgit.nodes import MailOutbox, NodeType, StepContext
from postgit.outcomes import Completed, FatalError, RetryableError, StepFailure, Suspended
from postgit.registry import NodeRegistry
from postgit.resolve import redact, resolve_params
from postgit.runs import LeafRecord

log = logging.getLogger("postgit.worker")

MAX_OUTPUT_BYTES = 1_000_000


@dataclass(slots=True)
class StepResult:
    """How one attempt of a leaf run ended.

    Attributes:
        status: ``completed``, ``failed`` or ``suspended``.
        due_at: failed: when the next attempt is due (None: failed for good); suspended: when to wake it.
        retryable: failed: whether the error was retryable (the retry policy decides ``due_at``).
        deliveries: ids of the events (signals) the attempt took.
    """

    run: ReadyRun
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    params: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    due_at: datetime | None = None
    resume: dict[str, Any] | None = None
    wait_event: str | None = None
    wait_key: str | None = None
    deliveries: list[int] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.run.key

    @property
    def attempt(self) -> int:
        return self.run.attempt

    def record(self) -> LeafRecord:
        """The latest attempt of the run, as the decider reads it once this result is committed."""
        return LeafRecord(
            key=self.run.key,
            attempt=self.run.attempt,
            status=self.status,
            output=self.output,
            error=self.error,
            due_at=self.due_at,
            resume=self.resume,
            wait_event=self.wait_event,
            wait_key=self.wait_key,
        )

    def redacted(self) -> StepResult:
        """This result with every secret's value that a handler used replaced by ``***``."""
        if not self.secrets:
            return self
        for name in ("params", "output", "error", "resume"):
            setattr(self, name, redact(getattr(self, name), self.secrets))
        return self


def completed(run: ReadyRun, started_at: datetime, output: Any, **fields: Any) -> StepResult:
    """A completed attempt, or a failed one when the output is not JSON or too large."""
    try:
        size = len(json.dumps(output))
    except (TypeError, ValueError) as exc:
        return failed(run, started_at, FatalError(f"output is not JSON-serialisable: {exc}"), **fields)
    if size > MAX_OUTPUT_BYTES:
        return failed(run, started_at, FatalError(f"output is {size} bytes; the limit is {MAX_OUTPUT_BYTES}"), **fields)
    return StepResult(run, "completed", started_at, datetime.now(UTC), output=output, **fields)


def failed(
    run: ReadyRun, started_at: datetime, failure: StepFailure, *, retry_delay: float | None = None, **fields: Any
) -> StepResult:
    """A failed attempt; ``retry_delay`` seconds until the next one, or None when it failed for good."""
    error: dict[str, Any] = {
        "message": failure.message,
        "type": type(failure).__name__,
        "node_id": run.node.id,
        "attempt": run.attempt,
    }
    if run.key != run.node.id:
        error["run"] = run.key
    if failure.details is not None:
        error["details"] = failure.details
    now = datetime.now(UTC)
    due_at = now + timedelta(seconds=retry_delay) if retry_delay is not None else None
    return StepResult(run, "failed", started_at, now, error=error, due_at=due_at, **fields)


def suspended(run: ReadyRun, started_at: datetime, until: datetime | None, **fields: Any) -> StepResult:
    """A suspended attempt, woken at ``until`` (or by an event)."""
    return StepResult(run, "suspended", started_at, None, due_at=until, **fields)


class PluginSteps:
    """Runs leaf runs of plugin node types: resolve the params, call the handler, map its outcome."""

    def __init__(
        self, registry: NodeRegistry, threads: ThreadPoolExecutor, outbox: MailOutbox | None, deadlines: StepDeadlines
    ):
        self.registry = registry
        self.deadlines = deadlines
        self.threads = threads
        self.outbox = outbox
        self._loggers: dict[str, logging.Logger] = {}

    async def run(self, run: ReadyRun, instance_id: str, variables: dict[str, Any]) -> StepResult:
        """One attempt of ``run`` against ``variables`` (the state and the run's scope)."""
        node = run.node
        node_type = self.registry.node_type(node.type)
        started_at = datetime.now(UTC)
        record = run.record if run.record is not None and run.record.status == "suspended" else None
        ctx = StepContext(
            instance_id=instance_id,
            node_id=node.id,
            attempt=run.attempt,
            idempotency_key=f"{instance_id}:{run.key}",
            logger=logging.LoggerAdapter(
                self._logger(node.type), {"instance_id": instance_id, "node_id": node.id, "run": run.key}
            ),
            resume=(record.resume or {}).get("data") if record else None,
            suspended_until=record.due_at if record else None,
            outbox=self.outbox,
            run_key=run.key,
        )
        secrets: list[str] = []
        params_json: Any = None
        common = {"secrets": secrets}
        try:
            params = resolve_params(node, node_type.params, variables, secrets)
            params_json = params.model_dump(mode="json")
            common["params"] = params_json
            result = await self._call(node_type, node.timeout, ctx, params)
            if isinstance(result, Suspended):
                until = result.until if result.until.tzinfo else result.until.replace(tzinfo=UTC)
                resume = {"until": until.isoformat(), "data": result.data}
                return suspended(run, started_at, until, resume=resume, **common)
            output = result.output if isinstance(result, Completed) else result
            return completed(run, started_at, output, **common)
        except FatalError as exc:
            return failed(run, started_at, exc, **common)
        except RetryableError as exc:
            return failed(run, started_at, exc, retry_delay=self._delay(run, node_type), **common)
        except TimeoutError:
            failure = RetryableError(f"step timed out after {node.timeout or node_type.timeout:g}s")
            return failed(run, started_at, failure, retry_delay=self._delay(run, node_type), **common)
        except Exception as exc:
            failure = RetryableError(f"{type(exc).__name__}: {exc}")
            log.info(
                "instance %s run '%s' attempt %d raised %s",
                instance_id,
                run.key,
                run.attempt,
                redact(failure.message, secrets),
                exc_info=not secrets,  # a traceback's locals and messages could show a secret
            )
            return failed(run, started_at, failure, retry_delay=self._delay(run, node_type), **common)

    def _logger(self, node_type: str) -> logging.Logger:
        logger = self._loggers.get(node_type)
        if logger is None:
            logger = self._loggers[node_type] = logging.getLogger(f"postgit.step.{node_type}")
        return logger

    def _delay(self, run: ReadyRun, node_type: NodeType) -> float | None:
        policy = run.node.retry or node_type.retry
        return policy.next_delay(run.attempt)

    async def _call(self, node_type: NodeType, seconds: float | None, ctx: StepContext, params: Any) -> Any:
        handler = node_type.handler
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
            call = handler(ctx, params)
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self.threads, functools.partial(handler, ctx, params))
        return await self.deadlines.run(call, seconds or node_type.timeout)
