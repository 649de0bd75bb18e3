"""Batch starts (``POST /workflows/{name}/instances/batch``) and gathered single starts, against a real
``postgit-server`` process, PostgreSQL and, where instances must run, a real ``postgit-worker``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.processes import running_workers
from tests.support.server import running_server, serving_in_thread
from tests.support.waiting import wait_for_sync

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
    "required": ["order_id"],
}
SHOUT_ORDER = {"id": "shout", "type": "Shout", "params": {"text": "{{ input.order_id }}"}, "assignTo": "$.shouted"}
ORDERS = {"root": SHOUT_ORDER, "inputSchema": ORDER_SCHEMA}
JSON = {"content-type": "application/json"}


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    """A client of a server (uvicorn in a thread of this process) with the workflow ``orders`` deployed."""
    with serving_in_thread(database_url) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        deploy(client, "orders", ORDERS)
        yield client


def deploy(client: httpx.Client, name: str, definition: dict[str, Any]) -> int:
    response = client.post("/workflows", json={"name": name, "definition": definition})
    assert response.status_code in (200, 201), response.text
    return response.json()["version"]


def batch(client: httpx.Client, name: str, *items: dict[str, Any], **extra: Any) -> httpx.Response:
    return client.post(f"/workflows/{name}/instances/batch", json={"instances": list(items), **extra})


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def instance_count(database_url: str) -> int:
    return rows(database_url, "SELECT count(*) FROM postgit.instances")[0][0]


def test_a_batch_starts_every_item_in_order(api: httpx.Client, database_url: str):
    items = [{"input": {"order_id": f"o-{n}", "qty": n + 1}} for n in range(5)]
    response = batch(api, "orders", *items)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["workflow"], body["started"], body["existing"], body["failed"]) == ("orders", 5, 0, 0)
    assert [result["index"] for result in body["results"]] == [0, 1, 2, 3, 4]
    assert all(r["created"] is True and r["status"] == "pending" and r["error"] is None for r in body["results"])

    ids = [result["id"] for result in body["results"]]
    assert len(set(ids)) == 5
    for instance_id, item in zip(ids, items, strict=True):
        shown = api.get(f"/instances/{instance_id}").json()
        assert (shown["workflow"], shown["version"], shown["status"]) == ("orders", 1, "pending")
        assert shown["state"] == {"input": item["input"]}
        assert shown["current_node"] == "shout" and shown["node_type"] == "Shout"
    logged = rows(database_url, "SELECT count(*) FROM postgit.events WHERE kind = 'instance_created'")
    assert logged == [(5,)]


def test_an_item_that_cannot_start_gets_its_own_error_and_the_others_start(api: httpx.Client, database_url: str):
    body = (
        b'{"instances": ['
        b'{"input": {"order_id": "a"}},'
        b'{"input": {"order_id": 5}},'
        b'{"input": {"qty": 2}},'
        b'{"input": {"order_id": "b", "qty": 0}},'
        b'{"input": {"order_id": "c", "note": NaN}},'
        b'{"input": {"order_id": "d\\u0000"}},'
        b'{"input": {"order_id": "\\udfff"}},'
        b'{"input": {"order_id": "' + b"x" * 1_100_000 + b'"}},'
        b'{"input": {"order_id": "e"}, "idempotency_key": "k\\u0000"},'
        b'{"input": {"order_id": "last"}}'
        b"]}"
    )
    response = api.post("/workflows/orders/instances/batch", content=body, headers=JSON)
    assert response.status_code == 200, response.text[:2000]
    answer = response.json()
    results = answer["results"]
    assert [result["index"] for result in results] == list(range(10))
    assert (answer["started"], answer["failed"]) == (2, 8)
    errors = [result["error"] for result in results]
    assert errors[0] is None and errors[9] is None
    assert errors[1] == "input.order_id: 5 is not of type 'string' (the workflow's input schema)"
    assert errors[2] == "input: 'order_id' is a required property (the workflow's input schema)"
    assert errors[3] == "input.qty: 0 is less than the minimum of 1 (the workflow's input schema)"
    assert errors[4].startswith("input: holds NaN")
    assert errors[5].startswith("input: holds a NUL character")
    assert errors[6].startswith("input: holds text that is not valid Unicode")
    assert errors[7].startswith("input: is 11") and "the limit is 1000000" in errors[7]
    assert errors[8].startswith("idempotency_key: holds a NUL character")
    for result in results[1:9]:
        assert (result["id"], result["status"], result["created"]) == (None, None, None)

    started = {row[0] for row in rows(database_url, "SELECT state->'input'->>'order_id' FROM postgit.instances")}
    assert started == {"a", "last"}


def test_idempotency_keys_within_a_batch_and_across_batches(api: httpx.Client, database_url: str):
    first = batch(
        api,
        "orders",
        {"input": {"order_id": "a"}, "idempotency_key": "k1"},
        {"input": {"order_id": "b"}, "idempotency_key": "k2"},
        {"input": {"order_id": "a-again"}, "idempotency_key": "k1"},
        {"input": {"order_id": "no-key"}},
        {"input": {"order_id": 7}, "idempotency_key": "k3"},  # refused: k3 stays unused
        {"input": {"order_id": "c"}, "idempotency_key": "k3"},
    ).json()
    results = first["results"]
    assert (first["started"], first["existing"], first["failed"]) == (4, 1, 1)
    assert results[2]["id"] == results[0]["id"] and results[2]["created"] is False
    assert results[0]["created"] and results[1]["created"] and results[3]["created"] and results[5]["created"]
    assert results[4]["error"] is not None

    second = batch(
        api,
        "orders",
        {"input": {"order_id": "b-again"}, "idempotency_key": "k2"},
        {"input": {"order_id": "d"}, "idempotency_key": "k4"},
        {"input": {"order_id": "c-again"}, "idempotency_key": "k3"},
    ).json()
    assert (second["started"], second["existing"], second["failed"]) == (1, 2, 0)
    assert second["results"][0]["id"] == results[1]["id"] and second["results"][0]["created"] is False
    assert second["results"][2]["id"] == results[5]["id"]

    # a single start and a batch see each other's keys
    single = api.post("/workflows/orders/instances", json={"input": {"order_id": "x"}, "idempotency_key": "k4"})
    assert (single.status_code, single.json()["id"]) == (200, second["results"][1]["id"])
    alone = api.post("/workflows/orders/instances", json={"input": {"order_id": "y"}, "idempotency_key": "k5"})
    assert alone.status_code == 201
    third = batch(api, "orders", {"input": {"order_id": "z"}, "idempotency_key": "k5"}).json()
    assert third["results"][0]["id"] == alone.json()["id"] and third["existing"] == 1

    inputs = [row[0] for row in rows(database_url, "SELECT state->'input'->>'order_id' FROM postgit.instances")]
    assert sorted(inputs) == ["a", "b", "c", "d", "no-key", "y"]


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"instances": [{"input": n} for n in range(1001)]}, "body.instances: List should have at most 1000 items"),
        ({"instances": []}, "body.instances: List should have at least 1 item"),
        ({}, "body.instances: Field required"),
        ({"instances": {"input": 1}}, "body.instances: Input should be a valid list"),
        ({"instances": [{"input": 1, "extra": 2}]}, "body.instances.0.extra: Extra inputs are not permitted"),
        ({"instances": [{"idempotency_key": "k" * 201}]}, "body.instances.0.idempotency_key: String should have at"),
        ({"instances": [{"idempotency_key": ""}]}, "body.instances.0.idempotency_key: String should have at least"),
        ({"instances": [{"input": 1}], "version": 0}, "body.version: Input should be greater than or equal to 1"),
        ({"instances": [{"input": 1}], "surprise": True}, "body.surprise: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_batch_is_refused_whole(api: httpx.Client, database_url: str, body: Any, fragment: str):
    response = api.post("/workflows/orders/instances/batch", json=body)
    assert response.status_code == 422, response.text[:2000]
    assert fragment in response.json()["detail"]
    assert instance_count(database_url) == 0


def test_unknown_workflows_versions_and_bad_names_are_refused(api: httpx.Client, database_url: str):
    item = {"input": {"order_id": "a"}}
    assert batch(api, "nope", item).status_code == 404
    assert "workflow 'orders' version 9 does not exist" in batch(api, "orders", item, version=9).json()["detail"]
    bad_name = api.post("/workflows/-bad/instances/batch", json={"instances": [item]})
    assert bad_name.status_code == 400 and "invalid workflow name '-bad'" in bad_name.json()["detail"]
    assert api.post("/workflows/orders/instances/batch", content=b"{not json", headers=JSON).status_code == 422
    assert api.post("/workflows/orders/instances/batch", content=b"[]", headers=JSON).status_code == 422
    assert instance_count(database_url) == 0


def test_a_batch_whose_inputs_are_too_large_together_is_refused(api: httpx.Client, database_url: str):
    items = [{"input": {"order_id": str(n), "pad": "x" * 900_000}} for n in range(40)]
    response = batch(api, "orders", *items)
    assert response.status_code == 400, response.text[:2000]
    assert "the limit is 32000000: send fewer instances per request" in response.json()["detail"]
    assert instance_count(database_url) == 0


def test_a_batch_starts_the_version_asked_for(api: httpx.Client):
    deploy(api, "orders", {"root": {**SHOUT_ORDER, "id": "v2"}, "inputSchema": ORDER_SCHEMA})
    pinned = batch(api, "orders", {"input": {"order_id": "a"}}, version=1).json()
    latest = batch(api, "orders", {"input": {"order_id": "b"}}).json()
    assert api.get(f"/instances/{pinned['results'][0]['id']}").json()["version"] == 1
    assert api.get(f"/instances/{latest['results'][0]['id']}").json()["version"] == 2


def test_a_deploy_through_another_server_is_started_at_once(database_url: str, tmp_path: Path):
    """A server remembers each workflow's latest version; a start finds out when another server deployed a newer
    one, and starts that one instead."""
    with (
        running_server(database_url, tmp_path) as (_, first_url),
        running_server(database_url, tmp_path) as (_, second_url),
        httpx.Client(base_url=first_url, timeout=30) as first,
        httpx.Client(base_url=second_url, timeout=30) as second,
    ):
        deploy(first, "orders", ORDERS)
        before = first.post("/workflows/orders/instances", json={"input": {"order_id": "a"}}).json()
        assert first.get(f"/instances/{before['id']}").json()["version"] == 1

        strict = {"root": SHOUT_ORDER, "inputSchema": {**ORDER_SCHEMA, "required": ["order_id", "qty"]}}
        assert deploy(second, "orders", strict) == 2
        single = first.post("/workflows/orders/instances", json={"input": {"order_id": "b", "qty": 1}})
        assert single.status_code == 201, single.text
        assert first.get(f"/instances/{single.json()['id']}").json()["version"] == 2
        refused = first.post("/workflows/orders/instances", json={"input": {"order_id": "c"}})
        assert refused.status_code == 400 and "'qty' is a required property" in refused.json()["detail"]

        assert deploy(second, "orders", ORDERS) == 1  # the same definition again: still version 2 is the latest
        assert deploy(second, "orders", {**ORDERS, "timeout": 600}) == 3
        results = batch(first, "orders", {"input": {"order_id": "d"}}, {"input": {"order_id": "e"}}).json()
        versions = {first.get(f"/instances/{r['id']}").json()["version"] for r in results["results"]}
        assert versions == {3}

        assert deploy(second, "orders", {**strict, "timeout": 600}) == 4
        refused = batch(first, "orders", {"input": {"order_id": "f"}})  # no item is sent: the check still happens
        assert "'qty' is a required property" in refused.json()["results"][0]["error"]
        assert deploy(second, "orders", {**ORDERS, "timeout": 900}) == 5
        accepted = batch(first, "orders", {"input": {"order_id": "g"}}).json()
        assert accepted["started"] == 1, accepted
        assert first.get(f"/instances/{accepted['results'][0]['id']}").json()["version"] == 5


def test_a_database_error_writes_nothing_of_the_batch(api: httpx.Client, database_url: str):
    """One statement writes a batch: when the database fails on one item, no item is written."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.state->'input' ? 'boom' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '53300'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON postgit.instances FOR EACH ROW "
            "EXECUTE FUNCTION public.refuse_boom()"
        )
    items = [{"input": {"order_id": str(n)}} for n in range(10)]
    items[7] = {"input": {"order_id": "7", "boom": True}}
    response = batch(api, "orders", *items)
    assert response.status_code == 503, response.text
    assert response.json()["detail"].startswith("database unavailable:")
    assert instance_count(database_url) == 0
    assert rows(database_url, "SELECT count(*) FROM postgit.events") == [(0,)]


async def test_concurrent_single_starts_are_refused_one_by_one(api: httpx.Client, database_url: str):
    """Single starts arriving together share statements; a value the database refuses fails only its own."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.state->'input' ? 'bad' THEN RAISE EXCEPTION 'bad value' USING ERRCODE = '22023'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON postgit.instances FOR EACH ROW "
            "EXECUTE FUNCTION public.refuse_bad()"
        )
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:

        async def start(n: int) -> httpx.Response:
            run_input: dict[str, Any] = {"order_id": str(n)}
            if n % 10 == 3:
                run_input["bad"] = True
            return await client.post("/workflows/orders/instances", json={"input": run_input})

        responses = await asyncio.gather(*(start(n) for n in range(60)))
    statuses = [response.status_code for response in responses]
    assert statuses == [400 if n % 10 == 3 else 201 for n in range(60)], statuses
    assert "bad value" in responses[3].json()["detail"]
    assert instance_count(database_url) == 54


def test_instances_started_in_a_batch_run_to_completion(api: httpx.Client, database_url: str, tmp_path: Path):
    items = [{"input": {"order_id": f"order-{n}"}} for n in range(50)]
    results = batch(api, "orders", *items).json()["results"]
    with running_workers(database_url, tmp_path):

        def all_completed() -> bool:
            statuses = rows(database_url, "SELECT status, count(*) FROM postgit.instances GROUP BY status")
            return statuses == [("completed", 50)]

        wait_for_sync(all_completed, timeout=60, interval=0.1, what="the batch's instances to complete")
    for n in (0, 49):
        shown = api.get(f"/instances/{results[n]['id']}").json()
        assert shown["state"]["shouted"] == {"text": f"ORDER-{n}!"}
        assert [step["status"] for step in shown["steps"]] == ["completed"]


def test_the_batch_route_is_documented_with_its_limits(api: httpx.Client):
    schema = api.get("/openapi.json").json()
    route = schema["paths"]["/workflows/{name}/instances/batch"]["post"]
    assert set(route["responses"]) >= {"200", "400", "404", "422", "503"}
    assert route["parameters"][0]["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
    request = schema["components"]["schemas"]["BatchStartRequest"]
    assert request["required"] == ["instances"] and request["additionalProperties"] is False
    assert (request["properties"]["instances"]["minItems"], request["properties"]["instances"]["maxItems"]) == (1, 1000)
    item = schema["components"]["schemas"]["BatchStartItem"]
    assert item["additionalProperties"] is False
    key = next(choice for choice in item["properties"]["idempotency_key"]["anyOf"] if choice.get("type") == "string")
    assert (key["minLength"], key["maxLength"]) == (1, 200)
    assert json.dumps(schema)  # the whole schema is plain JSON


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` that serve requests (multiprocessing's spawned workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_server_with_several_worker_processes(database_url: str, tmp_path: Path):
    """``POSTGIT_SERVER_WORKERS=2``: two processes serve the port, each starting instances; SIGTERM stops all."""
    with running_server(database_url, tmp_path, POSTGIT_SERVER_WORKERS="2") as (process, url):
        workers = wait_for_sync(lambda: len(children_of(process.pid)) == 2 and children_of(process.pid), timeout=60)
        with httpx.Client(base_url=url, timeout=30) as client:
            deploy(client, "orders", ORDERS)
            assert batch(client, "orders", *[{"input": {"order_id": str(n)}} for n in range(10)]).json()["started"]
            for n in range(20):  # new connections: the kernel spreads them over both processes
                with httpx.Client(base_url=url, timeout=30) as one:
                    started = one.post("/workflows/orders/instances", json={"input": {"order_id": f"s{n}"}})
                    assert started.status_code == 201, started.text
        assert instance_count(database_url) == 30
        assert "with 2 worker processes" in process.output()
        assert process.terminate() == 0, process.output()
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers), "the worker processes exited too"
