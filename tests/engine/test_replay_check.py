"""Checking a new definition against the recorded runs of finished instances (``POST /workflows/{name}/check``).

The instances are run with the testing kit: HitEndpoint mocked, Sleep skipped.
"""

from __future__ import annotations

import pytest

from postgit import (
    DefinitionError,
    FatalError,
    ForEach,
    HitEndpoint,
    If,
    Node,
    Sequence,
    Sleep,
    Switch,
    WaitForEvent,
    ref,
)
from postgit.checking import check_definition
from postgit.errors import NotFound
from postgit.testing import PostgitEnv


def order(limit: int = 100, fetched: str = "$.fetched", extra: list | None = None, tail: list | None = None):
    return Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch", url="http://shop.example/orders/{{ input.order }}", assign_to=fetched),
            *(extra or []),
            If(
                id="big",
                condition=f"input.amount > {limit}",
                then=Node("Shout", id="approve", text="approve {{ input.order }}"),
                else_=Node("Shout", id="skip", text="skip"),
            ),
            Sleep(id="cool-off", seconds=3600),
            Node("Shout", id="notify", text=ref(f"{fetched}.body.status")),
            *(tail or []),
        ],
    )


@pytest.fixture
def env(postgit_env: PostgitEnv) -> PostgitEnv:
    postgit_env.mock("HitEndpoint", node="fetch", returns={"status": 200, "body": {"status": "paid"}})
    for order_id, amount in (("small", 50), ("large", 500)):
        assert postgit_env.run(order(), {"order": order_id, "amount": amount}, name="orders").status == "completed"
    return postgit_env


def check(env: PostgitEnv, definition, instances: int = 20) -> dict:
    return env.call(check_definition(env.service, "orders", definition.to_json(), instances))


def by_order(env: PostgitEnv, report: dict) -> dict[str, dict]:
    return {env.instance(item["id"]).state["input"]["order"]: item for item in report["instances"]}


def test_the_same_definition_replays_every_instance_the_same(env: PostgitEnv):
    report = check(env, order())
    assert report["workflow"] == "orders" and report["version"] == 1
    assert report["checked"] == 2 and report["diverged"] == 0
    assert all(not item["diverged"] and item["reason"] is None for item in report["instances"])


def test_a_condition_that_now_takes_the_other_branch_diverges_at_its_node(env: PostgitEnv):
    report = check(env, order(limit=1000))
    items = by_order(env, report)
    assert report["diverged"] == 1 and not items["small"]["diverged"]
    assert items["large"]["node_id"] == "big"
    assert items["large"]["reason"] == "decides branch 'else'; the recorded run decided branch 'then'"


def test_a_new_node_before_recorded_ones_diverges_and_one_after_them_does_not(env: PostgitEnv):
    inserted = check(env, order(extra=[Node("Shout", id="audit", text="audit")]))
    assert inserted["diverged"] == 2
    items = by_order(env, inserted)
    assert items["large"]["node_id"] == "audit"
    assert items["large"]["reason"] == "runs 'audit' (Shout), which was not recorded, before recorded 'approve'"
    assert items["small"]["reason"].endswith("before recorded 'skip'")
    appended = check(env, order(tail=[Node("Shout", id="thanks", text="thanks")]))
    assert appended["diverged"] == 0


def test_a_ref_that_no_longer_resolves_diverges_at_the_node_that_reads_it(env: PostgitEnv):
    renamed = Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch", url="http://shop.example/orders/{{ input.order }}", assign_to="$.order_data"),
            If(
                id="big",
                condition="input.amount > 100",
                then=Node("Shout", id="approve", text="approve {{ input.order }}"),
                else_=Node("Shout", id="skip", text="skip"),
            ),
            Sleep(id="cool-off", seconds=3600),
            Node("Shout", id="notify", text=ref("$.order_data.body.state")),
        ],
    )
    report = check(env, renamed)
    assert report["diverged"] == 2
    item = report["instances"][0]
    assert item["node_id"] == "notify"
    assert "its params no longer resolve: field 'params.text'" in item["reason"] and "state" in item["reason"]


def test_a_node_of_another_type_under_a_recorded_id_diverges(env: PostgitEnv):
    changed = Sequence(
        id="root",
        children=[
            Node("Shout", id="fetch", text="not a request"),
        ],
    )
    report = check(env, changed)
    assert report["instances"][0]["node_id"] == "fetch"
    assert report["instances"][0]["reason"] == "is a Shout now; the recorded run was a HitEndpoint"


def test_an_item_list_or_case_decided_otherwise_diverges(postgit_env: PostgitEnv):
    loop = ForEach(id="each", items=ref("$.input.lines"), body=Node("Shout", id="line", text="{{ item }}"))
    assert postgit_env.run(loop, {"lines": ["a", "b"]}, name="orders").status == "completed"
    longer = ForEach(id="each", items="{{ input.lines + ['c'] }}", body=Node("Shout", id="line", text="{{ item }}"))
    report = postgit_env.call(check_definition(postgit_env.service, "orders", longer.to_json()))
    assert report["instances"][0]["reason"] == "decides 3 items; the recorded run decided 2 items"
    switch = Switch(id="each", cases=[("false", Node("Shout", id="x", text="x"))])
    report = postgit_env.call(check_definition(postgit_env.service, "orders", switch.to_json()))
    assert report["diverged"] == 1


def test_bad_requests_name_what_is_wrong(env: PostgitEnv):
    with pytest.raises(DefinitionError, match="node 'notify'"):
        env.call(check_definition(env.service, "orders", {"id": "notify", "type": "Shout", "params": {}}))
    with pytest.raises(NotFound, match="workflow 'nope'"):
        env.call(check_definition(env.service, "nope", order().to_json()))
    assert check(env, order(), instances=1)["checked"] == 1


def test_failed_and_cancelled_instances_replay_up_to_where_they_stopped(postgit_env: PostgitEnv):
    postgit_env.mock("HitEndpoint", node="charge", side_effect=[FatalError("card declined"), {"status": 200}])

    def flow(*inserted):
        return Sequence(
            id="root",
            children=[
                HitEndpoint(id="charge", url="http://pay.example/charge"),
                *inserted,
                WaitForEvent(id="approve", event="approved"),
                Node("Shout", id="after", text="x"),
            ],
        )

    declined = postgit_env.run(flow(), name="orders")
    assert declined.status == "failed"
    waiting = postgit_env.start("orders")
    postgit_env.advance(60)
    postgit_env.cancel(waiting)
    assert postgit_env.instance(waiting).status == "cancelled"

    same = postgit_env.call(check_definition(postgit_env.service, "orders", flow().to_json()))
    assert (same["checked"], same["diverged"]) == (2, 0)
    inserted = postgit_env.call(
        check_definition(postgit_env.service, "orders", flow(Node("Shout", id="audit", text="a")).to_json())
    )
    items = {item["id"]: item for item in inserted["instances"]}
    assert items[waiting]["node_id"] == "audit"  # it had begun to wait: 'audit' would have run before that
    assert not items[declined.id]["diverged"]  # it failed at the charge, before anything that changed
