"""One attempt of one leaf run: calling a plugin's handler, and what came of it.

:class:`StepResult` is the common currency of the engine: a plugin step, a ``WaitForEvent`` and a
``SubWorkflow`` all end in one, which the instance's driver applies to its view and writes as a step row.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from postgit.clock import SYSTEM_CLOCK, Clock
from postgit.decider import ReadyRun
from postgit.engine.deadlines import StepDeadlines
from postgit.engine.loop_watch import LoopWatchdog
from postgit.jsontext import Unstorable, storable_json
from postgit.nodes import MailOutbox, NodeType, StepContext
from postgit.outcomes import Completed, FatalError, RetryableError, StepFailure, Suspended
from postgit.redaction import Redactor, redact
from postgit.registry import NodeRegistry
from postgit.resolve import resolve_params
from postgit.runs import LeafRecord
from postgit.step_logs import StepLogBuffer
from postgit.templating import TemplateProblem, render_template
from postgit.tracing import InstanceTrace, step_span

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
        logs: what the handler logged through ``ctx.logger`` (see :mod:`postgit.step_logs`), None when nothing.
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
    logs: str | None = None
    worker_id: str | None = None
    """The worker that ran it, when not this one (an attempt charged to a worker that died)."""

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
        """This result with every form of every secret's value that a handler used replaced by ``***``."""
        if not self.secrets:
            return self
        redactor = Redactor(self.secrets)
        for name in ("params", "output", "error", "resume", "logs"):
            setattr(self, name, redactor.value(getattr(self, name)))
        return self


def completed(
    run: ReadyRun, started_at: datetime, output: Any, *, now: datetime | None = None, **fields: Any
) -> StepResult:
    """A completed attempt, or a failed one when the output is too large or not JSON that can be stored.

    ``now``: when it finished, on the engine's clock (default: the system's).
    """
    try:
        _, size = storable_json(output)
    except Unstorable as exc:
        return failed(run, started_at, FatalError(f"output {exc}"), now=now, **fields)
    if size > MAX_OUTPUT_BYTES:
        failure = FatalError(f"output is {size} bytes; the limit is {MAX_OUTPUT_BYTES}")
        return failed(run, started_at, failure, now=now, **fields)
    return StepResult(run, "completed", started_at, now or datetime.now(UTC), output=output, **fields)


def failed(
    run: ReadyRun,
    started_at: datetime,
    failure: StepFailure,
    *,
    retry_delay: float | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> StepResult:
    """A failed attempt; ``retry_delay`` seconds until the next one, or None when it failed for good.

    ``now``: when it failed, on the engine's clock (default: the system's).
    """
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
    now = now or datetime.now(UTC)
    due_at = now + timedelta(seconds=retry_delay) if retry_delay is not None else None
    return StepResult(run, "failed", started_at, now, error=error, due_at=due_at, **fields)


def suspended(run: ReadyRun, started_at: datetime, until: datetime | None, **fields: Any) -> StepResult:
    """A suspended attempt, woken at ``until`` (or by an event)."""
    return StepResult(run, "suspended", started_at, None, due_at=until, **fields)


RATE_DEFERRED = "postgit.rate_deferred"
"""Marks a step deferred until the rate-limit token it reserved is due (in its step row's ``resume``)."""


class PluginSteps:
    """Runs leaf runs of plugin node types: resolve the params, call the handler, map its outcome."""

    def __init__(
        self,
        registry: NodeRegistry,
        threads: ThreadPoolExecutor,
        outbox: MailOutbox | None,
        deadlines: StepDeadlines,
        watchdog: LoopWatchdog | None = None,
        clock: Clock = SYSTEM_CLOCK,
        *,
        lease_seconds: float = 30.0,
    ):
        self.registry = registry
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.watchdog = watchdog
        self.deadlines = deadlines
        self.threads = threads
        self.outbox = outbox
        self._loggers: dict[str, logging.Logger] = {}
        self._async: dict[str, bool] = {}
        self.rate_tokens: Callable[[str, float], Awaitable[datetime]] | None = None
        """Reserves a token of a rate-limit key and says when it is due (``Store.take_rate_token``); None: no limits."""
        self.tracer: Any = None
        """The OpenTelemetry tracer of step spans (:func:`postgit.tracing.engine_tracer`); None: no spans."""

    async def run(
        self,
        run: ReadyRun,
        instance_id: str,
        variables: dict[str, Any],
        task: asyncio.Task[Any] | None = None,
        trace: InstanceTrace | None = None,
    ) -> StepResult:
        """One attempt of ``run`` against ``variables`` (the state and the run's scope), in ``task`` when known.

        With ``trace`` (and a tracer), the attempt runs in a span of the instance's trace.
        """
        extra = {"instance_id": instance_id, "node_id": run.node.id, "run": run.key}
        logger = _StepLogger(self._logger(run.node.type), extra, self.clock)
        if trace is None or self.tracer is None:
            result = await self._attempt(run, instance_id, variables, task, logger)
        else:
            with step_span(self.tracer, trace, run.node.id, run.node.type, run.key, run.attempt) as span:
                result = await self._attempt(run, instance_id, variables, task, logger, span.traceparent)
                span.outcome(result.status, result.due_at is not None, result.error)
        result.logs = logger.buffer.text() if logger.buffer is not None else None
        return result

    async def _attempt(
        self,
        run: ReadyRun,
        instance_id: str,
        variables: dict[str, Any],
        task: asyncio.Task[Any] | None,
        logger: _StepLogger,
        traceparent: str | None = None,
    ) -> StepResult:
        node = run.node
        node_type = self.registry.node_type(node.type)
        clock = self.clock
        started_at = clock.now()
        record = run.record if run.record is not None and run.record.status == "suspended" else None
        resume = (record.resume or {}) if record else {}
        suspended_until = record.due_at if record else None
        if resume.get(RATE_DEFERRED):  # deferred for a rate-limit token, now due: the handler's own suspension
            until = resume.get("suspended_until")
            suspended_until = datetime.fromisoformat(until) if until else None
        ctx = StepContext(
            instance_id=instance_id,
            node_id=node.id,
            attempt=run.attempt,
            idempotency_key=f"{instance_id}:{run.key}",
            logger=logger,
            resume=resume.get("data"),
            suspended_until=suspended_until,
            outbox=self.outbox,
            run_key=run.key,
            clock=clock,
            traceparent=traceparent,
        )
        secrets = logger.secrets
        params_json: Any = None
        common = {"secrets": secrets}
        try:
            params = resolve_params(node, node_type.params, variables, secrets)
            params_json = params.model_dump(mode="json")
            common["params"] = params_json
            if node.rate_limit is not None and self.rate_tokens is not None and not resume.get(RATE_DEFERRED):
                due = await self._take_rate_token(node.rate_limit, variables)
                if due > clock.now():  # wait for the token reserved: the run is due again then
                    deferred = {"until": due.isoformat(), "data": resume.get("data"), RATE_DEFERRED: True}
                    if suspended_until is not None:
                        deferred["suspended_until"] = suspended_until.isoformat()
                    return suspended(run, started_at, due, resume=deferred, **common)
            result = await self._call(node_type, node.timeout, ctx, params, task)
            if isinstance(result, Suspended):
                until = self._wake_time(result, node_type)
                resume = {"until": until.isoformat(), "data": result.data}
                return suspended(run, started_at, until, resume=resume, **common)
            output = result.output if isinstance(result, Completed) else result
            return completed(run, started_at, output, now=clock.now(), **common)
        except FatalError as exc:
            return failed(run, started_at, exc, now=clock.now(), **common)
        except RetryableError as exc:
            return failed(run, started_at, exc, retry_delay=self._delay(run, node_type), now=clock.now(), **common)
        except TimeoutError:
            failure = RetryableError(f"step timed out after {node.timeout or node_type.timeout:g}s")
            return failed(run, started_at, failure, retry_delay=self._delay(run, node_type), now=clock.now(), **common)
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
            return failed(run, started_at, failure, retry_delay=self._delay(run, node_type), now=clock.now(), **common)

    async def _take_rate_token(self, rate_limit: dict[str, Any], variables: dict[str, Any]) -> datetime:
        """Reserve a token of the node's rate-limit key (rendered over ``variables``); when it is due."""
        try:
            key = render_template(rate_limit["key"], variables)
        except TemplateProblem as exc:
            raise FatalError(f"rateLimit.key: {exc}") from None
        assert self.rate_tokens is not None
        return await self.rate_tokens(key, rate_limit["perSecond"])

    def _wake_time(self, result: Suspended, node_type: NodeType) -> datetime:
        """``result.until``, or FatalError when it cannot be meant: no time zone, or long past (a tight loop)."""
        until = result.until
        returned = f"the handler of {node_type.name} returned Suspended(until={until!r})"
        if not isinstance(until, datetime):
            raise FatalError(f"{returned}: until must be a datetime with a time zone")
        if until.tzinfo is None or until.utcoffset() is None:
            raise FatalError(
                f"{returned}, a naive datetime: give it a time zone, e.g. datetime.now(UTC) + timedelta(seconds=10)"
            )
        late = (self.clock.now() - until).total_seconds()
        if late > self.lease_seconds:
            raise FatalError(
                f"{returned}, {late:.0f}s in the past (more than a lease, {self.lease_seconds:g}s): "
                "it would be woken again at once; return Completed when the time has passed"
            )
        try:
            storable_json(result.data)
        except Unstorable as exc:
            raise FatalError(f"the handler of {node_type.name} returned Suspended data that {exc}") from None
        return until

    def _logger(self, node_type: str) -> logging.Logger:
        logger = self._loggers.get(node_type)
        if logger is None:
            logger = self._loggers[node_type] = logging.getLogger(f"postgit.step.{node_type}")
        return logger

    def _is_async(self, node_type: NodeType) -> bool:
        """Whether ``node_type``'s handler is a coroutine function (found out once per node type)."""
        known = self._async.get(node_type.name)
        if known is None:
            handler = node_type.handler
            known = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
            self._async[node_type.name] = known
        return known

    def _delay(self, run: ReadyRun, node_type: NodeType) -> float | None:
        policy = run.node.retry or node_type.retry
        return policy.next_delay(run.attempt)

    async def _call(
        self, node_type: NodeType, seconds: float | None, ctx: StepContext, params: Any, task: asyncio.Task[Any] | None
    ) -> Any:
        handler = node_type.handler
        if self._is_async(node_type):
            if self.watchdog is not None:
                return await self._call_watched(self.watchdog, node_type, seconds, ctx, params, task)
            call = handler(ctx, params)
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self.threads, functools.partial(handler, ctx, params))
        return await self.deadlines.run(call, seconds or node_type.timeout, task)

    async def _call_watched(
        self,
        watchdog: LoopWatchdog,
        node_type: NodeType,
        seconds: float | None,
        ctx: StepContext,
        params: Any,
        task: asyncio.Task[Any] | None,
    ) -> Any:
        """Await an async handler on the loop; LoopBlocked, whatever it returned or raised, if it blocked the loop."""
        task = watchdog.track(ctx, node_type.name, task)
        try:
            result = await self.deadlines.run(node_type.handler(ctx, params), seconds or node_type.timeout, task)
        except asyncio.CancelledError:
            watchdog.forget(task)
            raise
        except Exception:
            watchdog.untrack(task)
            raise
        watchdog.untrack(task)
        return result


_BUFFER_MADE = threading.Lock()


class _StepLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A handler's ``ctx.logger``: what it logs has every form of the step's secrets redacted.

    Lines at INFO and above (and DEBUG when the logger is enabled for it) are kept with the attempt, whatever the
    process's logging configuration; the process's log gets what its configuration lets through.
    """

    def __init__(self, logger: logging.Logger, extra: dict[str, Any], clock: Clock):
        super().__init__(logger, extra)
        self.clock = clock
        self.buffer: StepLogBuffer | None = None
        """The lines kept with the attempt; made on the first one (most steps log nothing)."""
        self.secrets: list[str] = []
        """The values of the secrets the step's params use, filled in as they are resolved."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        enabled = self.isEnabledFor(level)
        if level < logging.INFO and not enabled:
            return
        text = _message(msg, args)
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:  # the traceback goes into the message, to be redacted with it
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
            if exc_info[0] is not None:
                text += "\n" + logging.Formatter().formatException(exc_info)
        if self.secrets:
            text = Redactor(self.secrets).text(text)
        if self.buffer is None:
            with _BUFFER_MADE:  # a handler may log from threads of its own
                if self.buffer is None:
                    self.buffer = StepLogBuffer(self.clock)
        self.buffer.add(level, text)
        if enabled:
            super().log(level, text, **kwargs)


def _message(msg: object, args: tuple[Any, ...]) -> str:
    """``msg % args`` as logging would make it; a message that does not format is kept with its arguments."""
    if not args:
        return str(msg)
    if len(args) == 1 and isinstance(args[0], dict) and args[0]:
        args = args[0]  # type: ignore[assignment] - logging's own rule for a single mapping argument
    try:
        return str(msg) % args
    except (TypeError, ValueError, KeyError):
        return f"{msg} {args!r}"
