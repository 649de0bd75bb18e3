"""Deploy-time structural checks of the control-flow nodes, the engine leaves and the workflow wrapper.

Every bad definition is refused with a DefinitionError whose issues name the node id and the field, never with
another exception; good ones pass. The data-flow check has its own tests (test_dataflow.py).
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgit import (
    ForEach,
    If,
    Node,
    Parallel,
    Sequence,
    SubWorkflow,
    Switch,
    Try,
    WaitForEvent,
    Workflow,
    ref,
)
from postgit.definition import CONTROL_TYPES, ENGINE_TYPES, MAX_FOREACH_ITEMS, WorkflowDefinition
from postgit.errors import DefinitionError
from postgit.validation import (
    MAX_CONCURRENCY,
    MAX_DEPTH,
    MAX_JSON_DEPTH,
    MAX_RETENTION,
    MAX_WORKFLOW_TIMEOUT,
    validate_definition,
)
from tests.unit.flow_support import accept, issues_of, located, only_issue, step, step_registry

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same cases on every run, so that a failure here is never a fluke
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def registry():
    return step_registry()


def parallel(node_id="p", branches=None, **extra):
    return {"id": node_id, "type": "Parallel", "branches": branches or {"a": step("a"), "b": step("b")}, **extra}


def if_(node_id="i", condition="input.amount > 100", then=None, **extra):
    return {"id": node_id, "type": "If", "condition": condition, "then": then or step("t"), **extra}


def switch(node_id="s", cases=None, **extra):
    cases = cases if cases is not None else [{"condition": "input.kind == 'a'", "node": step("c0")}]
    return {"id": node_id, "type": "Switch", "cases": cases, **extra}


def foreach(node_id="f", items="{{ input.lines }}", body=None, **extra):
    return {"id": node_id, "type": "ForEach", "items": items, "body": body or step("b"), **extra}


def try_(node_id="t", body=None, catch=None, **extra):
    return {"id": node_id, "type": "Try", "body": body or step("b"), "catch": catch or step("c"), **extra}


def wait(node_id="w", **params):
    return {"id": node_id, "type": "WaitForEvent", "params": {"event": "approved", **params}}


def sub(node_id="sw", **params):
    return {"id": node_id, "type": "SubWorkflow", "params": {"workflow": "child", **params}}


def without(raw, key):
    return {k: v for k, v in raw.items() if k != key}


# --- good definitions pass -----------------------------------------------------------------------------------


def order_workflow():
    """Every control node and engine leaf, built with the SDK, as in the README."""
    return Workflow(
        Sequence(
            id="order",
            children=[
                Node("Step", id="charge", value=ref("$.input.amount"), assign_to="$.charge"),
                Try(
                    id="fulfil",
                    body=Sequence(
                        id="after_charge",
                        children=[
                            Parallel(
                                id="notify",
                                branches={
                                    "customer": Node("Step", id="mail", text="{{ charge.id }}", assign_to="$.mail"),
                                    "warehouse": Node("Step", id="warehouse", value=ref("$.charge.id")),
                                },
                                on_failure="wait_all",
                            ),
                            WaitForEvent(
                                id="approval", event="order.approved", key="{{ input.order_id }}", timeout=86_400
                            ),
                            If(
                                id="big",
                                condition="input.amount > 100",
                                then=Node("Step", id="review"),
                                else_=Node("Step", id="fast"),
                            ),
                            Switch(
                                id="carrier",
                                cases=[("input.country == 'FR'", Node("Step", id="laposte"))],
                                default=Node("Step", id="ups"),
                            ),
                            ForEach(
                                id="ship",
                                items=ref("$.input.lines"),
                                body=Node("Step", id="ship_line", text="{{ item.sku }} #{{ index }}"),
                                concurrency=4,
                                tolerated_failures="5%",
                                assign_to="$.shipped",
                            ),
                            SubWorkflow(
                                id="invoice",
                                workflow="invoice",
                                input={"order": ref("$.input.order_id"), "lines": ref("$.shipped")},
                                on_parent_cancel="abandon",
                                wait=False,
                                version=2,
                            ),
                        ],
                    ),
                    catch=Node("Step", id="refund", text="{{ error.message }}", value=ref("$.charge.id")),
                    finally_=Node("Step", id="log"),
                ),
            ],
        ),
        timeout=7 * 86_400,
        input_schema={
            "type": "object",
            "required": ["order_id", "amount"],
            "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
        },
    )


def test_every_control_node_built_with_the_sdk_passes_and_round_trips(registry):
    raw = order_workflow().to_json()
    definition = accept(raw, registry)
    assert definition.to_json() == raw
    assert validate_definition(json.loads(json.dumps(raw)), registry) == definition
    assert definition.timeout == 7 * 86_400
    assert definition.input_schema["required"] == ["order_id", "amount"]
    assert definition.node_types() == {"Step"}
    notify = definition.nodes["notify"]
    assert notify.roles == ("customer", "warehouse")
    assert notify.params == {"on_failure": "wait_all"}
    assert definition.nodes["big"].roles == ("then", "else")
    assert definition.nodes["carrier"].roles == ("case", "default")
    assert definition.nodes["carrier"].params["conditions"] == ["input.country == 'FR'"]
    assert definition.nodes["ship"].params == {
        "items": {"$ref": "$.input.lines"},
        "concurrency": 4,
        "tolerated_failures": "5%",
    }
    assert definition.nodes["fulfil"].roles == ("body", "catch", "finally")
    assert definition.nodes["approval"].params == {
        "event": "order.approved",
        "key": "{{ input.order_id }}",
        "timeout": 86_400,
    }
    assert definition.parents["ship_line"] == "ship"
    assert "ship_line" in definition.in_loop


@pytest.mark.parametrize(
    "raw",
    [
        parallel(),
        parallel(onFailure="wait_all", mode="first"),
        parallel(onFailure="fail_fast", mode="all", branches={"x.y-z_1": step("a"), "_": step("b")}),
        parallel(branches={"only": step("a")}),
        if_(),
        if_(condition="{{ input.amount > 100 }}", **{"else": step("e")}),
        if_(condition="input.flag", **{"else": None}),
        switch(),
        switch(
            cases=[{"condition": "input.n < 0", "node": step("neg")}, {"condition": "true", "node": step("pos")}],
            default=step("d"),
        ),
        foreach(),
        foreach(items=[1, 2, 3]),
        foreach(items=[]),
        foreach(items={"$ref": "$.input.lines"}),
        foreach(items={"$ref": "$.input.lines", "default": []}),
        foreach(items="{{ input.lines | selectattr('ok') | list }}"),
        foreach(items=list(range(MAX_FOREACH_ITEMS))),
        foreach(concurrency=1, toleratedFailures=0),
        foreach(concurrency=MAX_CONCURRENCY, toleratedFailures=3),
        foreach(toleratedFailures="0%"),
        foreach(toleratedFailures="12.5%"),
        foreach(toleratedFailures="100%"),
        try_(),
        try_(**{"finally": step("f")}),
        {"id": "t", "type": "Try", "body": step("b"), "finally": step("f")},
        {"id": "t", "type": "Try", "body": step("b"), "catch": None, "finally": step("f")},
        wait(),
        wait(key="{{ input.order_id }}", timeout=0.5),
        wait(timeout=366 * 86_400),
        sub(),
        sub(input={"a": 1}, version=1, wait=False, on_parent_cancel="abandon"),
        sub(on_parent_cancel="cancel", input={"$ref": "$.input"}),
        parallel(assignTo="$.both"),
        foreach(assignTo="$.results[0]"),
    ],
    ids=lambda raw: f"{raw['type']}-{sorted(raw)}",
)
def test_good_raw_control_nodes_pass(registry, raw):
    definition = accept(raw, registry)
    assert WorkflowDefinition.from_json(definition.to_json()) == definition


@pytest.mark.parametrize(
    "node",
    [
        Parallel(id="p", branches={"a": Node("Step", id="a")}, mode="first"),
        If(id="i", condition="input.x", then=Node("Step", id="t")),
        Switch(id="s", cases=[("input.x == 1", Node("Step", id="one")), ("input.x == 2", Node("Step", id="two"))]),
        ForEach(id="f", items=[{"sku": "a"}], body=Node("Step", id="b", value=ref("$.item.sku"))),
        ForEach(id="f", items="{{ input.lines }}", body=Node("Step", id="b"), tolerated_failures=2),
        Try(id="t", body=Node("Step", id="b"), finally_=Node("Step", id="f")),
        WaitForEvent(id="w", event="done"),
        SubWorkflow(id="s", workflow="child.v2_x-y"),
    ],
    ids=repr,
)
def test_good_sdk_nodes_pass(registry, node):
    raw = node.to_json()
    assert accept(raw, registry).to_json() == raw


# --- Parallel --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("branches", ["absent", None, {}, [], "a", [step("a")], 5, True])
def test_parallel_needs_a_non_empty_object_of_branches(registry, branches):
    raw = parallel() | {"branches": branches} if branches != "absent" else without(parallel(), "branches")
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("p", "branches")
    assert "non-empty object of branch name -> node" in issue.message


@pytest.mark.parametrize("name", ["", "a b", "-a", ".a", "a/b", "ü", "a\n", "x" * 101, "é"])
def test_bad_branch_names(registry, name):
    issue = only_issue(parallel(branches={"ok": step("a"), name: step("b")}), registry)
    assert (issue.node_id, issue.field) == ("p", f"branches.{name[:100]}")
    assert "a branch name is 1-100 letters" in issue.message


@pytest.mark.parametrize("name", [1, None, 2.5, True])
def test_branch_names_that_are_not_strings_are_refused_not_a_crash(registry, name):
    issue = only_issue(parallel(branches={name: step("b")}), registry)
    assert (issue.node_id, issue.field) == ("p", f"branches.{name}")


def test_sdk_branch_name_that_is_not_a_string(registry):
    issue = only_issue(Parallel(id="p", branches={7: Node("Step", id="a")}), registry)
    assert (issue.node_id, issue.field) == ("p", "branches.7")


@pytest.mark.parametrize("child", ["a", 5, None, [step("a")], True])
def test_a_branch_must_be_a_node(registry, child):
    issue = only_issue(parallel(branches={"a": step("a"), "b": child}), registry)
    assert (issue.node_id, issue.field) == ("p", "branches.b")
    assert f"a child of 'p' must be a JSON object, got {type(child).__name__}" in issue.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("onFailure", "fail-fast"),
        ("onFailure", "FAIL_FAST"),
        ("onFailure", "all"),
        ("onFailure", 1),
        ("onFailure", True),
        ("onFailure", ["fail_fast"]),
        ("onFailure", {"fail_fast": 1}),
        ("mode", "any"),
        ("mode", ""),
        ("mode", "wait_all"),
        ("mode", 0),
        ("mode", ["all"]),
        ("onFailure", None),  # the engine would read a null as "not fail_fast"
        ("mode", None),
    ],
)
def test_bad_parallel_settings(registry, key, value):
    issue = only_issue(parallel(**{key: value}), registry)
    assert (issue.node_id, issue.field) == ("p", key)
    assert "must be one of" in issue.message


@pytest.mark.parametrize(("on_failure", "mode"), [("fast", "all"), ("fail_fast", "last")])
def test_bad_sdk_parallel_settings(registry, on_failure, mode):
    node = Parallel(id="p", branches={"a": Node("Step", id="a")}, on_failure=on_failure, mode=mode)
    issue = only_issue(node, registry)
    assert issue.node_id == "p"
    assert issue.field in ("onFailure", "mode")


@pytest.mark.parametrize("key", ["children", "on_failure", "branch", "cases"])
def test_unknown_parallel_keys(registry, key):
    issue = only_issue(parallel(**{key: []}), registry)
    assert (issue.node_id, issue.field) == ("p", key)
    assert "unknown key; a Parallel has assignTo, branches, id, mode, onFailure, type" in issue.message


# --- If --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("then", [None, "absent"])
def test_if_needs_then(registry, then):
    raw = if_()
    if then is None:
        raw["then"] = None
    else:
        del raw["then"]
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("i", "then")
    assert "an If needs a 'then' node" in issue.message


@pytest.mark.parametrize(("key", "value"), [("then", "t"), ("then", []), ("else", 5), ("else", ["e"])])
def test_if_branches_must_be_nodes(registry, key, value):
    issue = only_issue(if_() | {key: value}, registry)
    assert (issue.node_id, issue.field) == ("i", key)
    assert "a child of 'i' must be a JSON object" in issue.message


@pytest.mark.parametrize("condition", [None, "", "   ", "\n", 5, True, 0, [], ["x"], {"$ref": "$.input.flag"}])
def test_if_condition_must_be_an_expression(registry, condition):
    issue = only_issue(if_(condition=condition), registry)
    assert (issue.node_id, issue.field) == ("i", "condition")
    assert "must be an expression such as 'input.amount > 100'" in issue.message


def test_if_without_condition(registry):
    issue = only_issue(without(if_(), "condition"), registry)
    assert (issue.node_id, issue.field) == ("i", "condition")


@pytest.mark.parametrize(
    "condition",
    [
        "input.amount >",
        "input.amount > > 1",
        "{{ input.amount",
        "a b",
        "{{ a }} and {{ b }}",
        "{% if input.x %}yes{% endif %}",
        "input.x(",
        "'unterminated",
        "input.x }}",
    ],
)
def test_if_condition_that_does_not_parse(registry, condition):
    issue = only_issue(if_(condition=condition), registry)
    assert (issue.node_id, issue.field) == ("i", "condition")
    assert "expression does not parse" in issue.message


@pytest.mark.parametrize(
    "condition",
    ["not " * 250 + "input.x", " + ".join(["input.a"] * 250), "(" * 300 + "input" + ")" * 300, "[" * 300 + "]" * 300],
)
def test_if_condition_nested_too_deeply_is_refused_not_a_crash(registry, condition):
    issue = only_issue(if_(condition=condition), registry)
    assert (issue.node_id, issue.field) == ("i", "condition")
    assert "nested too deeply" in issue.message


@pytest.mark.parametrize("condition", ["", "x ==", 5])
def test_sdk_if_with_a_bad_condition(registry, condition):
    issue = only_issue(If(id="i", condition=condition, then=Node("Step", id="t")), registry)
    assert (issue.node_id, issue.field) == ("i", "condition")


# --- Switch ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cases", [None, [], {}, "x", 5, {"condition": "true", "node": step("a")}])
def test_switch_needs_a_non_empty_list_of_cases(registry, cases):
    issue = only_issue(switch() | {"cases": cases}, registry)
    assert (issue.node_id, issue.field) == ("s", "cases")
    assert "non-empty list" in issue.message


def test_switch_without_cases(registry):
    issue = only_issue(without(switch(), "cases"), registry)
    assert (issue.node_id, issue.field) == ("s", "cases")


@pytest.mark.parametrize(
    "case",
    [
        "true",
        5,
        None,
        ["true", step("x")],
        {"condition": "true"},
        {"node": step("x")},
        {"condition": "true", "node": step("x"), "else": step("y")},
        {"when": "true", "node": step("x")},
        {"condition": "true", "then": step("x")},
        {},
    ],
)
def test_malformed_switch_cases(registry, case):
    raw = switch(cases=[{"condition": "input.a", "node": step("ok")}, case])
    assert ("s", "cases[1]") in located(raw, registry)
    issue = next(issue for issue in issues_of(raw, registry) if issue.field == "cases[1]")
    assert 'must be {"condition": "<expression>", "node": <node>}' in issue.message


@pytest.mark.parametrize("node", [None, "x", 5, [step("x")]])
def test_a_switch_case_node_must_be_a_node(registry, node):
    issue = only_issue(switch(cases=[{"condition": "true", "node": node}]), registry)
    assert (issue.node_id, issue.field) == ("s", "cases")
    assert "a child of 's' must be a JSON object" in issue.message


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("", "must be an expression"),
        (None, "must be an expression"),
        (7, "must be an expression"),
        (["true"], "must be an expression"),
        ("input.kind ==", "expression does not parse"),
        ("{% if x %}", "expression does not parse"),
    ],
)
def test_bad_switch_conditions(registry, condition, message):
    raw = switch(
        cases=[
            {"condition": "input.kind == 'a'", "node": step("c0")},
            {"condition": condition, "node": step("c1")},
        ]
    )
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("s", "cases[1].condition")
    assert message in issue.message


@pytest.mark.parametrize("default", ["d", 5, [step("d")], True])
def test_switch_default_must_be_a_node(registry, default):
    issue = only_issue(switch(default=default), registry)
    assert (issue.node_id, issue.field) == ("s", "default")


def test_sdk_switch_with_a_bad_condition(registry):
    node = Switch(id="s", cases=[("input.a", Node("Step", id="a")), ("input.b ==", Node("Step", id="b"))])
    issue = only_issue(node, registry)
    assert (issue.node_id, issue.field) == ("s", "cases[1].condition")


def test_sdk_switch_with_no_cases(registry):
    issue = only_issue(Switch(id="s", cases=[], default=Node("Step", id="d")), registry)
    assert (issue.node_id, issue.field) == ("s", "cases")


# --- ForEach ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "items",
    [None, 5, True, "input.lines", "lines", {"lines": [1]}, {"$secret": "LINES"}, 1.5, {}],
)
def test_foreach_items_must_be_a_ref_an_expression_or_a_list(registry, items):
    issue = only_issue(foreach(items=items), registry)
    assert (issue.node_id, issue.field) == ("f", "items")
    assert "must be a ref, an expression such as '{{ input.lines }}', or a list" in issue.message


def test_foreach_without_items(registry):
    issue = only_issue(without(foreach(), "items"), registry)
    assert (issue.node_id, issue.field) == ("f", "items")


@pytest.mark.parametrize(
    "items",
    ["{{ input.lines", "{{ input.lines ) }}", "{{ a }} {{ b }}", "{% for x in y %}{{ x }}{% endfor %}", "{{ }}"],
)
def test_foreach_items_expression_that_does_not_parse(registry, items):
    issue = only_issue(foreach(items=items), registry)
    assert (issue.node_id, issue.field) == ("f", "items")
    assert "does not parse" in issue.message
    assert "write a ref, a list, or one expression such as '{{ input.lines }}'" in issue.message


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"$ref": "input.lines"}, "must start with '$'"),
        ({"$ref": "$.lines[*]"}, "is not a valid path"),
        ({"$ref": 5}, "is not a path"),
        ({"$ref": "$.lines", "fallback": []}, 'with an optional "default", and nothing else'),
    ],
)
def test_foreach_items_bad_ref(registry, items, message):
    issue = only_issue(foreach(items=items), registry)
    assert (issue.node_id, issue.field) == ("f", "items")
    assert message in issue.message


def test_foreach_over_too_many_literal_items(registry):
    issue = only_issue(foreach(items=[0] * (MAX_FOREACH_ITEMS + 1)), registry)
    assert (issue.node_id, issue.field) == ("f", "items")
    assert issue.message == f"has {MAX_FOREACH_ITEMS + 1} items; the limit is {MAX_FOREACH_ITEMS}"


@pytest.mark.parametrize("concurrency", [0, -1, MAX_CONCURRENCY + 1, True, False, "5", 2.5, 5.0, [5], None])
def test_bad_foreach_concurrency(registry, concurrency):
    raw = foreach(concurrency=concurrency)
    if concurrency is None:  # null means the default
        assert accept(raw, registry).nodes["f"].params["concurrency"] is None
        return
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("f", "concurrency")
    assert f"must be a whole number from 1 to {MAX_CONCURRENCY}" in issue.message


@pytest.mark.parametrize(
    "tolerated",
    [-1, "150%", "100.5%", "abc", True, False, 1.5, "5", "5 %", " 5%", "5%\n", "-5%", "%", "5%%", [1], {"n": 1}],
)
def test_bad_foreach_tolerated_failures(registry, tolerated):
    issue = only_issue(foreach(toleratedFailures=tolerated), registry)
    assert (issue.node_id, issue.field) == ("f", "toleratedFailures")
    assert "must be a count (0 or more) or a percentage such as '5%'" in issue.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 10_001}, "concurrency"),
        ({"tolerated_failures": "150%"}, "toleratedFailures"),
        ({"tolerated_failures": -1}, "toleratedFailures"),
    ],
)
def test_bad_sdk_foreach_settings(registry, kwargs, field):
    node = ForEach(id="f", items=[1], body=Node("Step", id="b"), **kwargs)
    issue = only_issue(node, registry)
    assert (issue.node_id, issue.field) == ("f", field)


@pytest.mark.parametrize("body", [None, "absent", "b", 5, [step("b")]])
def test_foreach_needs_a_body_node(registry, body):
    raw = foreach()
    if body == "absent":
        del raw["body"]
    else:
        raw["body"] = body
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("f", "body")


# --- Try -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, "absent"])
def test_try_needs_a_body(registry, body):
    raw = try_()
    if body is None:
        raw["body"] = None
    else:
        del raw["body"]
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("t", "body")
    assert "a Try needs a 'body' node" in issue.message


def test_try_needs_catch_or_finally(registry):
    for raw in (
        without(try_(), "catch"),
        {"id": "t", "type": "Try", "body": step("b"), "catch": None, "finally": None},
    ):
        issue = only_issue(raw, registry)
        assert (issue.node_id, issue.field) == ("t", "catch")
        assert "a Try needs a 'catch' node, a 'finally' node, or both" in issue.message


def test_sdk_try_with_neither_catch_nor_finally(registry):
    issue = only_issue(Try(id="t", body=Node("Step", id="b")), registry)
    assert (issue.node_id, issue.field) == ("t", "catch")


@pytest.mark.parametrize(("key", "value"), [("body", "b"), ("catch", 5), ("finally", [step("f")]), ("catch", True)])
def test_try_parts_must_be_nodes(registry, key, value):
    issue = only_issue(try_() | {key: value}, registry)
    assert (issue.node_id, issue.field) == ("t", key)


@pytest.mark.parametrize("key", ["finally_", "else", "except"])
def test_unknown_try_keys(registry, key):
    issue = only_issue(try_(**{key: step("x")}), registry)
    assert (issue.node_id, issue.field) == ("t", key)
    assert "unknown key" in issue.message


# --- every control node --------------------------------------------------------------------------------------

CONTROL_EXAMPLES = {
    "Sequence": {"id": "n", "type": "Sequence", "children": [step("a")]},
    "Parallel": parallel("n"),
    "If": if_("n"),
    "Switch": switch("n"),
    "ForEach": foreach("n"),
    "Try": try_("n"),
}


def test_every_control_type_has_an_example():
    assert set(CONTROL_EXAMPLES) == CONTROL_TYPES


@pytest.mark.parametrize("node_type", sorted(CONTROL_TYPES))
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("params", {}, "takes no params"),
        ("params", {"count": 1}, "takes no params"),
        ("retry", {"maxAttempts": 3}, "is a control-flow node: set retry on the steps inside it"),
        ("timeout", 30, "is a control-flow node: set timeout on the steps inside it"),
        ("Retry", 1, "unknown key"),
        ("assign_to", "$.x", "unknown key"),
    ],
)
def test_control_nodes_take_no_params_retry_or_timeout(registry, node_type, key, value, message):
    raw = {**CONTROL_EXAMPLES[node_type], key: value}
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("n", key)
    assert message in issue.message


@pytest.mark.parametrize("node_type", sorted(CONTROL_TYPES))
@pytest.mark.parametrize(
    ("assign_to", "message"), [("result", "must start with '$'"), ("$", "whole state"), (5, "is not a path")]
)
def test_control_nodes_assign_to_is_checked(registry, node_type, assign_to, message):
    issue = only_issue({**CONTROL_EXAMPLES[node_type], "assignTo": assign_to}, registry)
    assert (issue.node_id, issue.field) == ("n", "assignTo")
    assert message in issue.message


@pytest.mark.parametrize("node_type", [["Sequence"], {"Sequence": 1}, 5, None, True])
def test_a_type_that_is_not_a_string_is_refused_not_a_crash(registry, node_type):
    raw = {"id": "n", "type": node_type, "children": [step("a")]}
    assert ("n", "type") in located(raw, registry)


@pytest.mark.parametrize("node_type", ["sequence", "PARALLEL", "Foreach", "For Each"])
def test_control_type_names_are_exact(registry, node_type):
    assert ("n", "type") in located({"id": "n", "type": node_type}, registry)


# --- engine leaves -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "params.event", "Field required"),
        ({"event": "postgit.x"}, "params.event", "reserved for Postgit itself"),
        ({"event": "postgit.child.done"}, "params.event", "reserved"),
        ({"event": ""}, "params.event", "should match pattern"),
        ({"event": "a b"}, "params.event", "should match pattern"),
        ({"event": ".hidden"}, "params.event", "should match pattern"),
        ({"event": "x" * 201}, "params.event", "should match pattern"),
        ({"event": "a\n"}, "params.event", "should match pattern"),
        ({"event": 5}, "params.event", "valid string"),
        ({"event": None}, "params.event", "valid string"),
        ({"event": "ok", "timeout": 0}, "params.timeout", "greater than 0"),
        ({"event": "ok", "timeout": -5}, "params.timeout", "greater than 0"),
        ({"event": "ok", "timeout": 366 * 86_400 + 1}, "params.timeout", "less than or equal"),
        ({"event": "ok", "timeout": "soon"}, "params.timeout", "valid number"),
        ({"event": "ok", "key": ""}, "params.key", "at least 1 character"),
        ({"event": "ok", "key": "k" * 201}, "params.key", "at most 200 characters"),
        ({"event": "ok", "name": "x"}, "params.name", "Extra inputs are not permitted"),
    ],
)
def test_bad_wait_for_event(registry, params, field, message):
    issue = only_issue({"id": "w", "type": "WaitForEvent", "params": params}, registry)
    assert (issue.node_id, issue.field) == ("w", field)
    assert message in issue.message


def test_wait_for_event_without_params(registry):
    issue = only_issue({"id": "w", "type": "WaitForEvent"}, registry)
    assert (issue.node_id, issue.field) == ("w", "params.event")


@pytest.mark.parametrize("params", [None, [], "approved"])
def test_engine_leaf_params_must_be_an_object(registry, params):
    for node_type in sorted(ENGINE_TYPES):
        issue = only_issue({"id": "w", "type": node_type, "params": params}, registry)
        assert (issue.node_id, issue.field) == ("w", "params")


@pytest.mark.parametrize("node_type", sorted(ENGINE_TYPES))
@pytest.mark.parametrize(("key", "value"), [("retry", {"maxAttempts": 3}), ("timeout", 30), ("retry", {})])
def test_engine_leaves_take_no_node_level_retry_or_timeout(registry, node_type, key, value):
    raw = (wait() if node_type == "WaitForEvent" else sub()) | {key: value}
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == (raw["id"], key)
    assert f"{node_type} is run by the engine and takes no {key}" in issue.message
    if node_type == "WaitForEvent" and key == "timeout":
        assert "params.timeout" in issue.message


@pytest.mark.parametrize("node_type", sorted(ENGINE_TYPES))
def test_engine_leaves_have_no_children(registry, node_type):
    raw = (wait() if node_type == "WaitForEvent" else sub()) | {"children": [step("a")]}
    issue = only_issue(raw, registry)
    assert issue.field == "children"
    assert "is not a control-flow node" in issue.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"event": "postgit.child"}, "params.event"),
        ({"event": "no spaces"}, "params.event"),
        ({"event": "ok", "timeout": 0}, "params.timeout"),
        ({"event": "ok", "timeout": -1}, "params.timeout"),
        ({"event": "ok", "key": ""}, "params.key"),
    ],
)
def test_bad_sdk_wait_for_event(registry, kwargs, field):
    issue = only_issue(WaitForEvent(id="w", **kwargs), registry)
    assert (issue.node_id, issue.field) == ("w", field)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "params.workflow", "Field required"),
        ({"workflow": ""}, "params.workflow", "should match pattern"),
        ({"workflow": "-child"}, "params.workflow", "should match pattern"),
        ({"workflow": "a b"}, "params.workflow", "should match pattern"),
        ({"workflow": "a/b"}, "params.workflow", "should match pattern"),
        ({"workflow": "x" * 129}, "params.workflow", "should match pattern"),
        ({"workflow": "child\n"}, "params.workflow", "should match pattern"),
        ({"workflow": 7}, "params.workflow", "valid string"),
        ({"workflow": "child", "on_parent_cancel": "keep"}, "params.on_parent_cancel", "'cancel' or 'abandon'"),
        ({"workflow": "child", "on_parent_cancel": "CANCEL"}, "params.on_parent_cancel", "'cancel' or 'abandon'"),
        ({"workflow": "child", "on_parent_cancel": None}, "params.on_parent_cancel", "'cancel' or 'abandon'"),
        ({"workflow": "child", "on_parent_cancel": True}, "params.on_parent_cancel", "'cancel' or 'abandon'"),
        ({"workflow": "child", "version": 0}, "params.version", "greater than or equal to 1"),
        ({"workflow": "child", "version": "latest"}, "params.version", "valid integer"),
        ({"workflow": "child", "wait": "maybe"}, "params.wait", "valid boolean"),
        ({"workflow": "child", "onParentCancel": "abandon"}, "params.onParentCancel", "Extra inputs"),
    ],
)
def test_bad_sub_workflow(registry, params, field, message):
    issue = only_issue({"id": "sw", "type": "SubWorkflow", "params": params}, registry)
    assert (issue.node_id, issue.field) == ("sw", field)
    assert message in issue.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"workflow": "bad name"}, "params.workflow"),
        ({"workflow": "c", "on_parent_cancel": "ignore"}, "params.on_parent_cancel"),
        ({"workflow": "c", "version": 0}, "params.version"),
    ],
)
def test_bad_sdk_sub_workflow(registry, kwargs, field):
    issue = only_issue(SubWorkflow(id="sw", **kwargs), registry)
    assert (issue.node_id, issue.field) == ("sw", field)


# --- the workflow wrapper ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["timeOut", "input_schema", "settings", "id"])
def test_workflow_wrapper_unknown_keys(registry, key):
    issue = only_issue({"root": step("a"), key: 1}, registry)
    assert (issue.node_id, issue.field) == (None, key)
    assert "unknown key; a workflow has concurrency, inputSchema, queue, retention, root, timeout" in issue.message


@pytest.mark.parametrize("retention", [0, -1, MAX_RETENTION + 1, "7d", True, [60], float("nan"), float("inf")])
def test_workflow_wrapper_bad_retention(registry, retention):
    issue = only_issue({"root": step("a"), "retention": retention}, registry)
    assert (issue.node_id, issue.field) == (None, "retention")
    assert f"above 0 and at most {MAX_RETENTION}" in issue.message


def test_workflow_wrapper_retention_round_trips(registry):
    definition = validate_definition({"root": step("a"), "retention": 86_400}, registry)
    assert definition.retention == 86_400
    assert definition.to_json()["retention"] == 86_400


@pytest.mark.parametrize(
    "timeout", [0, -1, MAX_WORKFLOW_TIMEOUT + 1, "3600", True, False, [60], {"s": 1}, float("nan"), float("inf")]
)
def test_workflow_wrapper_bad_timeout(registry, timeout):
    issue = only_issue({"root": step("a"), "timeout": timeout}, registry)
    assert (issue.node_id, issue.field) == (None, "timeout")
    assert f"between 0 and {MAX_WORKFLOW_TIMEOUT}" in issue.message


@pytest.mark.parametrize("timeout", [0.5, 1, 3600, MAX_WORKFLOW_TIMEOUT, None])
def test_workflow_wrapper_good_timeout(registry, timeout):
    assert accept({"root": step("a"), "timeout": timeout}, registry).timeout == timeout


@pytest.mark.parametrize("schema", ["object", 5, [], [{"type": "object"}]])
def test_input_schema_must_be_an_object(registry, schema):
    issue = only_issue({"root": step("a"), "inputSchema": schema}, registry)
    assert (issue.node_id, issue.field) == (None, "inputSchema")
    assert "must be a JSON Schema" in issue.message


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "strng"},
        {"type": 5},
        {"properties": []},
        {"properties": {"a": "string"}},
        {"required": "order_id"},
        {"minimum": "1"},
        {"pattern": "("},
        {"enum": 5},
        {"$id": 5},
        {"additionalProperties": "no"},
    ],
)
def test_input_schema_that_is_not_a_valid_json_schema(registry, schema):
    issue = only_issue({"root": step("a"), "inputSchema": schema}, registry)
    assert (issue.node_id, issue.field) == (None, "inputSchema")
    assert issue.message.startswith("is not a valid JSON Schema: ")


@pytest.mark.parametrize(
    "meta", [5, [], None, {}, "", "https://example.com/my-schema", "http://json-schema.org/schema#"]
)
def test_input_schema_with_an_unknown_metaschema_is_refused_not_a_crash(registry, meta):
    issue = only_issue({"root": step("a"), "inputSchema": {"$schema": meta, "type": "object"}}, registry)
    assert (issue.node_id, issue.field) == (None, "inputSchema.$schema")
    assert "must name a JSON Schema draft" in issue.message


@pytest.mark.parametrize(
    "meta",
    [
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
        "http://json-schema.org/draft-04/schema#",
    ],
)
def test_input_schema_with_a_known_metaschema(registry, meta):
    schema = {"$schema": meta, "type": "object", "required": ["id"]}
    assert accept({"root": step("a"), "inputSchema": schema}, registry).input_schema == schema


def test_input_schema_with_a_known_metaschema_is_checked_against_it(registry):
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": 5}  # a bool in draft 4
    issue = only_issue({"root": step("a"), "inputSchema": schema}, registry)
    assert (issue.node_id, issue.field) == (None, "inputSchema")


DRAFT_7 = "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/nope"},
        {"properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"items": {"$ref": "#no-such-anchor"}},
        {"$schema": DRAFT_7, "definitions": {"a": {"$ref": "#/definitions/b"}}},
        {"properties": {"a": {"$dynamicRef": "#/nope"}}},
        {"$ref": "https://example.com/remote.json"},  # never fetched: it would be at every start
        {"$ref": "other.json"},
        {"$ref": "http://[::1"},
    ],
)
def test_input_schema_refs_that_point_nowhere_are_refused(registry, schema):
    issue = only_issue({"root": step("a"), "inputSchema": schema}, registry)
    assert (issue.node_id, issue.field) == (None, "inputSchema")
    assert "points to nothing inside it" in issue.message


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"id": {"type": "string"}}, "properties": {"id": {"$ref": "#/$defs/id"}}},
        {
            "$schema": DRAFT_7,
            "definitions": {"id": {"type": "string"}},
            "properties": {"id": {"$ref": "#/definitions/id"}},
        },
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "definitions": {"id": {"type": "string"}},
            "properties": {"id": {"$ref": "#/definitions/id"}},
        },
        {"type": "object", "properties": {"child": {"$ref": "#"}}},
        {
            "$id": "https://example.com/root.json",
            "$defs": {"item": {"$id": "item.json", "type": "string"}},
            "items": {"$ref": "item.json"},
        },
        {
            "$id": "https://example.com/root.json",
            "$defs": {
                "a": {
                    "$id": "https://example.com/nested/a.json",
                    "$defs": {"b": {"type": "integer"}},
                    "properties": {"b": {"$ref": "#/$defs/b"}},
                }
            },
            "properties": {"a": {"$ref": "nested/a.json"}},
        },
        {"$defs": {"x": {"$anchor": "thing", "type": "string"}}, "properties": {"x": {"$ref": "#thing"}}},
        {"$defs": {"a b": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a%20b"}}},
        {"$ref": "https://json-schema.org/draft/2020-12/schema"},
        {"$dynamicAnchor": "meta", "properties": {"a": {"$dynamicRef": "#meta"}}},
    ],
)
def test_input_schema_refs_that_resolve_are_accepted(registry, schema):
    assert accept({"root": step("a"), "inputSchema": schema}, registry).input_schema == schema


def test_a_deeply_nested_input_schema_is_refused_not_a_crash(registry):
    schema = {"type": "string"}
    levels = 0
    while True:
        deeper = {"type": "object", "properties": {"a": schema}}
        if _json_depth({"root": step("a"), "inputSchema": deeper}) > MAX_JSON_DEPTH:
            break
        schema, levels = deeper, levels + 1
    assert levels > 90
    raw = {"root": step("a"), "inputSchema": schema}
    try:
        validate_definition(raw, registry)
    except DefinitionError as exc:
        assert [(issue.node_id, issue.field) for issue in exc.issues] == [(None, "inputSchema")]
    deeper = {"root": step("a"), "inputSchema": {"type": "object", "properties": {"a": schema}}}
    assert "nests deeper than" in only_issue(deeper, registry).message


def _json_depth(value, depth=1):
    if isinstance(value, dict):
        return max([_json_depth(item, depth + 1) for item in value.values()], default=depth)
    if isinstance(value, list):
        return max([_json_depth(item, depth + 1) for item in value], default=depth)
    return depth


@pytest.mark.parametrize("schema", [True, {}, {"type": "object", "properties": {"id": {"type": "string"}}}])
def test_good_input_schemas(registry, schema):
    assert accept({"root": step("a"), "inputSchema": schema}, registry).input_schema == schema


@pytest.mark.parametrize("root", ["a", 5, None, [], [step("a")], True])
def test_workflow_root_must_be_an_object(registry, root):
    issue = only_issue({"root": root, "timeout": 60}, registry)
    assert (issue.node_id, issue.field) == (None, "root")
    assert "must be the root node, a JSON object" in issue.message


def test_problems_of_the_wrapper_and_of_its_root_are_reported_together(registry):
    raw = {"root": if_(condition=""), "timeout": -1, "inputSchema": {"type": "nope"}, "extra": 1}
    assert located(raw, registry) == {(None, "timeout"), (None, "inputSchema"), (None, "extra"), ("i", "condition")}


def test_a_node_with_a_root_key_is_a_node_not_a_wrapper(registry):
    issue = only_issue({"id": "a", "type": "Step", "params": {}, "root": step("b")}, registry)
    assert (issue.node_id, issue.field) == ("a", "root")


def test_sdk_workflow_wrapper(registry):
    workflow = Workflow(Node("Step", id="a"), timeout=60, input_schema={"type": "object"})
    definition = accept(workflow, registry)
    assert (definition.timeout, definition.input_schema) == (60, {"type": "object"})
    assert definition.to_json() == workflow.to_json()
    assert accept(Workflow(Node("Step", id="a")), registry).to_json() == {"id": "a", "type": "Step", "params": {}}


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"timeout": 0}, "timeout"), ({"input_schema": {"type": 1}}, "inputSchema")]
)
def test_bad_sdk_workflow_wrapper(registry, kwargs, field):
    issue = only_issue(Workflow(Node("Step", id="a"), **kwargs), registry)
    assert (issue.node_id, issue.field) == (None, field)


# --- ids and nesting through control nodes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        parallel(branches={"a": step("x"), "b": step("x")}),
        parallel(branches={"a": step("x"), "b": {"id": "seq", "type": "Sequence", "children": [step("x")]}}),
        if_(then=step("x"), **{"else": step("x")}),
        switch(cases=[{"condition": "true", "node": step("x")}], default=step("x")),
        switch(cases=[{"condition": "input.a", "node": step("x")}, {"condition": "input.b", "node": step("x")}]),
        try_(body=step("x"), catch=step("x")),
        try_(body=step("x"), **{"finally": step("x")}),
        foreach(body=foreach("x", body=step("x"))),
    ],
)
def test_duplicate_ids_across_branches(registry, raw):
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("x", "id")
    assert "duplicate node id" in issue.message


def test_a_child_may_not_reuse_its_control_node_id(registry):
    issue = only_issue(foreach("f", body=step("f")), registry)
    assert (issue.node_id, issue.field) == ("f", "id")


WRAPPERS = {
    "Parallel": lambda level, child: parallel(f"n{level}", branches={"only": child}),
    "If": lambda level, child: if_(f"n{level}", condition="input.go", then=child),
    "Switch": lambda level, child: switch(f"n{level}", cases=[{"condition": "input.go", "node": child}]),
    "ForEach": lambda level, child: foreach(f"n{level}", items=[1], body=child),
    "Try": lambda level, child: {"id": f"n{level}", "type": "Try", "body": child, "finally": step(f"f{level}")},
    "mixed": lambda level, child: [
        parallel(f"n{level}", branches={"only": child}),
        if_(f"n{level}", condition="input.go", then=child),
        switch(f"n{level}", cases=[{"condition": "input.go", "node": child}]),
        foreach(f"n{level}", items=[1], body=child),
        {"id": f"n{level}", "type": "Try", "body": child, "catch": step(f"c{level}")},
        {"id": f"n{level}", "type": "Sequence", "children": [child]},
    ][level % 6],
}


def nested_through(kind, depth):
    node = step("leaf")
    for level in range(depth - 1):
        node = WRAPPERS[kind](level, node)
    return node


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_nesting_through_control_nodes_up_to_the_limit_is_accepted(registry, kind):
    definition = accept(nested_through(kind, MAX_DEPTH), registry)
    assert "leaf" in definition.nodes


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_nesting_through_control_nodes_past_the_limit_is_refused(registry, kind):
    issues = issues_of(nested_through(kind, MAX_DEPTH + 1), registry)
    assert "leaf" in {issue.node_id for issue in issues}
    assert {issue.message for issue in issues} == {f"nesting is deeper than {MAX_DEPTH} levels"}


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_very_deep_nesting_through_control_nodes_is_refused_without_recursion_error(registry, kind):
    issue = only_issue(nested_through(kind, 2_000), registry)
    assert "nests deeper than" in issue.message


def test_nesting_built_with_the_sdk(registry):
    node = Node("Step", id="leaf")
    for level in range(MAX_DEPTH):
        node = If(id=f"if{level}", condition="input.go", then=node)
    assert issues_of(node, registry)[0].message == f"nesting is deeper than {MAX_DEPTH} levels"


# --- templates nested too deeply for Python ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{% for x in input %}" * 21 + "x" + "{% endfor %}" * 21,
        "{% if input %}" * 100 + "x" + "{% endif %}" * 100,
        "{{ input" + "|string" * 250 + " }}",
    ],
)
def test_templates_python_cannot_compile_are_refused_not_a_crash(registry, text):
    issue = only_issue(step("a", params={"text": text}), registry)
    assert (issue.node_id, issue.field) == ("a", "params.text")
    assert "nested too deeply" in issue.message


def test_checking_deeply_nested_templates_and_conditions_is_fast(registry):
    # jinja2's constant folding took seconds for each of these (15 s for the first); the check must stay cheap
    texts = ["{{ input" + "|string" * 300 + " }}", "{{ input" + "|string" * 190 + " }}"]
    conditions = ["not " * 300 + "input.x", "not " * 190 + "input.x", " + ".join(["input.a"] * 190)]
    raw = {
        "id": "root",
        "type": "Sequence",
        "children": [step(f"t{i}", params={"text": text}) for i, text in enumerate(texts)]
        + [if_(f"i{i}", condition=condition, then=step(f"then{i}")) for i, condition in enumerate(conditions)],
    }
    start = time.perf_counter()
    issues = issues_of(raw, registry)
    assert time.perf_counter() - start < 3
    assert {(issue.node_id, issue.field) for issue in issues} == {("t0", "params.text"), ("i0", "condition")}


def test_a_definition_that_is_not_json_is_refused_not_a_crash(registry):
    issue = only_issue(Parallel(id="p", branches={("a", "b"): Node("Step", id="a")}), registry)
    assert (issue.node_id, issue.field) == (None, None)
    assert issue.message.startswith("a definition must be JSON")


# --- fuzzing: malformed control nodes are refused, never a crash -------------------------------------------------

KNOWN_KEYS = [
    "id",
    "type",
    "assignTo",
    "params",
    "retry",
    "timeout",
    "children",
    "branches",
    "onFailure",
    "mode",
    "condition",
    "then",
    "else",
    "cases",
    "default",
    "items",
    "body",
    "concurrency",
    "toleratedFailures",
    "catch",
    "finally",
]
NODE_TYPES = sorted(CONTROL_TYPES | ENGINE_TYPES | {"Step", "Nope"})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=20_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            " ",
            "a",
            "a b",
            "$",
            "$.x",
            "$.x[0]",
            "$..x",
            "5%",
            "150%",
            "all",
            "first",
            "wait_all",
            "fail_fast",
            "postgit.x",
            "input.x > 1",
            "{{ input.lines }}",
            "{{ x",
            "{% if %}",
            "item.sku",
            "error.message",
            "Sequence",
            "Step",
        ]
    ),
    st.text(max_size=8),
)


def json_values(leaves=scalars):
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from([*KNOWN_KEYS, "$ref", "$secret", "node", "x"]), children, max_size=4),
        ),
        max_leaves=8,
    )


ids = st.one_of(st.sampled_from(["a", "b", "c", "d", "n"]), json_values())


def nodes(depth=2):
    """Nodes of any type (mostly control ones) with any subset of keys, each key of a sensible or random value."""
    leaf = st.fixed_dictionaries({"id": ids, "type": st.just("Step")}, optional={"params": json_values()})
    if depth == 0:
        return leaf
    child = nodes(depth - 1)
    value = st.one_of(
        json_values(),
        child,
        st.lists(child, max_size=3),
        st.dictionaries(
            st.one_of(st.text(max_size=3), st.sampled_from(["a", "b"]), st.integers(0, 2)), child, max_size=3
        ),
        st.lists(
            st.fixed_dictionaries({}, optional={"condition": json_values(), "node": child, "x": json_values()}),
            max_size=3,
        ),
    )
    control = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(NODE_TYPES), json_values())},
        optional={key: (ids if key == "id" else value) for key in KNOWN_KEYS if key != "type"},
    )
    return st.one_of(leaf, control, json_values())


def check_refused_or_accepted(raw, registry):
    """validate_definition accepts (and round-trips) ``raw`` or raises DefinitionError with well-formed issues."""
    try:
        definition = validate_definition(raw, registry)
    except DefinitionError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.node_id is None or isinstance(issue.node_id, str)
            assert issue.field is None or isinstance(issue.field, str)
            assert isinstance(issue.message, str) and issue.message
        return None
    assert validate_definition(definition.to_json(), registry) == definition
    return definition


@FUZZ
@given(raw=nodes())
def test_fuzz_malformed_control_nodes_are_refused_not_a_crash(registry, raw):
    check_refused_or_accepted(raw, registry)


@FUZZ
@given(
    root=nodes(1),
    settings=st.fixed_dictionaries(
        {}, optional={"timeout": json_values(), "inputSchema": json_values(), "extra": json_values()}
    ),
)
def test_fuzz_malformed_workflow_wrappers_are_refused_not_a_crash(registry, root, settings):
    check_refused_or_accepted({"root": root, **settings}, registry)


SCHEMA_KEYS = ["$schema", "$id", "$ref", "type", "properties", "items", "required", "pattern", "enum", "minimum"]
schema_values = st.one_of(
    json_values(),
    st.sampled_from(["object", "string", "https://json-schema.org/draft/2020-12/schema", "#", "#/nope"]),
)
schemas = st.recursive(
    st.one_of(st.booleans(), st.dictionaries(st.sampled_from(SCHEMA_KEYS), schema_values, max_size=3)),
    lambda children: st.dictionaries(
        st.sampled_from(SCHEMA_KEYS), st.one_of(schema_values, children, st.dictionaries(st.text(max_size=2), children))
    ),
    max_leaves=6,
)


@FUZZ
@given(schema=st.one_of(schemas, json_values()))
def test_fuzz_input_schemas_are_refused_or_accepted_not_a_crash(registry, schema):
    check_refused_or_accepted({"root": step("a"), "inputSchema": schema}, registry)


def good_tree():
    """A valid definition using every control node and engine leaf, as raw JSON."""
    return order_workflow().to_json()


def _all_nodes(raw):
    found = [raw]
    for key in ("children", "branches", "then", "else", "cases", "default", "body", "catch", "finally"):
        value = raw.get(key)
        if isinstance(value, dict) and key == "branches":
            value = list(value.values())
        elif key == "cases" and isinstance(value, list):
            value = [case["node"] for case in value]
        for child in value if isinstance(value, list) else [value] if isinstance(value, dict) else []:
            found.extend(_all_nodes(child))
    return found


SETTINGS_KEYS = ["condition", "items", "concurrency", "toleratedFailures", "onFailure", "params", "retry", "timeout"]


@FUZZ
@given(data=st.data())
def test_fuzz_one_bad_setting_in_a_good_tree_is_refused_naming_that_node(registry, data):
    raw = good_tree()
    root = raw["root"]
    target = data.draw(st.sampled_from(_all_nodes(root)), label="node")
    key = data.draw(st.sampled_from(SETTINGS_KEYS), label="key")
    value = data.draw(json_values(), label="value")
    target[key] = value
    if check_refused_or_accepted(raw, registry) is None:
        issues = issues_of(raw, registry)
        assert any(issue.node_id == target["id"] for issue in issues), issues


@FUZZ
@given(data=st.data())
def test_fuzz_removing_any_key_of_a_good_tree_is_refused_or_accepted_not_a_crash(registry, data):
    raw = good_tree()
    target = data.draw(st.sampled_from(_all_nodes(raw["root"])), label="node")
    key = data.draw(st.sampled_from(sorted(target)), label="key")
    del target[key]
    check_refused_or_accepted(raw, registry)
