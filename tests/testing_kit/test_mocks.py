"""Node mocks: they stand in for a handler, get the params it would have got, and record every call."""

from __future__ import annotations

import pytest

from postgit import FatalError, HitEndpoint, Node, Parallel, Sequence, ref
from postgit.testing import PostgitEnv, PostgitTestingError


def test_a_mock_for_one_node_gets_the_resolved_params_and_records_the_call(postgit_env: PostgitEnv):
    fetch = postgit_env.mock("HitEndpoint", node="fetch", returns={"status": 200, "body": {"id": 7}})
    workflow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch", url="http://api.example/orders/{{ input.order }}", assign_to="$.order"),
            Node("Shout", id="shout", text="order {{ order.body.id }}", assign_to="$.shouted"),
        ],
    )
    instance = postgit_env.run(workflow, {"order": "A-1"})
    assert instance.status == "completed", instance.error
    [call] = fetch.calls
    assert call.node_id == "fetch" and call.attempt == 1 and call.instance_id == instance.id
    assert call.params["url"] == "http://api.example/orders/A-1"
    assert instance.state["shouted"] == {"text": "ORDER 7!"}  # Shout, not mocked, ran for real


def test_a_mock_that_raises_a_fatal_error_fails_the_instance_at_that_node(postgit_env: PostgitEnv):
    postgit_env.mock("HitEndpoint", node="charge", raises=FatalError("card declined"))
    instance = postgit_env.run(HitEndpoint(id="charge", url="http://pay.example/charge"))
    assert instance.status == "failed"
    assert instance.error["node_id"] == "charge" and instance.error["message"] == "card declined"
    assert len(instance.attempts("charge")) == 1  # a fatal error is not retried


def test_a_mock_for_a_node_wins_over_one_for_its_type(postgit_env: PostgitEnv):
    everywhere = postgit_env.mock("Shout", returns={"text": "mocked"})
    one = postgit_env.mock("Shout", node="b", side_effect=lambda ctx, params: {"text": params.text * 2})
    workflow = Parallel(
        id="both",
        branches={"a": Node("Shout", id="a", text="x"), "b": Node("Shout", id="b", text="y")},
        assign_to="$.out",
    )
    instance = postgit_env.run(workflow)
    assert instance.state["out"] == {"a": {"text": "mocked"}, "b": {"text": "yy"}}
    assert [call.node_id for call in everywhere.calls] == ["a"] and [call.node_id for call in one.calls] == ["b"]


def test_mocks_that_cannot_match_anything_are_refused_with_what_would(postgit_env: PostgitEnv):
    with pytest.raises(PostgitTestingError, match="cannot mock node type 'HitEndpiont': it is not installed"):
        postgit_env.mock("HitEndpiont", node="fetch")
    with pytest.raises(PostgitTestingError, match="WaitForEvent is run by the engine itself"):
        postgit_env.mock("WaitForEvent")
    postgit_env.mock("HitEndpoint", node="fetch-dat", returns={})
    with pytest.raises(PostgitTestingError, match=r"matches no node.*HitEndpoint nodes are 'fetch-data'"):
        postgit_env.run(HitEndpoint(id="fetch-data", url="http://api.example/"))


def test_a_mock_reads_refs_from_the_state(postgit_env: PostgitEnv):
    notify = postgit_env.mock("SendEmail")
    workflow = Node("SendEmail", id="notify", to=ref("$.input.email"), subject="Hi", body="Hello {{ input.name }}")
    instance = postgit_env.run(workflow, {"email": "ada@example.com", "name": "Ada"})
    assert instance.status == "completed", instance.error
    assert notify.calls[0].params["to"] == ["ada@example.com"]
    assert notify.calls[0].params["body"] == "Hello Ada"


def test_a_mock_takes_one_answer(postgit_env: PostgitEnv):
    with pytest.raises(
        PostgitTestingError, match=r"takes one of returns, raises and side_effect, not \['returns', 'raises'\]"
    ):
        postgit_env.mock("Shout", returns={}, raises=FatalError("no"))
    with pytest.raises(PostgitTestingError, match="must be an exception"):
        postgit_env.mock("Shout", raises="boom")  # type: ignore[arg-type]
    with pytest.raises(PostgitTestingError, match="side_effect= of a mock of Shout is empty"):
        postgit_env.mock("Shout", side_effect=[])
    with pytest.raises(PostgitTestingError, match="time only moves forward"):
        postgit_env.advance(-1)
