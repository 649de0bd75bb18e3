"""Retries with exponential backoff, and the final failure recorded with its error."""

from __future__ import annotations

from postgit import HitEndpoint, Node, Sequence
from tests.support.engine import in_process_worker, wait_finished

FAST_RETRY = {"maxAttempts": 3, "initialInterval": 0.2, "backoffCoefficient": 2.0}


async def run_one(service, store, registry, database_url, flow, name="flow"):
    await service.deploy(name, flow.to_json())
    row, _ = await service.start(name, {})
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])
    return instance, await store.list_steps(row["id"])


async def test_a_flaky_step_succeeds_on_its_third_attempt_after_growing_delays(
    service, store, registry, database_url, http_server
):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="flaky", url=f"{http_server.url}/flaky/a/2", retry=FAST_RETRY, assign_to="$.r"),
        ],
    )
    instance, steps = await run_one(service, store, registry, database_url, flow)
    assert instance["status"] == "completed", instance["error"]
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "failed"), (3, "completed")]
    assert "answered 500" in steps[0]["error"]["message"]
    first_gap = (steps[1]["started_at"] - steps[0]["finished_at"]).total_seconds()
    second_gap = (steps[2]["started_at"] - steps[1]["finished_at"]).total_seconds()
    # equal jitter: the first delay is in [0.1, 0.2] s, the second in [0.2, 0.4] s
    assert 0.1 <= first_gap < 0.2 + 0.5
    assert 0.2 <= second_gap < 0.4 + 0.5
    hits = http_server.hits("/flaky/a/2")
    assert len(hits) == 3
    assert len({h.headers["Idempotency-Key"] for h in hits}) == 1, "the key is stable across retries"
    assert instance["error"] is None


async def test_the_last_failure_fails_the_instance_with_its_error(service, store, registry, database_url, http_server):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="down", url=f"{http_server.url}/status/503", retry=FAST_RETRY),
            HitEndpoint(id="never", url=f"{http_server.url}/ok/never"),
        ],
    )
    instance, steps = await run_one(service, store, registry, database_url, flow)
    assert instance["status"] == "failed"
    assert instance["error"]["node_id"] == "down"
    assert instance["error"]["attempt"] == 3
    assert "503" in instance["error"]["message"]
    assert [(s["node_id"], s["attempt"], s["status"]) for s in steps] == [
        ("down", 1, "failed"),
        ("down", 2, "failed"),
        ("down", 3, "failed"),
    ]
    assert http_server.hits("/ok/never") == []
    kinds = [e["kind"] for e in await store.events_since(instance["id"])]
    assert kinds[-1] == "instance_failed"


async def test_attempts_are_configurable_per_node(service, store, registry, database_url, http_server):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(
                id="down", url=f"{http_server.url}/status/500", retry={"maxAttempts": 5, "initialInterval": 0.01}
            ),
        ],
    )
    instance, steps = await run_one(service, store, registry, database_url, flow)
    assert instance["status"] == "failed"
    assert [s["attempt"] for s in steps] == [1, 2, 3, 4, 5]


async def test_a_client_error_fails_at_once_unless_accepted(service, store, registry, database_url, http_server):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="gone", url=f"{http_server.url}/status/404", accept_status=[404], assign_to="$.gone"),
            HitEndpoint(id="bad", url=f"{http_server.url}/status/400", retry=FAST_RETRY),
        ],
    )
    instance, steps = await run_one(service, store, registry, database_url, flow)
    assert instance["status"] == "failed"
    assert instance["state"]["gone"]["status"] == 404
    assert [(s["node_id"], s["attempt"], s["status"]) for s in steps] == [
        ("gone", 1, "completed"),
        ("bad", 1, "failed"),
    ]
    assert instance["error"]["type"] == "FatalError"


async def test_a_network_error_is_retried(service, store, registry, database_url):
    from tests.support.ports import free_port

    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(
                id="nobody", url=f"http://127.0.0.1:{free_port()}/", retry={"maxAttempts": 2, "initialInterval": 0.01}
            ),
        ],
    )
    instance, steps = await run_one(service, store, registry, database_url, flow)
    assert instance["status"] == "failed"
    assert len(steps) == 2
    assert "ConnectError" in steps[0]["error"]["message"]


async def test_a_template_that_fails_at_run_time_fails_the_step_naming_node_and_field(
    service, store, registry, database_url
):
    flow = Sequence(id="root", children=[Node("Shout", id="loud", text="{{ input.missing }}")])
    instance, steps = await run_one(service, store, registry, database_url, flow)
    assert instance["status"] == "failed"
    assert "node 'loud', field 'params.text'" in instance["error"]["message"]
    assert len(steps) == 1, "a fatal error is not retried"
