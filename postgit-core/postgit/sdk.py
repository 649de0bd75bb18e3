"""Building workflows in Python: ``Node``, the control-flow builders, the built-in node builders and ``ref``.

The builders only describe nodes; they import no plugin. ``Node("AnyType", id=..., **params)`` builds a node of
any installed type, so a third-party node type needs no SDK change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postgit.definition import DEFAULT_CONCURRENCY, REF_DEFAULT_KEY, REF_KEY, SECRET_KEY, NodeSpec, wrap_root
from postgit.durations import parse_duration
from postgit.retry import RetryPolicy

_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Ref:
    """A param value read from the instance's state when the step runs."""

    path: str
    default: Any = _NO_DEFAULT

    def to_json(self) -> dict[str, Any]:
        if self.default is _NO_DEFAULT:
            return {REF_KEY: self.path}
        return {REF_KEY: self.path, REF_DEFAULT_KEY: self.default}


@dataclass(frozen=True)
class Secret:
    """A param value the worker reads from its environment (``POSTGIT_SECRET_<NAME>``) when the step runs."""

    name: str

    def to_json(self) -> dict[str, str]:
        return {SECRET_KEY: self.name}


def secret(name: str) -> Secret:
    """Refer to a secret by name; the worker reads it from ``POSTGIT_SECRET_<name>``.

    For example ``headers={"Authorization": secret("API_TOKEN")}``. The value never enters the definition, the
    state, the stored step params, events or logs.
    """
    return Secret(name)


def ref(path: str, default: Any = _NO_DEFAULT) -> Ref:
    """Refer to a value of the instance's state, e.g. ``ref("$.fetchResult.body.status")``.

    With ``default``, a path that is missing when the step runs gives ``default`` instead of failing the step,
    and the deploy-time check does not require a node to write it first: an optional value, read deliberately.
    """
    return Ref(path, default)


class Node:
    """A node of any type: ``Node("HitEndpoint", id="fetch", url="...", assign_to="$.result")``.

    ``assign_to``, ``retry`` (a :class:`RetryPolicy` or a dict such as ``{"maxAttempts": 5}``), ``timeout``
    (seconds), ``rate_limit`` (``{"key": "{{ input.customer }}", "per_second": 5}``: its steps start at most
    that often per key, across every worker) and ``queue`` (only workers serving that queue run the node, see
    ``POSTGIT_QUEUES``) configure the node itself; every other keyword is a param of the node type.
    """

    def __init__(
        self,
        type: str,
        /,
        *,
        id: str,
        assign_to: str | None = None,
        retry: RetryPolicy | dict[str, Any] | None = None,
        timeout: float | None = None,
        rate_limit: dict[str, Any] | None = None,
        queue: str | None = None,
        **params: Any,
    ):
        self.type = type
        self.id = id
        self.assign_to = assign_to
        self.retry = RetryPolicy.model_validate(retry) if isinstance(retry, dict) else retry
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.queue = queue
        self.params = params

    def to_json(self) -> dict[str, Any]:
        """The node's JSON definition."""
        return NodeSpec(
            id=self.id,
            type=self.type,
            params=_params_json(self.params),
            assign_to=self.assign_to,
            retry=self.retry,
            timeout=self.timeout,
            rate_limit=_rate_limit_json(self.rate_limit),
            queue=self.queue,
        ).to_json()

    def __repr__(self) -> str:
        return f"{self.type}(id={self.id!r})"


class _Control(Node):
    """A control-flow node: its JSON holds its settings and child nodes rather than params."""

    def __init__(self, type: str, *, id: str, assign_to: str | None = None, **settings: Any):
        super().__init__(type, id=id, assign_to=assign_to)
        self.settings = settings

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        out.update({key: _params_json(value) for key, value in self.settings.items() if value is not None})
        if self.assign_to is not None:
            out["assignTo"] = self.assign_to
        return out


class Sequence(_Control):
    """Run ``children`` one after another; the output is the last child's."""

    def __init__(self, *, id: str, children: list[Node], assign_to: str | None = None):
        super().__init__("Sequence", id=id, assign_to=assign_to, children=list(children))


class Parallel(_Control):
    """Run ``branches`` at the same time; the output is ``{branch name: its output}``.

    ``on_failure="fail_fast"`` (the default) fails the node at the first branch that fails and cancels the
    others; ``"wait_all"`` lets every branch finish first. ``mode="first"`` completes with the first branch that
    completes (``{name: output}``) and cancels the others.
    """

    def __init__(
        self,
        *,
        id: str,
        branches: dict[str, Node],
        on_failure: str = "fail_fast",
        mode: str = "all",
        assign_to: str | None = None,
    ):
        super().__init__(
            "Parallel",
            id=id,
            assign_to=assign_to,
            branches=dict(branches),
            onFailure=on_failure if on_failure != "fail_fast" else None,
            mode=mode if mode != "all" else None,
        )


class If(_Control):
    """Run ``then`` when ``condition`` (a jinja2 expression over the state) is true, else ``else_``."""

    def __init__(self, *, id: str, condition: str, then: Node, else_: Node | None = None, assign_to: str | None = None):
        super().__init__("If", id=id, assign_to=assign_to, condition=condition, then=then)
        if else_ is not None:
            self.settings["else"] = else_


class Switch(_Control):
    """Run the node of the first case whose condition is true, else ``default``; no match and no default fails."""

    def __init__(
        self,
        *,
        id: str,
        cases: list[tuple[str, Node]],
        default: Node | None = None,
        assign_to: str | None = None,
    ):
        super().__init__(
            "Switch",
            id=id,
            assign_to=assign_to,
            cases=[{"condition": condition, "node": node} for condition, node in cases],
            default=default,
        )


class ForEach(_Control):
    """Run ``body`` once per item of ``items`` (a ref, an expression such as ``"{{ input.lines }}"``, or a list).

    ``item`` and ``index`` are in scope inside the body; at most ``concurrency`` items run at once; the output
    is the list of the body's outputs in item order. ``tolerated_failures`` (a count, or a percentage such as
    ``"5%"``) lets the loop complete with failed items: the output is then ``{"results": [...], "errors":
    [{"index", "error"}, ...]}`` with ``null`` results for the failed items.
    """

    def __init__(
        self,
        *,
        id: str,
        items: Any,
        body: Node,
        concurrency: int = DEFAULT_CONCURRENCY,
        tolerated_failures: int | str = 0,
        assign_to: str | None = None,
    ):
        super().__init__(
            "ForEach",
            id=id,
            assign_to=assign_to,
            items=items,
            body=body,
            concurrency=concurrency if concurrency != DEFAULT_CONCURRENCY else None,
            toleratedFailures=tolerated_failures or None,
        )


class Try(_Control):
    """Run ``body``; when an error escapes it (after its retries), run ``catch`` with ``error`` in scope.

    ``finally_`` always runs afterwards. The output is the body's, or the catch's when it ran.
    """

    def __init__(
        self,
        *,
        id: str,
        body: Node,
        catch: Node | None = None,
        finally_: Node | None = None,
        assign_to: str | None = None,
    ):
        super().__init__("Try", id=id, assign_to=assign_to, body=body, catch=catch)
        if finally_ is not None:
            self.settings["finally"] = finally_


def WaitForEvent(
    *,
    id: str,
    event: str,
    key: str | None = None,
    timeout: float | None = None,
    assign_to: str | None = None,
    queue: str | None = None,
) -> Node:
    """Wait for an event named ``event``; the output is ``{"timed_out": bool, "data": ...}``.

    Without ``key`` the event is sent to the instance (``pst event send INSTANCE_ID NAME``); with ``key`` (a
    template such as ``"{{ input.order_id }}"``) to every instance waiting on that name and key
    (``pst event send --key KEY NAME``). An event sent before the wait begins is kept for it.
    """
    node = Node("WaitForEvent", id=id, assign_to=assign_to, queue=queue, event=event)
    if key is not None:
        node.params["key"] = key
    if timeout is not None:
        node.params["timeout"] = timeout  # the wait's own timeout, a param (not the node-level step timeout)
    return node


def SubWorkflow(
    *,
    id: str,
    workflow: str,
    input: Any = None,
    wait: bool = True,
    on_parent_cancel: str = "cancel",
    version: int | None = None,
    assign_to: str | None = None,
    queue: str | None = None,
) -> Node:
    """Start one child instance of ``workflow`` and wait for it; the output is the child's final state.

    A child that fails fails this node. With ``wait=False`` the output is ``{"child_id": ...}`` at once. When the
    parent is cancelled or fails, its unfinished children are cancelled too, unless ``on_parent_cancel="abandon"``.
    """
    params: dict[str, Any] = {"workflow": workflow}
    if input is not None:
        params["input"] = input
    if not wait:
        params["wait"] = False
    if on_parent_cancel != "cancel":
        params["on_parent_cancel"] = on_parent_cancel
    if version is not None:
        params["version"] = version
    return Node("SubWorkflow", id=id, assign_to=assign_to, queue=queue, **params)


class Workflow:
    """A workflow with settings of its own: ``Workflow(root, timeout=3600, input_schema={...}, retention="7d")``.

    ``timeout``: seconds an instance may run from its start before it fails. ``input_schema``: a JSON Schema
    that every start's input must satisfy (a start that does not is refused, naming the field). ``retention``:
    how long a finished instance is kept (seconds, or a duration such as ``"7d"``), instead of the workers'
    ``POSTGIT_RETENTION``. ``concurrency``: at most ``limit`` instances per rendered ``key`` run at once, e.g.
    ``{"key": "{{ input.customer }}", "limit": 2, "strategy": "queue"}`` (strategies: ``queue``,
    ``cancel_newest``, ``cancel_in_progress``). ``queue``: the queue of every step that names none (only workers
    serving it run them).
    """

    def __init__(
        self,
        root: Node,
        *,
        timeout: float | None = None,
        input_schema: dict[str, Any] | None = None,
        retention: float | str | None = None,
        concurrency: dict[str, Any] | None = None,
        queue: str | None = None,
    ):
        self.root = root
        self.timeout = timeout
        self.input_schema = input_schema
        self.retention = parse_duration(retention) if isinstance(retention, str) else retention
        self.concurrency = concurrency
        self.queue = queue

    def to_json(self) -> dict[str, Any]:
        return wrap_root(
            self.root.to_json(),
            self.timeout,
            self.input_schema,
            self.retention,
            concurrency=self.concurrency,
            queue=self.queue,
        )


def HitEndpoint(*, id: str, url: str | Ref, method: str = "GET", timeout: float | None = None, **kwargs: Any) -> Node:
    """Call an HTTP endpoint (params: url, method, headers, json, body, timeout, accept_status).

    ``timeout`` here is the request's timeout in seconds (a param of the node type), not the node-level step
    timeout that ``Node(..., timeout=...)`` sets for other node types.
    """
    node = Node("HitEndpoint", id=id, url=url, method=method, **kwargs)
    if timeout is not None:
        node.params["timeout"] = timeout
    return node


def Sleep(*, id: str, **kwargs: Any) -> Node:
    """Wait durably for ``seconds``, or ``until`` an ISO-8601 timestamp."""
    return Node("Sleep", id=id, **kwargs)


def SendEmail(*, id: str, to: str | list[str] | Ref, subject: str | Ref, body: Any, **kwargs: Any) -> Node:
    """Send an email through ``POSTGIT_SMTP_URL``, or park it in the outbox when none is configured."""
    return Node("SendEmail", id=id, to=to, subject=subject, body=body, **kwargs)


def _rate_limit_json(rate_limit: dict[str, Any] | None) -> dict[str, Any] | None:
    """A node's ``rate_limit`` in the JSON form (``per_second`` is ``perSecond`` there)."""
    if rate_limit is None:
        return None
    return {("perSecond" if key == "per_second" else key): value for key, value in rate_limit.items()}


def _params_json(value: Any) -> Any:
    if isinstance(value, Ref | Secret | Node):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _params_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_params_json(item) for item in value]
    return value
