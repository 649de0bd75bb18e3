import copy

import pytest
from pydantic import BaseModel, ConfigDict

from postgit.definition import NodeSpec
from postgit.outcomes import FatalError
from postgit.resolve import resolve_params


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = 0
    text: str = ""
    tags: list[str] = []
    options: dict[str, object] = {}
    anything: object = None


STATE = {
    "input": {"name": "Ada", "n": 3, "tag": "t1", "odd key": {"v": [10, 20]}},
    "fetch": {"body": {"status": "ok", "items": [{"id": 1}]}},
}


def node(**params):
    return NodeSpec(id="step", type="Typed", params=params)


def test_literals_pass_through():
    resolved = resolve_params(node(count=2, text="plain", tags=["a"], options={"k": 1}), Params, STATE)
    assert resolved == Params(count=2, text="plain", tags=["a"], options={"k": 1})


def test_refs_and_templates_are_resolved():
    resolved = resolve_params(
        node(
            count={"$ref": "$.input.n"},
            text="Hello {{ input.name }}, status {{ fetch.body.status }}",
            anything={"$ref": "$.fetch.body"},
        ),
        Params,
        STATE,
    )
    assert resolved.count == 3
    assert resolved.text == "Hello Ada, status ok"
    assert resolved.anything == {"status": "ok", "items": [{"id": 1}]}


def test_refs_and_templates_nested_in_lists_and_dicts():
    resolved = resolve_params(
        node(
            tags=[{"$ref": "$.input.tag"}, "{{ input.name | lower }}", "plain"],
            options={
                "a": {"$ref": "$.input['odd key'].v[1]"},
                "b": {"inner": ["{{ input.n * 2 }}", {"$ref": "$.fetch.body.items[0].id"}]},
            },
        ),
        Params,
        STATE,
    )
    assert resolved.tags == ["t1", "ada", "plain"]
    assert resolved.options == {"a": 20, "b": {"inner": ["6", 1]}}


def test_a_template_result_is_validated_by_the_model():
    assert resolve_params(node(count="{{ input.n + 1 }}"), Params, STATE).count == 4


def test_resolving_leaves_the_definition_and_state_alone():
    spec = node(tags=[{"$ref": "$.input.tag"}], text="{{ input.name }}")
    params_before, state_before = copy.deepcopy(spec.params), copy.deepcopy(STATE)
    resolve_params(spec, Params, STATE)
    assert spec.params == params_before
    assert state_before == STATE


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"count": {"$ref": "$.input.missing"}},
            "field 'params.count': ref $.input.missing: no key 'missing' at $.input",
        ),
        (
            {"tags": ["x", {"$ref": "$.nothing.here"}]},
            "field 'params.tags[1]': ref $.nothing.here: no key 'nothing' at $",
        ),
        (
            {"options": {"a": {"b": {"$ref": "$.fetch.body.items[3]"}}}},
            "field 'params.options.a.b': ref $.fetch.body.items[3]: no item [3] at $.fetch.body.items",
        ),
        ({"text": "{{ input.age }}"}, "field 'params.text': template failed to render"),
        ({"options": {"t": "{{ 1 / 0 }}"}}, "field 'params.options.t': template failed to render: ZeroDivisionError"),
        ({"text": "{{ input.__class__ }}"}, "field 'params.text': template failed to render: access to attribute"),
    ],
)
def test_failures_name_node_and_field(params, message):
    with pytest.raises(FatalError) as caught:
        resolve_params(node(**params), Params, STATE)
    assert str(caught.value).startswith("node 'step', ")
    assert message in str(caught.value)


def test_resolved_values_of_the_wrong_type_name_the_field():
    with pytest.raises(FatalError) as caught:
        resolve_params(node(count={"$ref": "$.input.name"}), Params, STATE)
    assert str(caught.value).startswith("node 'step': resolved params are invalid: field 'params.count': ")
