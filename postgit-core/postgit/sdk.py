"""Building workflows in Python: ``Sequence``, ``Node``, the built-in node builders and ``ref``.

The builders only describe nodes; they import no plugin. ``Node("AnyType", id=..., **params)`` builds a node of
any installed type, so a third-party node type needs no SDK change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postgit.definition import REF_KEY, SECRET_KEY, NodeSpec
from postgit.retry import RetryPolicy


@dataclass(frozen=True)
class Ref:
    """A param value read from the instance's state when the step runs."""

    path: str

    def to_json(self) -> dict[str, str]:
        return {REF_KEY: self.path}


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


def ref(path: str) -> Ref:
    """Refer to a value of the instance's state, e.g. ``ref("$.fetchResult.body.status")``."""
    return Ref(path)


class Node:
    """A node of any type: ``Node("HitEndpoint", id="fetch", url="...", assign_to="$.result")``.

    ``assign_to``, ``retry`` (a :class:`RetryPolicy` or a dict such as ``{"maxAttempts": 5}``) and ``timeout``
    (seconds) configure the node itself; every other keyword is a param of the node type.
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
        **params: Any,
    ):
        self.type = type
        self.id = id
        self.assign_to = assign_to
        self.retry = RetryPolicy.model_validate(retry) if isinstance(retry, dict) else retry
        self.timeout = timeout
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
        ).to_json()

    def __repr__(self) -> str:
        return f"{self.type}(id={self.id!r})"


class Sequence(Node):
    """Run ``children`` one after another."""

    def __init__(self, *, id: str, children: list[Node]):
        super().__init__("Sequence", id=id)
        self.children = list(children)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": "Sequence", "children": [child.to_json() for child in self.children]}


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


def _params_json(value: Any) -> Any:
    if isinstance(value, Ref | Secret):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _params_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_params_json(item) for item in value]
    return value
