"""The deploy-time data-flow check: every read of the state is written first, on every path that leads to it.

Each refusal names the node that reads and the field, and the nodes that write what it reads (when any do).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postgit import (
    ForEach,
    HitEndpoint,
    If,
    Node,
    Parallel,
    SendEmail,
    Sequence,
    SubWorkflow,
    Switch,
    Try,
    WaitForEvent,
    Workflow,
    ref,
    secret,
)
from postgit.errors import DefinitionError
from postgit.validation import validate_definition
from tests.unit.flow_support import accept, issues_of, only_issue, step, step_registry

OPTIONAL_HINT = "; to read an optional value, give the ref a default or use '| default(...)' in a template"


@pytest.fixture(scope="module")
def registry():
    return step_registry()


def write(node_id, path):
    return Node("Step", id=node_id, assign_to=path)


def read(node_id, path, **extra):
    return Node("Step", id=node_id, value=ref(path), **extra)


def say(node_id, text, **extra):
    return Node("Step", id=node_id, text=text, **extra)


def seq(*children, node_id="root"):
    return Sequence(id=node_id, children=list(children))


def assert_unwritten(issue, reader, field, root, writers=()):
    """``issue`` is the refusal of ``reader``'s read of ``$.root`` in ``field``, naming ``writers``."""
    assert (issue.node_id, issue.field) == (reader, field)
    if writers:
        names = ", ".join(f"'{writer}'" for writer in writers)
        assert issue.message == (
            f"reads '$.{root}', but it is not written on every path that leads here "
            f"(written by node {names}, not always before this node){OPTIONAL_HINT}"
        )
    else:
        assert issue.message == f"reads '$.{root}', which no node writes before it{OPTIONAL_HINT}"


# --- a sequence --------------------------------------------------------------------------------------------------


def test_a_read_after_its_write_passes(registry):
    accept(seq(write("w", "$.x.y"), read("r", "$.x.y.z"), say("s", "{{ x.y }}")), registry)


def test_a_read_of_a_root_written_only_later_is_refused(registry):
    issue = only_issue(seq(read("r", "$.x.a"), write("w", "$.x.b")), registry)
    assert_unwritten(issue, "r", "params.value", "x", ["w"])


def test_a_read_that_no_node_writes(registry):
    issue = only_issue(seq(write("w", "$.y"), say("r", "Hello {{ x.name }}")), registry)
    assert_unwritten(issue, "r", "params.text", "x")


def test_a_node_does_not_write_before_it_reads_itself(registry):
    issue = only_issue(read("r", "$.x", assign_to="$.x"), registry)
    assert_unwritten(issue, "r", "params.value", "x")


def test_the_readme_example(registry):
    workflow = seq(
        SendEmail(id="notify", to="ops@example.com", subject="charged", body=ref("$.charge.body.id")),
        HitEndpoint(id="charge", url="https://pay.example.com/charge", method="POST", assign_to="$.charge"),
    )
    issue = only_issue(workflow, registry)
    assert str(issue).startswith(
        "node 'notify', field 'params.body': reads '$.charge', but it is not written on every path that leads "
        "here (written by node 'charge', not always before this node)"
    )


@pytest.mark.parametrize(
    "value",
    [
        {"$ref": "$.input.a"},
        "{{ input.a }}",
        {"$ref": "$"},
        {"$ref": "$[0]"},
        {"$secret": "API_TOKEN"},
        "no template at all: $.x",
        "{% set x = 1 %}{{ x }}",
        "{% for line in input.lines %}{{ line }}{{ loop.index }}{% endfor %}",
        "{% for i in range(3) %}{{ i }}{% endfor %}",
    ],
)
def test_reads_that_need_no_writer(registry, value):
    accept(step("a", params={"value": value}), registry)


def test_a_secret_built_with_the_sdk_is_not_a_read(registry):
    accept(Node("Step", id="a", value={"token": secret("API_TOKEN")}), registry)


def test_the_field_of_a_read_deep_in_a_param(registry):
    node = Node("Step", id="r", value={"a": [1, {"b": ref("$.x")}], "c": "{{ y }}"})
    issues = issues_of(node, registry)
    assert [(issue.node_id, issue.field) for issue in issues] == [("r", "params.value.a[1].b"), ("r", "params.value.c")]


def test_every_unwritten_read_is_reported_at_once(registry):
    workflow = seq(read("r1", "$.a"), write("wa", "$.a"), say("r2", "{{ b }} {{ a }} {{ c }}"), read("r3", "$.c"))
    issues = issues_of(workflow, registry)
    assert [(issue.node_id, issue.field, issue.message.split(",")[0]) for issue in issues] == [
        ("r1", "params.value", "reads '$.a'"),
        ("r2", "params.text", "reads '$.b'"),
        ("r2", "params.text", "reads '$.c'"),
        ("r3", "params.value", "reads '$.c'"),
    ]


def test_raw_json_is_checked_like_the_sdk(registry):
    raw = {
        "id": "root",
        "type": "Sequence",
        "children": [step("r", params={"value": {"$ref": "$.x"}}), step("w", assignTo="$.x")],
    }
    assert_unwritten(only_issue(raw, registry), "r", "params.value", "x", ["w"])


def test_the_check_applies_inside_a_workflow_wrapper(registry):
    issue = only_issue(Workflow(seq(read("r", "$.x"), write("w", "$.x")), timeout=60), registry)
    assert_unwritten(issue, "r", "params.value", "x", ["w"])


# --- If ----------------------------------------------------------------------------------------------------------


def test_a_root_written_in_only_one_if_branch_is_not_written_after_it(registry):
    workflow = seq(
        If(id="big", condition="input.amount > 100", then=write("review", "$.review"), else_=write("fast", "$.f")),
        read("r", "$.review"),
    )
    assert_unwritten(only_issue(workflow, registry), "r", "params.value", "review", ["review"])


def test_a_root_written_by_then_of_an_if_without_else(registry):
    workflow = seq(If(id="i", condition="input.go", then=write("w", "$.x")), say("r", "{{ x }}"))
    assert_unwritten(only_issue(workflow, registry), "r", "params.text", "x", ["w"])


def test_a_root_written_in_both_if_branches_is_written_after_it(registry):
    workflow = seq(
        If(id="i", condition="input.go", then=write("a", "$.x.a"), else_=write("b", "$.x.b")),
        read("r", "$.x"),
    )
    accept(workflow, registry)


def test_the_else_branch_does_not_see_what_then_writes(registry):
    workflow = If(id="i", condition="input.go", then=write("w", "$.x"), else_=read("r", "$.x"))
    assert_unwritten(only_issue(workflow, registry), "r", "params.value", "x", ["w"])


def test_an_if_writes_its_own_assign_to(registry):
    workflow = seq(
        If(id="i", condition="input.go", then=Node("Step", id="t"), assign_to="$.decided"), read("r", "$.decided")
    )
    accept(workflow, registry)


def test_an_if_condition_reading_an_unwritten_root(registry):
    workflow = seq(If(id="i", condition="approval.data.ok and not approval.timed_out", then=Node("Step", id="t")))
    assert_unwritten(only_issue(workflow, registry), "i", "condition", "approval")


def test_an_if_condition_with_braces_in_a_string_is_read_as_an_expression(registry):
    workflow = If(id="i", condition="'{{' in note.text", then=Node("Step", id="t"))
    assert_unwritten(only_issue(workflow, registry), "i", "condition", "note")


def test_an_if_condition_wrapped_in_braces(registry):
    workflow = seq(write("w", "$.x"), If(id="i", condition="{{ x > 1 and y }}", then=Node("Step", id="t")))
    assert_unwritten(only_issue(workflow, registry), "i", "condition", "y")


def test_raw_if_branch_writes(registry):
    raw = {
        "id": "root",
        "type": "Sequence",
        "children": [
            {"id": "i", "type": "If", "condition": "input.go", "then": step("w", assignTo="$.x")},
            step("r", params={"text": "{{ x }}"}),
        ],
    }
    assert_unwritten(only_issue(raw, registry), "r", "params.text", "x", ["w"])


# --- Parallel ----------------------------------------------------------------------------------------------------


def test_a_branch_does_not_see_what_a_sibling_branch_writes(registry):
    workflow = Parallel(id="p", branches={"a": write("w", "$.x"), "b": read("r", "$.x")})
    assert_unwritten(only_issue(workflow, registry), "r", "params.value", "x", ["w"])


def test_a_branch_sees_its_own_earlier_writes(registry):
    workflow = Parallel(
        id="p",
        branches={"a": seq(write("w", "$.x"), read("r", "$.x"), node_id="sa"), "b": Node("Step", id="other")},
    )
    accept(workflow, registry)


def test_after_a_parallel_in_mode_all_every_branch_write_is_visible(registry):
    workflow = seq(
        Parallel(id="p", branches={"a": write("wa", "$.a"), "b": Node("Step", id="b")}),
        read("r", "$.a"),
    )
    accept(workflow, registry)


def test_after_a_parallel_in_mode_first_only_what_every_branch_writes_is_visible(registry):
    workflow = seq(
        Parallel(
            id="p",
            branches={"a": seq(write("wa", "$.a"), write("wxa", "$.x.a"), node_id="sa"), "b": write("wxb", "$.x.b")},
            mode="first",
        ),
        read("rx", "$.x"),
        read("ra", "$.a"),
    )
    assert_unwritten(only_issue(workflow, registry), "ra", "params.value", "a", ["wa"])


def test_a_parallel_writes_its_own_assign_to(registry):
    workflow = seq(
        Parallel(id="p", branches={"a": Node("Step", id="a")}, mode="first", assign_to="$.winner"),
        read("r", "$.winner.a"),
    )
    accept(workflow, registry)


def parallel_writing(*paths, mode="all"):
    branches = {f"b{index}": write(f"w{index}", path) for index, path in enumerate(paths)}
    return Parallel(id="p", branches=branches, mode=mode)


@pytest.mark.parametrize("mode", ["all", "first"])
@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("$.x", "$.x", "$.x"),
        ("$.x", "$.x.y", "$.x"),
        ("$.x.y.z", "$.x", "$.x"),
        ("$.list[0]", "$.list", "$.list"),
        ("$['a key'].b", "$['a key']", "$['a key']"),
    ],
)
def test_two_branches_may_not_write_the_same_path_or_one_inside_the_other(registry, mode, first, second, shared):
    issue = only_issue(parallel_writing(first, second, mode=mode), registry)
    assert (issue.node_id, issue.field) == ("p", "branches")
    assert issue.message == (
        f"branches 'b0' and 'b1' both write '{shared}' (nodes 'w0' and 'w1'); parallel branches must write "
        "different paths"
    )


@pytest.mark.parametrize(
    "paths",
    [("$.x", "$.y"), ("$.x.a", "$.x.b"), ("$.list[0]", "$.list[1]"), ("$.a.b.c", "$.a.b.d", "$.a.c")],
)
def test_branches_writing_different_paths_are_allowed(registry, paths):
    accept(parallel_writing(*paths), registry)


def test_three_branches_writing_the_same_path(registry):
    issues = issues_of(parallel_writing("$.x", "$.x", "$.x"), registry)
    assert [issue.message.split(" both")[0] for issue in issues] == [
        "branches 'b0' and 'b1'",
        "branches 'b0' and 'b2'",
        "branches 'b1' and 'b2'",
    ]


def test_one_branch_may_write_a_path_twice(registry):
    workflow = Parallel(id="p", branches={"a": seq(write("w1", "$.x"), write("w2", "$.x.y"), node_id="sa")})
    accept(workflow, registry)


def test_conflicting_writes_deep_inside_branches_are_found(registry):
    workflow = Parallel(
        id="p",
        branches={
            "a": Try(id="t", body=Node("Step", id="b"), catch=seq(write("deep", "$.out.x"), node_id="c")),
            "b": If(id="i", condition="input.go", then=Parallel(id="inner", branches={"z": write("z", "$.out")})),
        },
    )
    issue = only_issue(workflow, registry)
    assert (issue.node_id, issue.field) == ("p", "branches")
    assert "branches 'a' and 'b' both write '$.out' (nodes 'deep' and 'z')" in issue.message


def test_a_nested_parallel_is_checked_on_its_own_too(registry):
    workflow = Parallel(id="outer", branches={"a": parallel_writing("$.x", "$.x")})
    issue = only_issue(workflow, registry)
    assert (issue.node_id, issue.field) == ("p", "branches")


def test_writes_inside_a_foreach_body_stay_in_the_item_scope(registry):
    workflow = Parallel(
        id="p",
        branches={
            "a": ForEach(id="loop", items=[1, 2], body=write("per_item", "$.x")),
            "b": write("w", "$.x"),
        },
    )
    accept(workflow, registry)


def test_a_foreach_assign_to_is_a_write_of_its_branch(registry):
    workflow = Parallel(
        id="p",
        branches={
            "a": ForEach(id="loop", items=[1, 2], body=Node("Step", id="per_item"), assign_to="$.x.results"),
            "b": write("w", "$.x"),
        },
    )
    issue = only_issue(workflow, registry)
    assert "branches 'a' and 'b' both write '$.x' (nodes 'loop' and 'w')" in issue.message


def test_raw_parallel_conflict(registry):
    raw = {
        "id": "p",
        "type": "Parallel",
        "branches": {"a": step("wa", assignTo="$.x"), "b": step("wb", assignTo="$.x")},
        "mode": "first",
    }
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("p", "branches")


# --- Switch ------------------------------------------------------------------------------------------------------


def switch_writing(default=None):
    return Switch(
        id="s",
        cases=[("input.kind == 'a'", write("wa", "$.x.a")), ("input.kind == 'b'", write("wb", "$.x.b"))],
        default=default,
    )


def test_a_switch_without_default_writes_what_every_case_writes(registry):
    accept(seq(switch_writing(), read("r", "$.x")), registry)  # no match fails the switch: nothing runs after


def test_a_switch_whose_default_does_not_write(registry):
    workflow = seq(switch_writing(default=Node("Step", id="d")), read("r", "$.x"))
    assert_unwritten(only_issue(workflow, registry), "r", "params.value", "x", ["wa", "wb"])


def test_a_switch_whose_default_writes_too(registry):
    accept(seq(switch_writing(default=write("wd", "$.x.d")), read("r", "$.x")), registry)


def test_a_root_written_in_one_switch_case_only(registry):
    workflow = seq(
        Switch(id="s", cases=[("input.a", write("wa", "$.y")), ("input.b", Node("Step", id="b"))]),
        say("r", "{{ y }}"),
    )
    assert_unwritten(only_issue(workflow, registry), "r", "params.text", "y", ["wa"])


def test_switch_conditions_are_reads(registry):
    workflow = seq(
        write("w", "$.x"),
        Switch(id="s", cases=[("x > 1", Node("Step", id="a")), ("y > 1", Node("Step", id="b"))]),
    )
    assert_unwritten(only_issue(workflow, registry), "s", "cases[1].condition", "y")


def test_a_switch_condition_does_not_see_what_an_earlier_case_writes(registry):
    workflow = Switch(id="s", cases=[("input.a", write("w", "$.x")), ("x > 1", Node("Step", id="b"))])
    assert_unwritten(only_issue(workflow, registry), "s", "cases[1].condition", "x", ["w"])


# --- ForEach -----------------------------------------------------------------------------------------------------


def test_what_a_foreach_body_writes_is_not_visible_after_it(registry):
    workflow = seq(ForEach(id="loop", items=ref("$.input.lines"), body=write("w", "$.x")), read("r", "$.x"))
    assert_unwritten(only_issue(workflow, registry), "r", "params.value", "x", ["w"])


def test_a_foreach_writes_its_own_assign_to(registry):
    workflow = seq(
        ForEach(id="loop", items="{{ input.lines }}", body=Node("Step", id="b"), assign_to="$.results"),
        read("r", "$.results[0]"),
    )
    accept(workflow, registry)


def test_a_body_sees_its_own_earlier_writes_and_the_loop_variables(registry):
    body = seq(
        write("w", "$.line"),
        read("r", "$.line"),
        say("s", "{{ item.sku }} #{{ index }} {{ line }}"),
        read("i", "$.item.qty"),
        If(id="odd", condition="index % 2 == 1 and item.qty > 0", then=Node("Step", id="t")),
        node_id="body",
    )
    accept(ForEach(id="loop", items=ref("$.input.lines"), body=body), registry)


def test_a_nested_loop_reads_the_outer_item(registry):
    workflow = ForEach(
        id="orders",
        items=ref("$.input.orders"),
        body=ForEach(id="lines", items="{{ item.lines }}", body=say("s", "{{ item }} {{ index }}")),
    )
    accept(workflow, registry)


@pytest.mark.parametrize(
    ("node", "field", "root"),
    [
        (read("r", "$.item"), "params.value", "item"),
        (say("r", "{{ index }}"), "params.text", "index"),
        (If(id="r", condition="index > 0", then=Node("Step", id="t")), "condition", "index"),
        (ForEach(id="r", items="{{ item.lines }}", body=Node("Step", id="rb")), "items", "item"),
    ],
)
def test_item_and_index_outside_a_foreach_body(registry, node, field, root):
    workflow = seq(ForEach(id="loop", items=[1], body=Node("Step", id="b")), node)
    issue = only_issue(workflow, registry)
    assert (issue.node_id, issue.field) == ("r", field)
    assert issue.message == f"reads '{root}', which is only defined inside a ForEach body"


def test_a_foreach_items_expression_is_a_read(registry):
    workflow = ForEach(id="loop", items="{{ order.lines }}", body=Node("Step", id="b"))
    assert_unwritten(only_issue(workflow, registry), "loop", "items", "order")


def test_a_foreach_items_ref_is_a_read(registry):
    workflow = seq(ForEach(id="loop", items=ref("$.order.lines"), body=Node("Step", id="b")), write("w", "$.order"))
    assert_unwritten(only_issue(workflow, registry), "loop", "items", "order", ["w"])


def test_a_foreach_items_ref_with_a_default_is_optional(registry):
    accept(ForEach(id="loop", items=ref("$.order.lines", default=[]), body=Node("Step", id="b")), registry)


# --- Try ---------------------------------------------------------------------------------------------------------


def test_what_the_try_body_writes_is_not_visible_in_catch(registry):
    workflow = Try(id="t", body=write("charge", "$.charge"), catch=read("refund", "$.charge.id"))
    assert_unwritten(only_issue(workflow, registry), "refund", "params.value", "charge", ["charge"])


def test_what_the_try_body_writes_is_not_visible_in_finally(registry):
    workflow = Try(id="t", body=write("w", "$.x"), finally_=say("log", "{{ x }}"))
    assert_unwritten(only_issue(workflow, registry), "log", "params.text", "x", ["w"])


def test_a_catch_reads_the_error_and_what_was_written_before_the_try(registry):
    workflow = seq(
        write("charge", "$.charge"),
        Try(
            id="t",
            body=Node("Step", id="b"),
            catch=seq(say("c1", "{{ error.message }} {{ charge.id }}"), read("c2", "$.error.node_id"), node_id="c"),
        ),
    )
    accept(workflow, registry)


@pytest.mark.parametrize("where", ["body", "finally", "after"])
def test_error_outside_a_catch(registry, where):
    reader = say("r", "{{ error.message }}")
    parts = {"body": Node("Step", id="b"), "catch": Node("Step", id="c"), "finally_": Node("Step", id="f")}
    if where == "body":
        parts["body"] = reader
    elif where == "finally":
        parts["finally_"] = reader
    workflow = seq(Try(id="t", **parts), *([reader] if where == "after" else []))
    issue = only_issue(workflow, registry)
    assert (issue.node_id, issue.field) == ("r", "params.text")
    assert issue.message == "reads 'error', which is only defined inside a Try's catch"


def test_after_a_try_what_body_and_catch_both_write_is_visible(registry):
    workflow = seq(
        Try(id="t", body=write("b", "$.x.body"), catch=write("c", "$.x.catch"), finally_=write("f", "$.done")),
        read("r1", "$.x"),
        read("r2", "$.done"),
    )
    accept(workflow, registry)


def test_after_a_try_with_a_catch_what_only_the_body_writes_is_not_visible(registry):
    workflow = seq(Try(id="t", body=write("b", "$.x"), catch=Node("Step", id="c")), read("r", "$.x"))
    assert_unwritten(only_issue(workflow, registry), "r", "params.value", "x", ["b"])


def test_after_a_try_without_catch_what_the_body_writes_is_visible(registry):
    # no catch: when the body fails, so does the Try, and nothing after it runs
    workflow = seq(Try(id="t", body=write("b", "$.x"), finally_=Node("Step", id="f")), read("r", "$.x"))
    accept(workflow, registry)


# --- optional reads ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        Node("Step", id="r", value=ref("$.discount", default=None)),
        Node("Step", id="r", value=ref("$.discount.amount", default=0)),
        say("r", "{{ discount | default(0) }}"),
        say("r", "{{ discount | d(0) }}"),
        say("r", "{{ discount | default({}) | length }}"),
        say("r", "{% if discount is defined %}{{ discount.amount }}{% endif %}"),
        say("r", "{% if discount is not defined %}none{% else %}{{ discount }}{% endif %}"),
        say("r", "{{ discount.amount if discount is defined else 0 }}"),
        If(id="r", condition="discount is defined and discount.amount > 0", then=Node("Step", id="t")),
        If(id="r", condition="discount is undefined or discount.amount == 0", then=Node("Step", id="t")),
        If(id="r", condition="{{ discount | default(0) > 1 }}", then=Node("Step", id="t")),
        Switch(id="r", cases=[("discount is defined", Node("Step", id="t"))]),
        ForEach(id="r", items="{{ extra_lines | default([]) }}", body=Node("Step", id="b")),
        WaitForEvent(id="r", event="approved", key="{{ ticket | default('none') }}"),
    ],
    ids=repr,
)
def test_optional_reads_are_not_checked(registry, node):
    accept(node, registry)


def test_a_default_on_a_deeper_key_does_not_make_the_root_optional(registry):
    # {{ discount.amount | default(0) }} fails when discount itself is missing
    issue = only_issue(say("r", "{{ discount.amount | default(0) }}"), registry)
    assert_unwritten(issue, "r", "params.text", "discount")


def test_only_the_unguarded_reads_of_a_template_are_checked(registry):
    issue = only_issue(say("r", "{{ a | default(1) }} {{ b }} {% if c is defined %}{{ c }}{% endif %}"), registry)
    assert_unwritten(issue, "r", "params.text", "b")


# --- engine leaves -------------------------------------------------------------------------------------------------


def test_wait_for_event_key_is_a_read_and_its_output_a_write(registry):
    workflow = seq(
        WaitForEvent(id="approval", event="approved", key="{{ order.id }}", timeout=60, assign_to="$.approval"),
        If(id="ok", condition="approval.data.approved and not approval.timed_out", then=Node("Step", id="ship")),
    )
    assert_unwritten(only_issue(workflow, registry), "approval", "params.key", "order")


def test_sub_workflow_input_is_a_read_and_its_output_a_write(registry):
    workflow = seq(
        SubWorkflow(id="child", workflow="invoice", input={"order": ref("$.order.id")}, assign_to="$.invoice"),
        read("r", "$.invoice.total"),
    )
    assert_unwritten(only_issue(workflow, registry), "child", "params.input.order", "order")


# --- a whole workflow ----------------------------------------------------------------------------------------------


def test_a_workflow_using_every_node_passes(registry):
    workflow = Workflow(
        seq(
            HitEndpoint(id="charge", url="https://pay.example.com", method="POST", assign_to="$.charge"),
            Try(
                id="fulfil",
                body=seq(
                    Parallel(
                        id="notify",
                        branches={
                            "customer": say("mail", "{{ charge.body.id }}", assign_to="$.notified.customer"),
                            "warehouse": read("wh", "$.charge.body.id", assign_to="$.notified.warehouse"),
                        },
                    ),
                    WaitForEvent(id="approval", event="approved", key="{{ input.order_id }}", assign_to="$.approval"),
                    If(
                        id="approved",
                        condition="approval.data.ok",
                        then=write("yes", "$.decision"),
                        else_=write("no", "$.decision"),
                    ),
                    Switch(id="carrier", cases=[("decision", write("ups", "$.carrier"))]),
                    ForEach(
                        id="ship",
                        items=ref("$.input.lines"),
                        body=say("ship_line", "{{ item.sku }} via {{ carrier }} ({{ notified.customer }})"),
                        assign_to="$.shipped",
                    ),
                    SubWorkflow(id="invoice", workflow="invoice", input={"lines": ref("$.shipped")}),
                    node_id="steps",
                ),
                catch=read("refund", "$.charge.body.id"),
            ),
            node_id="order",
        ),
        timeout=86_400,
    )
    accept(workflow, registry)


# --- fuzzing: any well-formed tree is either accepted or refused for its reads and writes, never a crash ------------

ROOTS = ["a", "b", "c", "item", "index", "error", "input"]
paths = st.builds(
    lambda root, rest: f"$.{root}{rest}", st.sampled_from(["a", "b", "c"]), st.sampled_from(["", ".x", "[0]"])
)
reads = st.one_of(
    st.none(),
    st.builds(lambda root: {"$ref": f"$.{root}.x"}, st.sampled_from(ROOTS)),
    st.builds(lambda root: {"$ref": f"$.{root}", "default": 0}, st.sampled_from(ROOTS)),
    st.builds(lambda root: f"{{{{ {root} }}}}", st.sampled_from(ROOTS)),
    st.builds(lambda root: f"{{{{ {root} | default(1) }}}}", st.sampled_from(ROOTS)),
)
conditions = st.builds(lambda root: f"{root} is defined" if root == "c" else f"{root} == 1", st.sampled_from(ROOTS))
leaves = st.builds(
    lambda value, path: (
        {"type": "Step", "params": {} if value is None else {"value": value}} | ({"assignTo": path} if path else {})
    ),
    reads,
    st.one_of(st.none(), paths),
)


def control_nodes(children):
    maybe = st.one_of(st.none(), children)
    return st.one_of(
        st.builds(lambda nodes: {"type": "Sequence", "children": nodes}, st.lists(children, min_size=1, max_size=3)),
        st.builds(
            lambda branches, mode: {"type": "Parallel", "branches": branches, "mode": mode},
            st.dictionaries(st.sampled_from(["x", "y", "z"]), children, min_size=1, max_size=3),
            st.sampled_from(["all", "first"]),
        ),
        st.builds(
            lambda condition, then, other: (
                {"type": "If", "condition": condition, "then": then} | ({"else": other} if other else {})
            ),
            conditions,
            children,
            maybe,
        ),
        st.builds(
            lambda cases, default: {"type": "Switch", "cases": cases} | ({"default": default} if default else {}),
            st.lists(st.builds(lambda c, n: {"condition": c, "node": n}, conditions, children), min_size=1, max_size=2),
            maybe,
        ),
        st.builds(
            lambda items, body: {"type": "ForEach", "items": items, "body": body},
            st.one_of(st.just([1, 2]), st.sampled_from(["{{ input.lines }}", "{{ a }}", "{{ item }}"])),
            children,
        ),
        st.builds(
            lambda body, catch, finally_: (
                {"type": "Try", "body": body, "catch": catch or {"type": "Step", "params": {}}}
                | ({"finally": finally_} if finally_ else {})
            ),
            children,
            maybe,
            maybe,
        ),
    ).flatmap(
        lambda node: st.builds(lambda path: node | ({"assignTo": path} if path else {}), st.one_of(st.none(), paths))
    )


def numbered(node, counter=None):
    """A copy of ``node`` with unique ids, depth first."""
    counter = counter if counter is not None else iter(range(10_000))
    out = {**node, "id": f"n{next(counter)}"}
    for key in ("then", "else", "body", "catch", "finally", "default"):
        if key in out:
            out[key] = numbered(out[key], counter)
    if "children" in out:
        out["children"] = [numbered(child, counter) for child in out["children"]]
    if "branches" in out:
        out["branches"] = {name: numbered(child, counter) for name, child in out["branches"].items()}
    if "cases" in out:
        out["cases"] = [{**case, "node": numbered(case["node"], counter)} for case in out["cases"]]
    return out


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(tree=st.recursive(leaves, control_nodes, max_leaves=10).map(numbered))
def test_fuzz_well_formed_trees_are_refused_only_for_their_data_flow(registry, tree):
    try:
        definition = validate_definition(tree, registry)
    except DefinitionError as exc:
        ids = {node["id"] for node in _walk(tree)}
        for issue in exc.issues:
            assert issue.node_id in ids, issue
            assert issue.message.startswith(("reads '", "branches '")), issue
            assert (
                issue.field == "branches"
                or issue.field in ("condition", "items")
                or issue.field.startswith(("params.value", "cases["))
            ), issue
        return
    assert validate_definition(definition.to_json(), registry) == definition


def _walk(node):
    yield node
    children = [*node.get("children", ()), *node.get("branches", {}).values()]
    children += [case["node"] for case in node.get("cases", ())]
    children += [node[key] for key in ("then", "else", "body", "catch", "finally", "default") if key in node]
    for child in children:
        yield from _walk(child)
