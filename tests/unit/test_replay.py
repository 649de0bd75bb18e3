"""The replay of a new definition over recorded runs, as a pure function: no database, no engine."""

from __future__ import annotations

from typing import Any

from postgit import ForEach, If, Node, Sequence, ref
from postgit.definition import WorkflowDefinition
from postgit.replay import Divergence, Recording, replay
from postgit.runs import ControlRecord, LeafRecord


def definition(root: Node) -> WorkflowDefinition:
    return WorkflowDefinition.from_json(root.to_json())


def recording(leaves: dict[str, Any], controls: dict[str, Any] | None = None, **types: str) -> Recording:
    """Completed leaf runs (run key -> output) in this order, control decisions, and the recorded node types."""
    return Recording(
        input={"amount": 500},
        leaves={key: LeafRecord(key, 1, "completed", output=output) for key, output in leaves.items()},
        node_types={key.split("[")[0]: types.get(key.split("[")[0], "Shout") for key in leaves},
        order=list(leaves),
        controls={key: ControlRecord(key, decision=decision) for key, decision in (controls or {}).items()},
    )


def shout(node_id: str, text: Any = "x", **extra: Any) -> Node:
    return Node("Shout", id=node_id, text=text, **extra)


def flow(condition: str = "input.amount > 100", *middle: Node, tail: tuple[Node, ...] = ()) -> Node:
    return Sequence(
        id="root",
        children=[
            shout("fetch", assign_to="$.fetched"),
            *middle,
            If(id="big", condition=condition, then=shout("approve"), else_=shout("skip")),
            shout("notify", text=ref("$.fetched.text")),
            *tail,
        ],
    )


RECORDED = recording(
    {"fetch": {"text": "X!"}, "approve": {"text": "X!"}, "notify": {"text": "X!"}}, {"big": {"branch": "then"}}
)


def test_the_recorded_definition_replays_the_same():
    assert replay(definition(flow()), RECORDED) is None


def test_another_branch_is_a_divergence_at_the_condition():
    assert replay(definition(flow("input.amount > 1000")), RECORDED) == Divergence(
        "big", "big", "decides branch 'else'; the recorded run decided branch 'then'"
    )


def test_a_node_before_recorded_ones_diverges_and_one_after_them_does_not():
    inserted = replay(definition(flow("input.amount > 100", shout("audit"))), RECORDED)
    assert inserted == Divergence(
        "audit", "audit", "runs 'audit' (Shout), which was not recorded, before recorded 'approve'"
    )
    assert replay(definition(flow(tail=(shout("thanks"),))), RECORDED) is None


def test_a_ref_that_no_longer_resolves_diverges_at_its_reader():
    renamed = Sequence(
        id="root",
        children=[
            shout("fetch", assign_to="$.data"),
            If(id="big", condition="input.amount > 100", then=shout("approve"), else_=shout("skip")),
            shout("notify", text=ref("$.data.body")),
        ],
    )
    divergence = replay(definition(renamed), RECORDED)
    assert divergence is not None and divergence.node_id == "notify"
    assert divergence.reason.startswith("its params no longer resolve: field 'params.text': ref ")


def test_a_recorded_node_of_another_type_and_an_early_end_diverge():
    typed = replay(definition(Sequence(id="root", children=[Node("Sleep", id="fetch", seconds=1)])), RECORDED)
    assert typed == Divergence("fetch", "fetch", "is a Sleep now; the recorded run was a Shout")
    shorter = replay(definition(Sequence(id="root", children=[shout("fetch", assign_to="$.fetched")])), RECORDED)
    assert shorter == Divergence("approve", "approve", "the instance completes before the recorded run 'approve'")


def test_loop_items_replay_with_their_own_scope():
    loop = ForEach(id="each", items=ref("$.input.lines"), body=shout("line", text="{{ item }}"))
    recorded = Recording(
        input={"lines": ["a", "b"]},
        leaves={key: LeafRecord(key, 1, "completed", output={"text": key}) for key in ("line[0]", "line[1]")},
        node_types={"line": "Shout"},
        order=["line[0]", "line[1]"],
        controls={"each": ControlRecord("each", decision={"items": ["a", "b"]})},
    )
    assert replay(definition(loop), recorded) is None
    other = ForEach(id="each", items=["a"], body=shout("line", text="{{ item }}"))
    assert replay(definition(other), recorded) == Divergence(
        "each", "each", "decides 1 item; the recorded run decided 2 items"
    )
