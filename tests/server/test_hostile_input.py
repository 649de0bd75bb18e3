"""Malformed and hostile requests get a 4xx with a readable one-line detail, never a 500."""

from __future__ import annotations

import pytest

from tests.server.conftest import deploy, shout

JSON = {"content-type": "application/json"}

DEPLOY_BODIES = [
    (b"{not json", 422),
    (b"", 422),
    (b"[]", 422),
    (b'"just a string"', 422),
    (b'{"name": "x"}', 422),
    (b'{"definition": {}}', 422),
    (b'{"name": 5, "definition": {}}', 422),
    (b'{"name": ["x"], "definition": {}}', 422),
    (b'{"name": "x", "definition": {}, "extra": 1}', 422),
    (b'{"name": "x", "definition": 5}', 422),
    (b'{"name": "x", "definition": [1, 2]}', 422),
    (b'{"name": "x", "definition": null}', 422),
    (b'{"name": "x", "definition": {"id": "a", "type": "Sequence", "children": "nope"}}', 422),
    (b'{"name": "x", "definition": {"id": 7, "type": "Shout", "params": {"text": "t"}}}', 422),
    (b'{"name": "x", "definition": {"id": "a", "type": "Shout", "params": []}}', 422),
    (b'{"name": "x", "definition": {"id": "a", "type": "Shout", "params": {"text": "a\\u0000b"}}}', 400),
    (b'{"name": "x", "definition": {"id": "a", "type": "Shout", "params": {"text": "\\ud800"}}}', 422),
    (b'{"name": "' + b"n" * 100_000 + b'", "definition": {}}', 400),
    (b'{"name": "\xc3\xa9t\xc3\xa9", "definition": {}}', 400),
    (b'{"name": "\\ud83d\\ude00", "definition": {}}', 400),
    (b'{"name": "ok\\u0000", "definition": {}}', 400),
    (b'{"name": "x", "definition": {"id": "a", "type": "Shout", "params": {"text": NaN}}}', 422),
    (b'{"name": "x", "definition": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}", 400),
]


@pytest.mark.parametrize("body,status", DEPLOY_BODIES, ids=[str(i) for i in range(len(DEPLOY_BODIES))])
async def test_hostile_deploys(client, body, status):
    response = await client.post("/workflows", content=body, headers=JSON)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert "\n" not in detail
    assert len(detail) < 2_000
    assert (await client.get("/workflows")).json() == []


START_BODIES = [
    (b"{not json", 422),
    (b"[]", 422),
    (b'{"input": 1, "surprise": true}', 422),
    (b'{"version": "latest"}', 422),
    (b'{"version": 0}', 422),
    (b'{"version": 99999999999}', 422),
    (b'{"version": true}', 422),
    (b'{"version": "1"}', 422),
    (b'{"version": 1.5}', 422),
    (b'{"idempotency_key": 5}', 422),
    (b'{"idempotency_key": ""}', 400),
    (b'{"idempotency_key": "' + b"k" * 1000 + b'"}', 400),
    (b'{"idempotency_key": "a\\u0000"}', 400),
    (b'{"input": "\\u0000"}', 400),
    (b'{"input": {"k": "\\udfff"}}', 400),
    (b'{"input": NaN}', 400),
    (b'{"input": 1e999}', 400),
    (b'{"input": "' + b"x" * 1_100_000 + b'"}', 400),
]


async def test_a_whole_number_version_may_be_written_as_a_float(client):
    """JSON Schema's ``integer`` takes ``1.0``: a client generated from the schema may send it."""
    await deploy(client, "greet", shout())
    for path, body in [("instances", {"version": 1.0}), ("instances/batch", {"version": 1.0, "instances": [{}]})]:
        response = await client.post(f"/workflows/greet/{path}", json=body)
        assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize("body,status", START_BODIES, ids=[str(i) for i in range(len(START_BODIES))])
async def test_hostile_starts(client, body, status):
    await deploy(client, "greet", shout())
    response = await client.post("/workflows/greet/instances", content=body, headers=JSON)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert "\n" not in detail
    assert (await client.get("/instances")).json()["items"] == []


async def test_unicode_is_kept_intact(client):
    definition = shout(text="héllo wörld ✓ 😀")
    await deploy(client, "unicode", definition)
    assert (await client.get("/workflows/unicode")).json()["definition"] == definition
    started = await client.post("/workflows/unicode/instances", json={"input": {"name": "Zoë 😀", "ключ": "値"}})
    assert started.status_code == 201
    shown = (await client.get(f"/instances/{started.json()['id']}")).json()
    assert shown["state"] == {"input": {"name": "Zoë 😀", "ключ": "値"}}
    key = await client.post("/workflows/unicode/instances", json={"idempotency_key": "ключ-😀"})
    again = await client.post("/workflows/unicode/instances", json={"idempotency_key": "ключ-😀"})
    assert (key.status_code, again.status_code) == (201, 200)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/workflows/" + "x" * 5000),
        ("GET", "/workflows/%00"),
        ("GET", "/workflows/%F0%9F%98%80"),
        ("GET", "/workflows/x/versions/-1"),
        ("POST", "/workflows/" + "x" * 5000 + "/instances"),
        ("POST", "/workflows/%00/instances"),
        ("GET", "/instances/%00"),
        ("GET", "/instances/../etc/passwd"),
        ("GET", "/instances/00000000-0000-0000-0000-00000000000g"),
        ("POST", "/instances/%00/cancel"),
        ("GET", "/instances/%00/events"),
        ("GET", "/instances?limit=1e3"),
        ("GET", "/instances?offset=abc"),
        ("GET", "/instances?workflow=%00"),
        ("GET", "/outbox?limit=-5"),
        ("DELETE", "/workflows"),
        ("PUT", "/instances"),
    ],
)
async def test_hostile_paths_and_queries(client, method, path):
    response = await client.request(method, path)
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["detail"], str)
