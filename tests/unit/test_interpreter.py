from postgit.definition import WorkflowDefinition
from postgit.interpreter import next_node


def leaf(node_id):
    return {"id": node_id, "type": "Typed", "params": {}}


def seq(node_id, *children):
    return {"id": node_id, "type": "Sequence", "children": list(children)}


NESTED = WorkflowDefinition.from_json(
    seq(
        "root",
        leaf("a"),
        seq("inner", leaf("b"), seq("deeper", leaf("c"), leaf("d"))),
        seq("tail", leaf("e")),
        leaf("f"),
    )
)


def run_order(definition):
    done, order = [], []
    while (node := next_node(definition, done, {})) is not None:
        order.append(node.id)
        done.append(node.id)
        assert len(order) < 100
    return order


def test_nested_sequences_run_depth_first_in_order():
    assert run_order(NESTED) == ["a", "b", "c", "d", "e", "f"]


def test_next_node_from_any_point():
    assert next_node(NESTED, set(), {}).id == "a"
    assert next_node(NESTED, {"a", "b"}, {}).id == "c"
    assert next_node(NESTED, {"a", "b", "c", "d"}, {}).id == "e"
    assert next_node(NESTED, {"a", "b", "c", "d", "e", "f"}, {}) is None


def test_only_leaves_are_returned_and_control_ids_in_done_do_not_matter():
    assert next_node(NESTED, {"inner", "deeper", "root"}, {}).id == "a"
    assert next_node(NESTED, {"a", "inner"}, {}).id == "b"


def test_the_first_unfinished_leaf_wins():
    assert next_node(NESTED, {"b", "c"}, {}).id == "a"
    assert next_node(NESTED, {"a", "b", "d"}, {}).id == "c"


def test_a_single_leaf_workflow():
    definition = WorkflowDefinition.from_json(leaf("only"))
    assert next_node(definition, (), {}).id == "only"
    assert next_node(definition, ("only",), {}) is None


def test_returned_node_carries_its_spec():
    definition = WorkflowDefinition.from_json(
        seq("root", {"id": "a", "type": "Sleep", "params": {"seconds": 1}, "assignTo": "$.x", "timeout": 3})
    )
    node = next_node(definition, [], {})
    assert (node.type, node.params, node.assign_to, node.timeout) == ("Sleep", {"seconds": 1}, "$.x", 3)
