"""The decider, without a database: which runs become ready, what control nodes decide, when an instance ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postgit import ForEach, If, Node, Parallel, Sequence, Switch, Try, ref
from postgit.decider import Decider
from postgit.definition import WorkflowDefinition
from postgit.paths import parse_path
from postgit.runs import ControlRecord, LeafRecord, RunView

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def leaf(node_id, **kwargs):
    return Node("Typed", id=node_id, **kwargs)


def definition(node):
    return WorkflowDefinition.from_json(node.to_json())


class Simulation:
    """Decide, complete every ready run (with ``results`` or a default output), commit, repeat."""

    def __init__(self, node, state=None, results=None):
        self.definition = definition(node)
        self.view = RunView({"input": state or {}})
        self.results = results or {}
        self.waves: list[list[str]] = []
        self.decisions: dict[str, object] = {}

    def step(self, decider=None):
        plan = (decider or Decider(self.definition)).decide(self.view, NOW)
        for key, decision in plan.decisions.items():
            self.view.controls[key] = ControlRecord(key, decision=decision)
            self.decisions[key] = decision
        for key, output in plan.completions.items():
            self.view.controls[key] = ControlRecord(key, self.decisions.get(key), True, output)
        self.view.state = plan.state
        return plan

    def complete(self, run, output=None):
        result = self.results.get(run.key, output if output is not None else {"ran": run.key})
        if isinstance(result, Exception):
            error = {"message": str(result), "type": "FatalError", "node_id": run.node.id}
            self.view.leaves[run.key] = LeafRecord(run.key, run.attempt, "failed", error=error)
            return
        self.view.leaves[run.key] = LeafRecord(run.key, run.attempt, "completed", output=result)
        if run.node.assign_to and not run.scope.in_loop:
            self.view.state = parse_path(run.node.assign_to).write(self.view.state, result)

    def run(self, limit=1000, reuse_decider=True):
        decider = Decider(self.definition) if reuse_decider else None
        for _ in range(limit):
            plan = self.step(decider)
            if plan.outcome is not None:
                return plan.outcome
            assert plan.ready, f"stuck: waiting {plan.waiting}"
            self.waves.append([run.key for run in plan.ready])
            for run in plan.ready:
                self.complete(run)
        raise AssertionError("did not finish")


def test_a_sequence_runs_its_leaves_in_order():
    sim = Simulation(Sequence(id="root", children=[leaf("a"), Sequence(id="s", children=[leaf("b"), leaf("c")])]))
    outcome = sim.run()
    assert sim.waves == [["a"], ["b"], ["c"]]
    assert (outcome.kind, outcome.value) == ("done", {"ran": "c"})


def test_parallel_branches_run_at_once_and_output_by_branch_name():
    sim = Simulation(
        Parallel(
            id="p",
            branches={"x": leaf("a", assign_to="$.a"), "y": Sequence(id="s", children=[leaf("b"), leaf("c")])},
            assign_to="$.both",
        )
    )
    outcome = sim.run()
    assert sim.waves == [["a", "b"], ["c"]]
    assert outcome.value == {"x": {"ran": "a"}, "y": {"ran": "c"}}
    assert sim.view.state["both"] == outcome.value and sim.view.state["a"] == {"ran": "a"}


def test_parallel_fail_fast_cancels_siblings():
    sim = Simulation(
        Parallel(id="p", branches={"x": leaf("a"), "y": Sequence(id="s", children=[leaf("b"), leaf("c")])}),
        results={"a": RuntimeError("boom")},
    )
    plan = sim.step()
    assert [run.key for run in plan.ready] == ["a", "b"]
    sim.complete(plan.ready[0])
    plan = sim.step()
    assert plan.ready == [] and plan.outcome.kind == "failed"
    assert plan.outcome.value["branch"] == "x" and plan.outcome.value["message"] == "boom"


def test_parallel_wait_all_lets_every_branch_finish_then_fails():
    sim = Simulation(
        Parallel(
            id="p",
            on_failure="wait_all",
            branches={"x": leaf("a"), "y": Sequence(id="s", children=[leaf("b"), leaf("c")])},
        ),
        results={"a": RuntimeError("boom")},
    )
    outcome = sim.run()
    assert sim.waves == [["a", "b"], ["c"]]
    assert outcome.kind == "failed" and outcome.value["branch"] == "x"


def test_parallel_first_completes_with_the_first_branch_and_records_it():
    node = Parallel(
        id="p", mode="first", branches={"slow": Sequence(id="s", children=[leaf("a"), leaf("b")]), "fast": leaf("c")}
    )
    sim = Simulation(node)
    plan = sim.step()
    assert [run.key for run in plan.ready] == ["a", "c"]
    sim.complete(plan.ready[1])  # c first
    plan = sim.step()
    assert plan.outcome.value == {"fast": {"ran": "c"}} and sim.decisions["p"] == {"winner": "fast"}
    # a later completion of the other branch changes nothing: the winner is recorded
    sim.complete(next(r for r in Decider(sim.definition).decide(RunView({"input": {}}), NOW).ready if r.key == "a"))
    assert sim.step().outcome.value == {"fast": {"ran": "c"}}


def test_if_decides_once_from_the_state_and_keeps_its_decision():
    node = Sequence(id="root", children=[If(id="big", condition="input.amount > 100", then=leaf("a"), else_=leaf("b"))])
    sim = Simulation(node, state={"amount": 500})
    plan = sim.step()
    assert [run.key for run in plan.ready] == ["a"] and sim.decisions["big"] == {"branch": "then"}
    sim.view.state = {"input": {"amount": 1}}  # the state changes; the decision does not
    assert [run.key for run in sim.step().ready] == ["a"]


def test_if_without_else_and_a_false_condition_completes():
    sim = Simulation(If(id="big", condition="input.amount > 100", then=leaf("a")), state={"amount": 1})
    assert sim.run().kind == "done" and sim.waves == []


def test_a_condition_that_fails_fails_the_node():
    sim = Simulation(If(id="big", condition="input.missing.deeper > 1", then=leaf("a")))
    outcome = sim.run()
    assert outcome.kind == "failed" and outcome.value["node_id"] == "big" and outcome.value["type"] == "ConditionError"


def test_switch_first_match_wins_else_default_else_failure():
    def switch(default=None):
        return Switch(id="sw", cases=[("input.n > 10", leaf("big")), ("input.n > 5", leaf("mid"))], default=default)

    sim = Simulation(switch(), state={"n": 50})
    sim.run()
    assert sim.waves == [["big"]] and sim.decisions["sw"] == {"case": 0}
    sim = Simulation(switch(leaf("small")), state={"n": 1})
    sim.run()
    assert sim.waves == [["small"]]
    outcome = Simulation(switch(), state={"n": 1}).run()
    assert outcome.kind == "failed" and outcome.value["type"] == "NoChoiceMatched"
    assert "no case of Switch 'sw' matched" in outcome.value["message"]


def test_foreach_caps_concurrency_and_collects_outputs_in_order():
    node = ForEach(
        id="each", items=ref("$.input.xs"), body=leaf("one", x="{{ item }}"), concurrency=2, assign_to="$.out"
    )
    sim = Simulation(node, state={"xs": ["a", "b", "c", "d", "e"]})
    outcome = sim.run()
    assert sim.waves == [["one[0]", "one[1]"], ["one[2]", "one[3]"], ["one[4]"]]
    assert outcome.value == [{"ran": f"one[{i}]"} for i in range(5)]
    assert sim.view.state["out"] == outcome.value
    assert sim.decisions["each"] == {"items": ["a", "b", "c", "d", "e"]}


def test_foreach_items_are_in_scope_and_body_writes_stay_in_their_item():
    body = Sequence(id="body", children=[leaf("fetch", x="{{ item }}", assign_to="$.got"), leaf("use", y=ref("$.got"))])
    node = ForEach(id="each", items="{{ input.xs }}", body=body)
    sim = Simulation(node, state={"xs": [1, 2]}, results={"fetch[0]": {"v": 0}, "fetch[1]": {"v": 1}})
    plan = sim.step()
    assert [(run.key, run.scope.variables(sim.view.state)["item"]) for run in plan.ready] == [
        ("fetch[0]", 1),
        ("fetch[1]", 2),
    ]
    for run in plan.ready:
        sim.complete(run)
    plan = sim.step()
    assert [(run.key, run.scope.variables(sim.view.state)["got"]) for run in plan.ready] == [
        ("use[0]", {"v": 0}),
        ("use[1]", {"v": 1}),
    ]
    assert "got" not in sim.view.state


def test_foreach_over_an_empty_list_completes_with_an_empty_list():
    sim = Simulation(ForEach(id="each", items=[], body=leaf("one")))
    assert sim.run().value == []


def test_foreach_tolerated_failures_complete_with_nulls_and_errors():
    node = ForEach(id="each", items=[1, 2, 3, 4], body=leaf("one"), tolerated_failures=1)
    sim = Simulation(node, results={"one[2]": RuntimeError("bad item")})
    outcome = sim.run()
    assert outcome.value["results"] == [{"ran": "one[0]"}, {"ran": "one[1]"}, None, {"ran": "one[3]"}]
    assert outcome.value["errors"] == [
        {"index": 2, "error": {"message": "bad item", "type": "FatalError", "node_id": "one"}}
    ]


@pytest.mark.parametrize(
    ("tolerated", "failing", "ok"), [(0, 1, False), ("25%", 1, True), ("25%", 2, False), (4, 4, True)]
)
def test_foreach_fails_past_its_tolerance(tolerated, failing, ok):
    node = ForEach(id="each", items=[1, 2, 3, 4], body=leaf("one"), tolerated_failures=tolerated, concurrency=4)
    outcome = Simulation(node, results={f"one[{i}]": RuntimeError(f"bad {i}") for i in range(failing)}).run()
    assert (outcome.kind == "done") is ok
    if not ok:
        assert outcome.value["type"] == "ItemsFailed" and outcome.value["node_id"] == "each"


def test_nested_foreach_keys_nest():
    inner = ForEach(id="inner", items="{{ item.parts }}", body=leaf("part"))
    node = ForEach(id="outer", items=[{"parts": [1, 2]}, {"parts": [3]}], body=inner)
    sim = Simulation(node)
    outcome = sim.run()
    assert sorted(key for wave in sim.waves for key in wave) == ["part[0][0]", "part[0][1]", "part[1][0]"]
    assert outcome.value == [[{"ran": "part[0][0]"}, {"ran": "part[0][1]"}], [{"ran": "part[1][0]"}]]


def test_try_catch_gets_the_error_and_finally_always_runs():
    node = Try(id="t", body=leaf("risky"), catch=leaf("handle", e="{{ error.message }}"), finally_=leaf("cleanup"))
    sim = Simulation(node, results={"risky": RuntimeError("card declined")})
    plan = sim.step()
    sim.complete(plan.ready[0])
    plan = sim.step()
    assert [run.key for run in plan.ready] == ["handle"]
    assert plan.ready[0].scope.variables(sim.view.state)["error"]["message"] == "card declined"
    sim.complete(plan.ready[0])
    assert [run.key for run in sim.step().ready] == ["cleanup"]
    assert sim.run().kind == "done"


def test_an_error_escaping_catch_fails_and_finally_still_runs():
    node = Try(id="t", body=leaf("risky"), catch=leaf("handle"), finally_=leaf("cleanup"))
    sim = Simulation(node, results={"risky": RuntimeError("x"), "handle": RuntimeError("catch failed too")})
    outcome = sim.run()
    assert sim.waves == [["risky"], ["handle"], ["cleanup"]]
    assert outcome.kind == "failed" and outcome.value["message"] == "catch failed too"


def test_foreach_inside_parallel_inside_try():
    loop = ForEach(id="each", items=[1, 2, 3], body=leaf("one"), concurrency=3)
    node = Try(id="t", body=Parallel(id="p", branches={"loop": loop, "side": leaf("side")}), catch=leaf("recover"))
    sim = Simulation(node, results={"one[1]": RuntimeError("item failed")})
    outcome = sim.run()
    assert sim.waves[0] == ["one[0]", "one[1]", "one[2]", "side"]
    assert sim.waves[-1] == ["recover"] and outcome.kind == "done"


def test_retries_and_suspensions_wait_until_due():
    sim = Simulation(Sequence(id="root", children=[leaf("a"), leaf("b")]))
    error = {"message": "try again", "type": "RetryableError", "node_id": "a"}
    sim.view.leaves["a"] = LeafRecord("a", 1, "failed", error=error, due_at=NOW + timedelta(seconds=5))
    plan = sim.step()
    assert plan.ready == [] and plan.waiting[0].due_at == NOW + timedelta(seconds=5)
    sim.view.leaves["a"] = LeafRecord("a", 1, "failed", error=error, due_at=NOW - timedelta(seconds=1))
    plan = sim.step()
    assert [(run.key, run.attempt) for run in plan.ready] == [("a", 2)]
    sim.view.leaves["a"] = LeafRecord("a", 2, "suspended", wait_event="go", wait_key="k")
    plan = sim.step()
    assert plan.waiting[0].event == "go" and plan.waiting[0].event_key == "k" and plan.waiting[0].due_at is None


def test_a_fresh_decider_decides_what_a_long_lived_one_did():
    node = ForEach(
        id="each", items=list(range(30)), body=Sequence(id="s", children=[leaf("a"), leaf("b")]), concurrency=4
    )
    kept = Simulation(node)
    kept.run(reuse_decider=True)
    fresh = Simulation(node)
    fresh.run(reuse_decider=False)
    assert kept.waves == fresh.waves
