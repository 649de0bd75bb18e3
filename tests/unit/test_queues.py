"""Queues: a step's or a workflow's `queue`, checked at deploy; POSTGIT_QUEUES; why a pending instance waits."""

from __future__ import annotations

import pytest

from postgit import Node, Parallel, Sequence, SubWorkflow, WaitForEvent, Workflow
from postgit.definition import DEFAULT_QUEUE, WorkflowDefinition
from postgit.errors import PostgitError
from postgit.service import _missing_worker_reason
from postgit.settings import WorkerSettings
from postgit.validation import validate_definition
from tests.unit.flow_support import issues_of, only_issue, step, step_registry


@pytest.fixture(scope="module")
def registry():
    return step_registry()


def test_a_step_and_a_workflow_name_queues_and_the_rest_is_default(registry):
    root = Sequence(
        id="root",
        children=[
            Node("Noop", id="a"),
            Node("Noop", id="gpu", queue="gpu"),
            WaitForEvent(id="w", event="go", queue="ops"),
            SubWorkflow(id="s", workflow="child", queue="ops"),
        ],
    )
    plain = WorkflowDefinition.from_json(root.to_json())
    assert plain.to_json()["children"][1]["queue"] == "gpu"
    assert [plain.queue_of(plain.nodes[key]) for key in ("a", "gpu", "w", "s")] == [DEFAULT_QUEUE, "gpu", "ops", "ops"]

    wrapped = Workflow(root, queue="cpu").to_json()
    assert wrapped["queue"] == "cpu"
    definition = WorkflowDefinition.from_json(wrapped)
    assert definition.queue_of(definition.nodes["a"]) == "cpu"
    assert definition.queue_of(definition.nodes["gpu"]) == "gpu"
    assert WorkflowDefinition.from_json(definition.to_json()) == definition

    checked = validate_definition({"root": step("a", queue="gpu.large-1"), "queue": "default"}, registry)
    assert checked.root.queue == "gpu.large-1" and checked.queue == "default"


@pytest.mark.parametrize("queue", ["", " gpu", "gpu!", "-gpu", "g" * 129, 5, "gpu*", ["gpu"]])
def test_a_bad_queue_name_is_refused_naming_the_node_and_field(registry, queue):
    issue = only_issue({"id": "root", "type": "Sequence", "children": [step("a", queue=queue)]}, registry)
    assert (issue.node_id, issue.field) == ("a", "queue")
    assert "invalid queue name" in issue.message and "letters, digits" in issue.message

    issue = only_issue({"root": step("a"), "queue": queue}, registry)
    assert (issue.node_id, issue.field) == (None, "queue")


def test_a_control_flow_node_takes_no_queue(registry):
    definition = Parallel(id="p", branches={"a": Node("Step", id="a")}).to_json()
    definition["queue"] = "gpu"
    issues = issues_of(definition, registry)
    assert [(issue.node_id, issue.field) for issue in issues] == [("p", "queue")]
    assert "set queue on the steps inside it (or on the workflow" in issues[0].message


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("POSTGIT_QUEUES", raising=False)
    monkeypatch.delenv("POSTGIT_EVENTS_KEEP", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@db:5432/postgit")
    return monkeypatch


def test_postgit_queues(environment):
    assert WorkerSettings.from_env().queues is None
    environment.setenv("POSTGIT_QUEUES", "  ")
    assert WorkerSettings.from_env().queues is None
    environment.setenv("POSTGIT_QUEUES", "gpu, default")
    assert WorkerSettings.from_env().queues == frozenset({"gpu", "default"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gpu,,cpu", "has an empty queue name"),
        ("gpu,", "has an empty queue name"),
        ("gpu,c p u", "invalid queue name 'c p u'"),
        ("*", "invalid queue name '*'"),
    ],
)
def test_a_bad_postgit_queues_names_the_variable(environment, value, message):
    environment.setenv("POSTGIT_QUEUES", value)
    with pytest.raises(PostgitError) as raised:
        WorkerSettings.from_env()
    assert str(raised.value).startswith("POSTGIT_QUEUES=") and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_postgit_events_keep(environment):
    assert WorkerSettings.from_env().events_keep == 1000
    environment.setenv("POSTGIT_EVENTS_KEEP", "off")
    assert WorkerSettings.from_env().events_keep is None
    environment.setenv("POSTGIT_EVENTS_KEEP", "50")
    assert WorkerSettings.from_env().events_keep == 50
    for bad in ("9", "1.5", "many", "0"):
        environment.setenv("POSTGIT_EVENTS_KEEP", bad)
        with pytest.raises(PostgitError, match=r"^POSTGIT_EVENTS_KEEP="):
            WorkerSettings.from_env()


def worker(types: list[str], queues: list[str] | None) -> dict:
    return {"id": "w", "node_types": types, "queues": queues}


def test_a_pending_instance_says_which_queue_no_worker_serves():
    gpu_noop = ["gpu:Noop"]
    assert _missing_worker_reason(["Noop"], [worker(["Noop"], ["default"])], gpu_noop) == (
        "no live worker serves queue 'gpu'"
    )
    assert _missing_worker_reason(["Noop"], [worker(["Noop"], ["gpu"])], gpu_noop) is None
    assert _missing_worker_reason(["Noop"], [worker(["Noop"], None)], gpu_noop) is None
    assert _missing_worker_reason(["postgit.any"], [worker(["Noop"], ["default"])], ["*"]) is None
    # a worker serving the queue without the node type does not count
    workers = [worker(["Noop"], ["default"]), worker(["Shout"], ["gpu"])]
    assert _missing_worker_reason(["Noop"], workers, gpu_noop) == (
        "no live worker serving its queue has its node type: queue 'gpu' with node type 'Noop'"
    )
    assert _missing_worker_reason(["Shout"], [worker(["Noop"], ["gpu"])], ["gpu:Shout"]) == (
        "no live worker has node type 'Shout'"
    )
    assert _missing_worker_reason(["Noop"], [], gpu_noop) == "no worker is running"
