import pytest
from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field, RootModel

import postgit
from postgit.errors import DefinitionError
from postgit.plugins import load_registry
from postgit.validation import MAX_DEFINITION_BYTES, MAX_DEPTH, MAX_ID_LENGTH, MAX_NODES, validate_definition


class TypedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int
    text: str = ""
    tags: list[str] = []
    options: dict[str, int] = {}


class TypedPlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types():
        return [postgit.NodeType(name="Typed", params=TypedParams, handler=lambda ctx, params: None)]


@pytest.fixture(scope="module")
def registry():
    return load_registry(extra=[TypedPlugin])


def leaf(node_id="a", **extra):
    return {"id": node_id, "type": "Typed", "params": {"count": 1}, **extra}


def seq(node_id="root", children=None, **extra):
    return {"id": node_id, "type": "Sequence", "children": children if children is not None else [leaf()], **extra}


def issues_of(raw, registry):
    with pytest.raises(DefinitionError) as caught:
        validate_definition(raw, registry)
    return caught.value.issues


def only_issue(raw, registry):
    issues = issues_of(raw, registry)
    assert len(issues) == 1, issues
    return issues[0]


def test_a_valid_definition_passes(registry):
    definition = validate_definition(seq(children=[leaf("a"), seq("inner", [leaf("b", assignTo="$.b")])]), registry)
    assert list(definition.nodes) == ["root", "a", "inner", "b"]
    assert definition.node_types() == {"Typed"}


def test_unknown_node_type_lists_the_installed_ones(registry):
    issue = only_issue(seq(children=[{"id": "x", "type": "Nope", "params": {}}]), registry)
    assert (issue.node_id, issue.field) == ("x", "type")
    assert "unknown node type 'Nope'" in issue.message
    installed = issue.message.split("; installed: ")[1].split(", ")
    assert installed == sorted(installed)
    assert {"HitEndpoint", "SendEmail", "Sequence", "Shout", "Sleep", "Typed"} <= set(installed)
    assert str(issue).startswith("node 'x', field 'type': ")


def test_missing_type(registry):
    issue = only_issue(seq(children=[{"id": "x", "params": {}}]), registry)
    assert (issue.node_id, issue.field) == ("x", "type")


def test_missing_required_param(registry):
    issue = only_issue({"id": "a", "type": "Typed", "params": {}}, registry)
    assert (issue.node_id, issue.field, issue.message) == ("a", "params.count", "Field required")


def test_missing_params_object_means_no_params(registry):
    issue = only_issue({"id": "a", "type": "Typed"}, registry)
    assert (issue.node_id, issue.field) == ("a", "params.count")


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"count": "many"}, "params.count", "valid integer"),
        ({"count": 1.5}, "params.count", "valid integer"),
        ({"count": 1, "text": 5}, "params.text", "valid string"),
        ({"count": 1, "tags": "x"}, "params.tags", "valid list"),
        ({"count": 1, "tags": ["x", 2]}, "params.tags.1", "valid string"),
        ({"count": 1, "options": {"a": "b"}}, "params.options.a", "valid integer"),
    ],
)
def test_wrongly_typed_params_are_checked_against_the_model(registry, params, field, message):
    issue = only_issue({"id": "a", "type": "Typed", "params": params}, registry)
    assert (issue.node_id, issue.field) == ("a", field)
    assert message in issue.message


def test_unknown_params_are_refused(registry):
    issue = only_issue({"id": "a", "type": "Typed", "params": {"count": 1, "colour": "red"}}, registry)
    assert (issue.node_id, issue.field) == ("a", "params.colour")
    assert issue.message == (
        "Extra inputs are not permitted: Typed has no param 'colour' (Typed takes count, options, tags, text)"
    )


class LenientParams(BaseModel):
    """A plugin's params model that does not forbid extra keys (pydantic ignores them by default)."""

    text: str
    exclamations: int = 1


class AllowingParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str


class AliasedParams(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(default="", alias="from")
    json_body: int = Field(default=0, validation_alias=AliasChoices("json", AliasPath("body", 0)))


class AliasOnlyParams(BaseModel):
    sender: str = Field(default="", alias="from")


class LenientPlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types():
        return [
            postgit.NodeType(name=name, params=model, handler=lambda ctx, params: None)
            for name, model in [
                ("Lenient", LenientParams),
                ("Allowing", AllowingParams),
                ("Aliased", AliasedParams),
                ("AliasOnly", AliasOnlyParams),
                ("Rooted", RootModel[dict[str, int]]),
            ]
        ]


@pytest.fixture(scope="module")
def lenient_registry():
    return load_registry(extra=[LenientPlugin])


@pytest.mark.parametrize("node_type", ["Lenient", "Allowing"])
def test_an_undeclared_param_is_refused_whatever_the_models_config(lenient_registry, node_type):
    raw = {"id": "a", "type": node_type, "params": {"text": "hi", "exclamation": 3}}
    issue = only_issue(raw, lenient_registry)
    assert (issue.node_id, issue.field) == ("a", "params.exclamation")
    assert f"{node_type} has no param 'exclamation'" in issue.message
    if node_type == "Lenient":
        assert "did you mean 'exclamations'?" in issue.message


def test_an_undeclared_param_holding_a_ref_or_template_is_refused_too(lenient_registry):
    params = {"text": "hi", "colour": "{{ input.c }}", "size": {"$ref": "$.input.s"}}
    issues = issues_of({"id": "a", "type": "Lenient", "params": params}, lenient_registry)
    assert [issue.field for issue in issues] == ["params.colour", "params.size"]


def test_params_may_be_given_by_name_or_alias_as_the_model_allows(lenient_registry):
    validate_definition({"id": "a", "type": "Aliased", "params": {"from": "x", "json": 1}}, lenient_registry)
    validate_definition({"id": "a", "type": "Aliased", "params": {"sender": "x", "body": [1]}}, lenient_registry)
    validate_definition({"id": "a", "type": "AliasOnly", "params": {"from": "x"}}, lenient_registry)
    issue = only_issue({"id": "a", "type": "AliasOnly", "params": {"sender": "x"}}, lenient_registry)
    assert (issue.field, "AliasOnly takes from") == ("params.sender", issue.message.split("(", 1)[1].rstrip(")"))


def test_a_root_model_decides_for_itself(lenient_registry):
    validate_definition({"id": "a", "type": "Rooted", "params": {"any": 1, "keys": 2}}, lenient_registry)


def test_builtin_and_engine_node_types_refuse_undeclared_params(registry):
    for node_type, params in [
        ("Sleep", {"seconds": 1, "second": 2}),
        ("WaitForEvent", {"event": "go", "name": "x"}),
        ("SubWorkflow", {"workflow": "child", "onParentCancel": "abandon"}),
    ]:
        issue = only_issue({"id": "a", "type": node_type, "params": params}, registry)
        assert issue.message.startswith(f"Extra inputs are not permitted: {node_type} has no param"), issue


def test_params_must_be_an_object(registry):
    issue = only_issue({"id": "a", "type": "Typed", "params": [1]}, registry)
    assert (issue.node_id, issue.field) == ("a", "params")


def test_builtin_params_are_checked_too(registry):
    raw = seq(
        children=[
            {"id": "fetch", "type": "HitEndpoint", "params": {"url": "ftp://x"}},
            {"id": "wait", "type": "Sleep", "params": {}},
            {"id": "mail", "type": "SendEmail", "params": {"to": "nobody", "subject": "s", "body": "b"}},
        ]
    )
    found = {(issue.node_id, issue.field) for issue in issues_of(raw, registry)}
    assert found == {("fetch", "params.url"), ("wait", "params"), ("mail", "params.to")}


def test_duplicate_node_ids(registry):
    issue = only_issue(seq(children=[leaf("a"), seq("inner", [leaf("a")])]), registry)
    assert (issue.node_id, issue.field) == ("a", "id")
    assert "duplicate node id" in issue.message


def test_a_child_may_not_reuse_the_root_id(registry):
    issue = only_issue(seq("root", [leaf("root")]), registry)
    assert (issue.node_id, issue.field) == ("root", "id")


@pytest.mark.parametrize(
    ("assign_to", "message"),
    [
        ("$.results[*]", "is not a valid path at position 9"),
        ("$..x", "is not a valid path at position 1"),
        ("result", "must start with '$'"),
        ("$", "cannot assign to the whole state"),
        (5, "is not a path"),
    ],
)
def test_malformed_assign_to(registry, assign_to, message):
    issue = only_issue(leaf("a", assignTo=assign_to), registry)
    assert (issue.node_id, issue.field) == ("a", "assignTo")
    assert message in issue.message


@pytest.mark.parametrize("assign_to", ["$.results[0]", "$['a key'].b", "$.a.b.c"])
def test_assign_to_accepts_any_single_location(registry, assign_to):
    definition = validate_definition(leaf("a", assignTo=assign_to), registry)
    assert definition.root.assign_to == assign_to


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"count": {"$ref": "$.x[?(@.y)]"}}, "params.count", "position 3"),
        ({"count": {"$ref": "input.count"}}, "params.count", "must start with '$'"),
        ({"count": {"$ref": 7}}, "params.count", "is not a path"),
        ({"count": {"$ref": "$.a", "fallback": 1}}, "params.count", 'with an optional "default", and nothing else'),
        ({"count": 1, "tags": ["ok", {"$ref": "$.list[1:2]"}]}, "params.tags[1]", "position 6"),
        ({"count": 1, "options": {"k": {"$ref": "$.*"}}}, "params.options.k", "position 1"),
    ],
)
def test_malformed_refs(registry, params, field, message):
    issue = only_issue({"id": "a", "type": "Typed", "params": params}, registry)
    assert (issue.node_id, issue.field) == ("a", field)
    assert message in issue.message


@pytest.mark.parametrize(
    ("params", "field", "line"),
    [
        ({"count": 1, "text": "Hello {{ input.name "}, "params.text", 1),
        ({"count": 1, "text": "a\n{% if x %}"}, "params.text", 2),
        ({"count": 1, "tags": ["{{ ok }}", "{% for %}"]}, "params.tags[1]", 1),
    ],
)
def test_templates_that_do_not_parse(registry, params, field, line):
    issue = only_issue({"id": "a", "type": "Typed", "params": params}, registry)
    assert (issue.node_id, issue.field) == ("a", field)
    assert f"template does not parse (line {line})" in issue.message


@pytest.mark.parametrize(
    "params",
    [
        {"count": {"$ref": "$.input.count"}},
        {"count": "{{ input.count }}"},
        {"count": 1, "text": {"$ref": "$.input.text"}},
        {"count": 1, "tags": [{"$ref": "$.input.tag"}, "{{ input.other }}", "plain"]},
        {"count": 1, "tags": {"$ref": "$.input.tags"}},
        {"count": 1, "options": {"a": {"$ref": "$.input['a b']"}, "b": "{{ input.b }}"}},
    ],
)
def test_refs_and_templates_in_typed_params_are_accepted_at_deploy_time(registry, params):
    definition = validate_definition({"id": "a", "type": "Typed", "params": params}, registry)
    assert definition.root.params == params


def test_refs_and_templates_in_builtin_params_are_accepted(registry):
    raw = seq(
        children=[
            {"id": "fetch", "type": "HitEndpoint", "params": {"url": "{{ input.url }}"}},
            {"id": "wait", "type": "Sleep", "params": {"seconds": {"$ref": "$.input.delay"}}},
            {
                "id": "mail",
                "type": "SendEmail",
                "params": {"to": [{"$ref": "$.input.to"}], "subject": "s", "body": "b"},
            },
        ]
    )
    validate_definition(raw, registry)


@pytest.mark.parametrize("raw", [[], "root", None, 5, [seq()]])
def test_root_must_be_an_object(registry, raw):
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == (None, None)
    assert "must be a JSON object" in issue.message


@pytest.mark.parametrize("children", [[], None, "a", {"id": "a"}])
def test_sequence_needs_children(registry, children):
    raw = {"id": "root", "type": "Sequence"}
    if children is not None:
        raw["children"] = children
    issue = only_issue(raw, registry)
    assert (issue.node_id, issue.field) == ("root", "children")
    assert "non-empty list of nodes" in issue.message


def test_a_child_must_be_an_object(registry):
    issue = only_issue(seq(children=[leaf(), "b"]), registry)
    assert (issue.node_id, issue.field) == ("root", "children")
    assert "a child of 'root' must be a JSON object, got str" in issue.message


def test_a_leaf_has_no_children(registry):
    issue = only_issue(leaf("a", children=[leaf("b")]), registry)
    assert (issue.node_id, issue.field) == ("a", "children")
    assert "Typed is not a control-flow node" in issue.message


def test_a_sequence_has_no_params(registry):
    issue = only_issue(seq(params={"count": 1}), registry)
    assert (issue.node_id, issue.field) == ("root", "params")
    assert "Sequence takes no params" in issue.message


def test_unknown_node_keys(registry):
    issues = issues_of(leaf("a", assign_to="$.x", Retry={}), registry)
    assert {(issue.node_id, issue.field) for issue in issues} == {("a", "assign_to"), ("a", "Retry")}
    assert all("unknown key" in issue.message for issue in issues)


@pytest.mark.parametrize(
    ("node_id", "field_of"),
    [(None, "root"), ("", "root"), ("   ", "root"), (5, "root"), (["a"], "root")],
)
def test_ids_must_be_non_empty_strings(registry, node_id, field_of):
    issue = only_issue(seq(children=[{"id": node_id, "type": "Typed", "params": {"count": 1}}]), registry)
    assert (issue.node_id, issue.field) == (field_of, "id")
    assert "a child of 'root' has no 'id'" in issue.message


def test_the_root_needs_an_id(registry):
    issue = only_issue({"type": "Typed", "params": {"count": 1}}, registry)
    assert (issue.node_id, issue.field) == (None, "id")
    assert "the root has no 'id'" in issue.message


@pytest.mark.parametrize(
    "node_id", ["a\nb", "tab\there", "nul\x00", "bell\x07", "rtl\u202eoverride", "zero\u200bwidth", "del\x7f"]
)
def test_ids_with_control_or_invisible_characters_are_refused(registry, node_id):
    issue = only_issue(leaf(node_id), registry)
    assert issue.field == "id"
    assert "printable" in issue.message


@pytest.mark.parametrize("node_id", ["café", "ノード-1", "fetch data", "a.b:c/d"])
def test_printable_unicode_ids_are_accepted(registry, node_id):
    assert validate_definition(leaf(node_id), registry).root.id == node_id


def test_overlong_ids_are_refused(registry):
    validate_definition(leaf("x" * MAX_ID_LENGTH), registry)
    issue = only_issue(leaf("x" * (MAX_ID_LENGTH + 1)), registry)
    assert (issue.node_id, issue.field) == ("x" * MAX_ID_LENGTH, "id")


def nested(depth):
    node = leaf("leaf")
    for level in range(depth - 1):
        node = seq(f"s{level}", [node])
    return node


def test_nesting_up_to_max_depth_is_accepted(registry):
    validate_definition(nested(MAX_DEPTH), registry)


def test_nesting_deeper_than_max_depth_is_refused(registry):
    issue = only_issue(nested(MAX_DEPTH + 1), registry)
    assert f"nesting is deeper than {MAX_DEPTH} levels" in issue.message
    assert issue.node_id == "leaf"


@pytest.mark.parametrize("depth", [1_000, 5_000, 50_000])
def test_very_deep_nesting_is_refused_without_recursion_error(registry, depth):
    issue = only_issue(nested(depth), registry)
    assert "nests deeper than" in issue.message


def test_deeply_nested_param_values_are_refused_without_recursion_error(registry):
    value = "bottom"
    for _ in range(10_000):
        value = [value]
    issue = only_issue({"id": "a", "type": "Typed", "params": {"count": 1, "tags": value}}, registry)
    assert "nests deeper than" in issue.message


def test_too_many_nodes(registry):
    validate_definition(seq(children=[leaf(f"n{i}") for i in range(MAX_NODES - 1)]), registry)
    issue = only_issue(seq(children=[leaf(f"n{i}") for i in range(MAX_NODES)]), registry)
    assert issue.message == f"definition has {MAX_NODES + 1} nodes; the limit is {MAX_NODES}"


def test_oversized_definition(registry):
    raw = {"id": "a", "type": "Typed", "params": {"count": 1, "text": "x" * MAX_DEFINITION_BYTES}}
    issue = only_issue(raw, registry)
    assert f"the limit is {MAX_DEFINITION_BYTES}" in issue.message


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ({"maxAttempts": 0}, "maxAttempts: Input should be greater than or equal to 1"),
        ({"maxAttempts": 3, "tries": 1}, "tries: Extra inputs are not permitted"),
        ({"backoffCoefficient": 0.1}, "backoffCoefficient"),
        ("3", "valid dictionary"),
    ],
)
def test_bad_retry(registry, retry, message):
    issue = only_issue(leaf("a", retry=retry), registry)
    assert (issue.node_id, issue.field) == ("a", "retry")
    assert message in issue.message


@pytest.mark.parametrize("timeout", [0, -1, 86_401, "10", True, [10], float("nan")])
def test_bad_timeout(registry, timeout):
    issue = only_issue(leaf("a", timeout=timeout), registry)
    assert (issue.node_id, issue.field) == ("a", "timeout")
    assert "between 0 and 86400" in issue.message


def test_good_retry_and_timeout(registry):
    definition = validate_definition(leaf("a", retry={"maxAttempts": 5}, timeout=2.5), registry)
    assert definition.root.retry.max_attempts == 5
    assert definition.root.timeout == 2.5


def test_every_problem_is_reported_at_once(registry):
    raw = seq(
        children=[
            {"id": "a", "type": "Typed", "params": {}},
            {"id": "b", "type": "Nope"},
            {"id": "a", "type": "Typed", "params": {"count": 1}, "timeout": -1},
        ]
    )
    issues = issues_of(raw, registry)
    assert [(issue.node_id, issue.field) for issue in issues] == [
        ("a", "params.count"),
        ("b", "type"),
        ("a", "id"),
        ("a", "timeout"),
    ]
    assert [issue.as_dict()["node_id"] for issue in issues] == ["a", "b", "a", "a"]
