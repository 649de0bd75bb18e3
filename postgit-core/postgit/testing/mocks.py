"""Node mocks: stand-ins for a node type's handler, everywhere or for one node, that record their calls.

The kit wraps every node type's handler in a :class:`_Dispatch` that asks the env's :class:`MockTable` first, so
mocks added after the engine started apply from the next step on. A mock is called where the handler would be,
after the node's refs and templates are resolved and its params checked against the node type's model: what it
records is what the real handler would have been given.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from postgit.definition import ENGINE_TYPES
from postgit.nodes import NodeType, StepContext
from postgit.registry import NodeRegistry, RegisteredNodeType
from postgit.testing.errors import PostgitTestingError

_UNSET: Any = object()


@dataclass(frozen=True)
class Call:
    """One call of a mock: the step it stood in for, and the params it was given (as JSON)."""

    instance_id: str
    node_id: str
    run_key: str
    attempt: int
    params: dict[str, Any]


class Mock:
    """What a mocked node type (or node) does instead of its handler; :attr:`calls` lists what it was given.

    Build one with :meth:`PostgitEnv.mock <postgit.testing.PostgitEnv.mock>`.
    """

    def __init__(
        self,
        node_type: str,
        node: str | None = None,
        *,
        returns: Any = _UNSET,
        raises: BaseException | None = None,
        side_effect: Callable[[StepContext, Any], Any] | Iterable[Any] | None = None,
    ):
        given = [
            name
            for name, value in (("returns", returns), ("raises", raises), ("side_effect", side_effect))
            if value is not _UNSET and value is not None
        ]
        if len(given) > 1:
            raise PostgitTestingError(
                f"a mock of {node_type} takes one of returns, raises and side_effect, not {given}"
            )
        if raises is not None and not isinstance(raises, BaseException):
            raise PostgitTestingError(f"raises= of a mock of {node_type} must be an exception, not {raises!r}")
        self.node_type = node_type
        self.node = node
        self.calls: list[Call] = []
        self._returns = None if returns is _UNSET else returns
        self._raises = raises
        self._call: Callable[[StepContext, Any], Any] | None = None
        self._responses: list[Any] | None = None
        if callable(side_effect):
            self._call = side_effect
        elif side_effect is not None:
            self._responses = list(side_effect)
            if not self._responses:
                raise PostgitTestingError(f"side_effect= of a mock of {node_type} is empty")
        self._lock = threading.Lock()

    @property
    def call_count(self) -> int:
        """How many times the mock was called."""
        return len(self.calls)

    def __repr__(self) -> str:
        where = f", node={self.node!r}" if self.node else ""
        return f"Mock({self.node_type!r}{where}, calls={len(self.calls)})"

    async def respond(self, ctx: StepContext, params: Any) -> Any:
        """Record the call and answer it as the handler would: return an output or an outcome, or raise."""
        dumped = params.model_dump(mode="json") if hasattr(params, "model_dump") else params
        with self._lock:
            self.calls.append(Call(ctx.instance_id, ctx.node_id, ctx.run_key or ctx.node_id, ctx.attempt, dumped))
            position = len(self.calls) - 1
        if self._call is not None:
            result = self._call(ctx, params)
            if inspect.isawaitable(result):
                result = await result
        elif self._responses is not None:
            result = self._responses[min(position, len(self._responses) - 1)]  # the last one repeats
        elif self._raises is not None:
            raise self._raises
        else:
            result = self._returns
        if isinstance(result, BaseException):
            raise result
        return copy.deepcopy(result)


class MockTable:
    """The mocks of one env, by node type: a mock for a node wins over one for its whole type; the latest wins."""

    def __init__(self, registry: NodeRegistry):
        self.registry = registry
        self._mocks: dict[tuple[str, str | None], Mock] = {}
        self._lock = threading.Lock()

    def add(self, mock: Mock) -> Mock:
        """Install ``mock``; PostgitTestingError when its node type is unknown or run by the engine itself."""
        if mock.node_type in ENGINE_TYPES:
            raise PostgitTestingError(
                f"{mock.node_type} is run by the engine itself and cannot be mocked: "
                "send its event with env.send_event(), or deploy the child workflow"
            )
        if mock.node_type not in self.registry:
            raise PostgitTestingError(
                f"cannot mock node type '{mock.node_type}': it is not installed "
                f"(installed: {', '.join(self.registry) or 'none'})"
            )
        with self._lock:
            self._mocks[(mock.node_type, mock.node)] = mock
        return mock

    def find(self, node_type: str, node_id: str) -> Mock | None:
        """The mock that stands in for ``node_id`` of ``node_type``, if any."""
        mocks = self._mocks
        return mocks.get((node_type, node_id)) or mocks.get((node_type, None))

    def for_nodes(self) -> list[Mock]:
        """The mocks installed for one node each."""
        return [mock for (_, node), mock in self._mocks.items() if node is not None]

    def clear(self) -> None:
        with self._lock:
            self._mocks.clear()


class _Dispatch:
    """A node type's handler as the kit installs it: the mock that matches the step, else the real handler."""

    def __init__(self, node_type: NodeType, mocks: MockTable):
        self.node_type = node_type
        self.mocks = mocks
        handler = node_type.handler
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)

    async def __call__(self, ctx: StepContext, params: Any) -> Any:
        mock = self.mocks.find(self.node_type.name, ctx.node_id)
        if mock is not None:
            return await mock.respond(ctx, params)
        if self._is_async:
            return await self.node_type.handler(ctx, params)
        return await asyncio.to_thread(self.node_type.handler, ctx, params)  # a plain handler runs in a thread


def mockable(registry: NodeRegistry) -> tuple[NodeRegistry, MockTable]:
    """``registry`` with every handler wrapped so that the returned table's mocks can stand in for it."""
    table = MockTable(registry)
    entries = [
        RegisteredNodeType(replace(entry.node_type, handler=_Dispatch(entry.node_type, table)), entry.provenance)
        for entry in registry.values()
    ]
    wrapped = NodeRegistry(entries)
    table.registry = wrapped
    return wrapped, table
