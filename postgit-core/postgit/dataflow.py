"""The deploy-time data-flow check: every read of the state is written first, on every path that leads to it.

A forward pass over the tree computes, before each node, the state keys that are certainly written by then:
a Sequence adds what each child writes; an If, Switch or ``mode="first"`` Parallel keeps what all its
branches write; a ``mode="all"`` Parallel keeps what any branch writes (all of them finish); a ForEach's body
writes to its item's own scope, so only the ForEach's ``assignTo`` is visible after it; a Try keeps what both
``body`` and ``catch`` write, and what ``finally`` writes.

A ref or template whose first key (its root: ``charge`` in ``$.charge.id``) is not certainly written, and is not
``input`` or a scope variable (``item`` and ``index`` in a ForEach body, ``error`` in a catch), is refused, naming
the node that reads and the nodes that write it. A ref with a ``default``, or a template variable used only
as ``x | default(...)`` or in ``x is defined``, reads deliberately optional values and is not checked. Two
branches of a Parallel writing the same path (or one inside the other) are refused too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from postgit.definition import REF_DEFAULT_KEY, REF_KEY, SECRET_KEY, NodeSpec, WorkflowDefinition
from postgit.errors import DefinitionIssue
from postgit.paths import PathError, Segment, format_path, parse_path
from postgit.templating import TemplateProblem, is_template, template_variables

ALWAYS_DEFINED = frozenset({"input"})
LOOP_VARIABLES = frozenset({"item", "index"})
CATCH_VARIABLES = frozenset({"error"})

Written = dict[str, str]
"""Roots certainly written so far -> a node that writes it (for messages)."""


def check_data_flow(definition: WorkflowDefinition) -> list[DefinitionIssue]:
    """Every read of a root that is not certainly written before it, and every Parallel write conflict."""
    return _Flow(definition).run()


class _Flow:
    def __init__(self, definition: WorkflowDefinition):
        self.definition = definition
        self.issues: list[DefinitionIssue] = []
        self.writers: dict[str, list[str]] = {}
        for node in definition.root.walk():
            root = _assign_root(node)
            if root is not None:
                self.writers.setdefault(root, []).append(node.id)

    def run(self) -> list[DefinitionIssue]:
        self.walk(self.definition.root, {}, frozenset())
        return self.issues

    def walk(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        for field, root in _reads(node):
            self.check_read(node, field, root, written, scope)
        handler = getattr(self, f"walk_{node.type.lower()}", None)
        out = handler(node, written, scope) if node.is_control else written
        root = _assign_root(node)
        if root is not None:
            out = {**out, root: node.id}
        return out

    def walk_sequence(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        for child in node.children:
            written = self.walk(child, written, scope)
        return written

    def walk_parallel(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        self.check_conflicts(node)
        outs = [self.walk(child, written, scope) for child in node.children]
        if node.params.get("mode", "all") == "first":
            return _all_of(outs)
        merged = dict(written)
        for out in outs:
            merged.update(out)
        return merged

    def walk_if(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        then = self.walk(node.child("then"), written, scope)  # type: ignore[arg-type]
        otherwise = node.child("else")
        return _all_of([then, self.walk(otherwise, written, scope) if otherwise else written])

    def walk_switch(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        # with no default, no match fails the node: only the cases lead past it
        return _all_of([self.walk(child, written, scope) for child in node.children])

    def walk_foreach(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        self.walk(node.children[0], written, scope | LOOP_VARIABLES)
        return written

    def walk_try(self, node: NodeSpec, written: Written, scope: frozenset[str]) -> Written:
        out = self.walk(node.children[0], written, scope)
        catch = node.child("catch")
        if catch is not None:
            out = _all_of([out, self.walk(catch, written, scope | CATCH_VARIABLES)])
        finally_ = node.child("finally")
        if finally_ is not None:
            out = {**out, **self.walk(finally_, written, scope)}
        return out

    def check_read(self, node: NodeSpec, field: str, root: str, written: Written, scope: frozenset[str]) -> None:
        if root in written or root in ALWAYS_DEFINED or root in scope:
            return
        if root in LOOP_VARIABLES and root not in self.writers:
            message = f"reads '{root}', which is only defined inside a ForEach body"
        elif root in CATCH_VARIABLES and root not in self.writers:
            message = f"reads '{root}', which is only defined inside a Try's catch"
        else:
            others = [writer for writer in self.writers.get(root, ()) if writer != node.id]
            if others:
                names = ", ".join(f"'{writer}'" for writer in others)
                message = (
                    f"reads '$.{root}', but it is not written on every path that leads here "
                    f"(written by node {names}, not always before this node)"
                )
            else:
                message = f"reads '$.{root}', which no node writes before it"
            message += "; to read an optional value, give the ref a default or use '| default(...)' in a template"
        self.issues.append(DefinitionIssue(node.id, field, message))

    def check_conflicts(self, node: NodeSpec) -> None:
        seen: list[tuple[str, str, tuple[Segment, ...]]] = []
        for branch, child in zip(node.roles, node.children, strict=True):
            for writer, path in _shared_writes(child):
                for other_branch, other_writer, other_path in seen:
                    if other_branch != branch and _overlap(path, other_path):
                        self.issues.append(
                            DefinitionIssue(
                                node.id,
                                "branches",
                                f"branches '{other_branch}' and '{branch}' both write "
                                f"'{format_path(min(path, other_path, key=len))}' (nodes '{other_writer}' and "
                                f"'{writer}'); parallel branches must write different paths",
                            )
                        )
                seen.append((branch, writer, path))


def _all_of(outs: list[Written]) -> Written:
    common = set(outs[0]).intersection(*outs[1:])
    return {root: outs[0][root] for root in outs[0] if root in common}


def _assign_root(node: NodeSpec) -> str | None:
    segments = _segments(node.assign_to)
    return segments[0] if segments and isinstance(segments[0], str) else None


def _segments(path: str | None) -> tuple[Segment, ...]:
    if path is None:
        return ()
    try:
        return parse_path(path).segments
    except PathError:
        return ()


def _overlap(a: tuple[Segment, ...], b: tuple[Segment, ...]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _shared_writes(node: NodeSpec) -> Iterator[tuple[str, tuple[Segment, ...]]]:
    """The paths a branch writes to the scope it shares with its siblings (not inside its own loops' bodies)."""
    segments = _segments(node.assign_to)
    if segments:
        yield node.id, segments
    if node.type == "ForEach":
        return
    for child in node.children:
        yield from _shared_writes(child)


def _reads(node: NodeSpec) -> Iterator[tuple[str, str]]:
    """(field, root) for every required read of a node's own settings or params."""
    if node.type == "If":
        yield from _value_reads("condition", node.params.get("condition"), expression=True)
    elif node.type == "Switch":
        for index, condition in enumerate(node.params.get("conditions", ())):
            yield from _value_reads(f"cases[{index}].condition", condition, expression=True)
    elif node.type == "ForEach":
        yield from _value_reads("items", node.params.get("items"), expression=True)
    elif not node.is_control:
        for key, value in node.params.items():
            yield from _value_reads(f"params.{key}", value)


def _value_reads(field: str, value: Any, *, expression: bool = False) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        if SECRET_KEY in value:
            return
        if REF_KEY in value:
            if REF_DEFAULT_KEY not in value:
                segments = _segments(value[REF_KEY])
                if segments and isinstance(segments[0], str):
                    yield field, segments[0]
            return
        for key, item in value.items():
            yield from _value_reads(f"{field}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _value_reads(f"{field}[{index}]", item)
    elif isinstance(value, str) and (expression or is_template(value)):
        try:
            required, _ = template_variables(value, expression=expression)
        except TemplateProblem:
            return  # reported by the structural checks
        for root in sorted(required):
            yield field, root
