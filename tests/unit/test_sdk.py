import datetime as dt

import pytest
from pydantic import ValidationError

from postgit import HitEndpoint, Node, Ref, RetryPolicy, SendEmail, Sequence, Sleep, ref


def test_node_of_any_type():
    node = Node("Shout", id="loud", text="hello", exclamations=3)
    assert node.to_json() == {"id": "loud", "type": "Shout", "params": {"text": "hello", "exclamations": 3}}
    assert repr(node) == "Shout(id='loud')"


def test_node_without_params():
    assert Node("Anything", id="a").to_json() == {"id": "a", "type": "Anything", "params": {}}


def test_a_param_may_be_called_type():
    assert Node("Custom", id="a", type="kind").to_json()["params"] == {"type": "kind"}


def test_node_options():
    node = Node("Shout", id="a", text="x", assign_to="$.out", timeout=5)
    assert node.to_json() == {
        "id": "a",
        "type": "Shout",
        "params": {"text": "x"},
        "assignTo": "$.out",
        "timeout": 5,
    }


@pytest.mark.parametrize(
    "retry",
    [
        {"maxAttempts": 5, "initialInterval": 0.5},
        {"max_attempts": 5, "initial_interval": 0.5},
        RetryPolicy(max_attempts=5, initial_interval=0.5),
    ],
)
def test_retry_as_dict_or_policy(retry):
    node = Node("Shout", id="a", text="x", retry=retry)
    assert node.retry == RetryPolicy(max_attempts=5, initial_interval=0.5)
    assert node.to_json()["retry"] == {"maxAttempts": 5, "initialInterval": 0.5}


def test_default_retry_is_kept_as_an_explicit_empty_policy():
    assert Node("Shout", id="a", retry=RetryPolicy()).to_json()["retry"] == {}
    assert "retry" not in Node("Shout", id="a").to_json()


def test_bad_retry_dict_fails_when_building():
    with pytest.raises(ValidationError):
        Node("Shout", id="a", retry={"attempts": 5})


def test_ref():
    assert ref("$.a.b") == Ref("$.a.b")
    assert ref("$.a.b").to_json() == {"$ref": "$.a.b"}
    assert Node("X", id="a", value=ref("$.v")).to_json()["params"] == {"value": {"$ref": "$.v"}}


def test_refs_nested_in_dicts_lists_and_tuples():
    node = Node(
        "X",
        id="a",
        body={"status": ref("$.fetch.status"), "list": [1, ref("$.items[0]"), {"deep": [ref("$['k y']")]}]},
        pair=(ref("$.x"), "literal"),
    )
    assert node.to_json()["params"] == {
        "body": {
            "status": {"$ref": "$.fetch.status"},
            "list": [1, {"$ref": "$.items[0]"}, {"deep": [{"$ref": "$['k y']"}]}],
        },
        "pair": [{"$ref": "$.x"}, "literal"],
    }


def test_building_does_not_change_the_callers_values():
    body = {"a": [ref("$.x")]}
    Node("X", id="a", body=body).to_json()
    assert body == {"a": [Ref("$.x")]}


def test_builtin_builders():
    assert HitEndpoint(id="h", url="http://x/", method="POST", json={"a": 1}).to_json() == {
        "id": "h",
        "type": "HitEndpoint",
        "params": {"url": "http://x/", "method": "POST", "json": {"a": 1}},
    }
    assert HitEndpoint(id="h", url=ref("$.url")).to_json()["params"] == {"url": {"$ref": "$.url"}, "method": "GET"}
    assert Sleep(id="s", seconds=1.5).to_json() == {"id": "s", "type": "Sleep", "params": {"seconds": 1.5}}
    until = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).isoformat()
    assert Sleep(id="s", until=until).to_json()["params"] == {"until": until}
    assert SendEmail(id="m", to=["a@x", "b@x"], subject="s", body=ref("$.b"), reply_to="c@x").to_json() == {
        "id": "m",
        "type": "SendEmail",
        "params": {"to": ["a@x", "b@x"], "subject": "s", "body": {"$ref": "$.b"}, "reply_to": "c@x"},
    }


def test_nested_sequences():
    root = Sequence(id="root", children=[Sequence(id="inner", children=[Node("X", id="a")]), Node("X", id="b")])
    assert root.to_json() == {
        "id": "root",
        "type": "Sequence",
        "children": [
            {"id": "inner", "type": "Sequence", "children": [{"id": "a", "type": "X", "params": {}}]},
            {"id": "b", "type": "X", "params": {}},
        ],
    }
    assert repr(root) == "Sequence(id='root')"
