"""Answers the schema fuzzer (tests/fuzz) found undocumented or misdescribed, each checked against the served schema."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.server.conftest import TOKEN, deploy, shout, start


async def served_schema(client: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    response = await client.get("/openapi.json", headers=headers)
    assert response.status_code == 200
    return response.json()


def assert_documented(schema: dict[str, Any], method: str, template: str, response: httpx.Response) -> None:
    """The answer's status and content type are documented for the operation, and its body fits their schema."""
    operation = schema["paths"][template][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {template}: {status} is not documented"
    documented = operation["responses"][status]
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in documented.get("content", {}), f"{method} {template} {status}: {media_type} not documented"
    body_schema = documented["content"][media_type]["schema"]
    Draft202012Validator({**body_schema, "components": schema["components"]}).validate(response.json())
    for name in documented.get("headers", {}):
        assert name in response.headers, f"{method} {template} {status}: header {name} is documented, not sent"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"name": "x"}', b'{"name": "x", "definition": {}, "extra": 1}'],
    ids=["malformed", "missing-definition", "extra-field"],
)
async def test_a_deploy_body_fastapi_cannot_read_is_a_documented_422(client, body):
    # 422 was documented as a definition error only, which requires `issues`; unreadable bodies carry `errors`
    response = await client.post("/workflows", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "errors" in response.json()
    assert_documented(await served_schema(client), "POST", "/workflows", response)


async def test_an_invalid_definition_is_still_a_documented_422_with_issues(client):
    response = await client.post("/workflows", json={"name": "x", "definition": {"id": "a", "type": "Nope"}})
    assert response.status_code == 422
    assert response.json()["issues"][0]["node_id"] == "a"
    assert_documented(await served_schema(client), "POST", "/workflows", response)


@pytest.mark.parametrize("name", ["", "a b", "é", "-x"])
async def test_an_invalid_workflow_filter_is_a_documented_400(client, name):
    response = await client.get("/instances", params={"workflow": name})
    assert response.status_code == 400
    assert "invalid workflow name" in response.json()["detail"]
    assert_documented(await served_schema(client), "GET", "/instances", response)


@pytest.mark.parametrize("path", ["/workflows/a%00b", "/workflows/a%00b/versions/1", "/workflows/a%20b"])
async def test_an_invalid_workflow_name_in_a_path_is_a_documented_400(client, path):
    # a NUL character reached the database and came back as a 400 the schema did not list
    response = await client.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("invalid workflow name")
    template = "/workflows/{name}" if "versions" not in path else "/workflows/{name}/versions/{version}"
    assert_documented(await served_schema(client), "GET", template, response)


async def test_a_valid_but_unknown_workflow_name_is_still_a_404(client):
    response = await client.get("/workflows/nothing-here")
    assert response.status_code == 404
    assert_documented(await served_schema(client), "GET", "/workflows/{name}", response)


@pytest.mark.parametrize("last_event_id", ["null", "fzPo", "-1", str(2**63), "", "+1", "1_0", "1.0", "0x1"])
async def test_a_bad_last_event_id_is_a_documented_400(client, last_event_id):
    # the schema says integer: Python's int() also read "+1" and "1_0", and an empty header meant "from the start"
    await deploy(client, "greet", shout())
    instance = await start(client, "greet")
    response = await client.get(f"/instances/{instance['id']}/events", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]
    assert_documented(await served_schema(client), "GET", "/instances/{instance_id}/events", response)
    with_after = await client.get(
        f"/instances/{instance['id']}/events", params={"after": 0}, headers={"Last-Event-ID": last_event_id}
    )
    assert with_after.status_code == 400, "?after= does not make an invalid header acceptable"


async def test_a_workflow_name_with_a_trailing_newline_is_refused(client):
    # `$` also matches before a final newline: "ok\n" passed the name check, and could be deployed
    for path in ["/workflows/ok%0A", "/workflows/ok%0A/versions/1"]:
        response = await client.get(path)
        assert response.status_code == 400, path
        assert response.json()["detail"].startswith("invalid workflow name")
    deployed = await client.post("/workflows", json={"name": "ok\n", "definition": shout()})
    assert deployed.status_code == 400
    assert (await client.get("/instances", params={"workflow": "ok\n"})).status_code == 400
    assert (await client.get("/workflows")).json() == []


@pytest.mark.parametrize("spelling", ["{{{}}}", "urn:uuid:{}", "{}", " {} "], ids=["braces", "urn", "hex", "spaces"])
async def test_an_instance_id_spelled_otherwise_than_the_schema_says_is_unknown(client, spelling):
    # the schema says `format: uuid`; uuid.UUID also read braces, a urn: prefix and bare hex digits
    await deploy(client, "greet", shout())
    instance_id = (await start(client, "greet"))["id"]
    other = spelling.format(instance_id.replace("-", "") if spelling == "{}" else instance_id)
    schema = await served_schema(client)
    for method, template in [
        ("GET", "/instances/{instance_id}"),
        ("GET", "/instances/{instance_id}/events"),
        ("POST", "/instances/{instance_id}/cancel"),
        ("POST", "/instances/{instance_id}/events"),
    ]:
        body = {"name": "go"} if template.endswith("events") and method == "POST" else None
        response = await client.request(method, template.format(instance_id=other), json=body)
        assert response.status_code == 404, (method, template, response.text)
        assert "does not exist" in response.json()["detail"]
        assert_documented(schema, method, template, response)
    assert (await client.get(f"/instances/{instance_id.upper()}")).status_code == 200, "hex digits in either case"


async def test_an_unknown_instance_stream_is_a_documented_404(client):
    response = await client.get(f"/instances/{uuid.uuid4()}/events")
    assert response.status_code == 404
    assert_documented(await served_schema(client), "GET", "/instances/{instance_id}/events", response)


REQUESTS = [
    ("GET", "/workflows", "/workflows"),
    ("POST", "/workflows", "/workflows"),
    ("GET", "/workflows/demo", "/workflows/{name}"),
    ("GET", "/workflows/demo/versions/1", "/workflows/{name}/versions/{version}"),
    ("POST", "/workflows/demo/instances", "/workflows/{name}/instances"),
    ("GET", "/instances", "/instances"),
    ("GET", f"/instances/{uuid.UUID(int=1)}", "/instances/{instance_id}"),
    ("POST", f"/instances/{uuid.UUID(int=1)}/cancel", "/instances/{instance_id}/cancel"),
    ("GET", f"/instances/{uuid.UUID(int=1)}/events", "/instances/{instance_id}/events"),
    ("GET", "/plugins", "/plugins"),
    ("GET", "/workers", "/workers"),
    ("GET", "/outbox", "/outbox"),
    ("POST", "/outbox/1/send", "/outbox/{message_id}/send"),
    ("POST", "/outbox/send", "/outbox/send"),
]


@pytest.mark.parametrize("method,path,template", REQUESTS, ids=[f"{m} {t}" for m, _, t in REQUESTS])
async def test_a_request_without_the_token_is_a_documented_401(auth_client, method, path, template):
    # 401 was not documented, and on the event stream FastAPI documented it as text/event-stream
    response = await auth_client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert_documented(await served_schema(auth_client, authorization=f"Bearer {TOKEN}"), method, template, response)


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("OPTIONS", "/workflows", "GET, POST"),
        ("HEAD", "/workflows", "GET, POST"),
        ("PUT", "/workflows/demo", "GET"),
        ("GET", "/workflows/demo/instances", "POST"),
        ("DELETE", "/instances/x/cancel", "POST"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(client, method, path, allowed):
    # Starlette named only the first route's methods: `Allow: POST` for /workflows, which also serves GET
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    if method != "HEAD":
        assert response.json() == {"detail": "Method Not Allowed"}


async def test_other_http_errors_are_answered_as_before(client, auth_client):
    missing = await client.get("/no/such/route")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    unauthorized = await auth_client.get("/workflows")
    assert unauthorized.status_code == 401 and unauthorized.headers["www-authenticate"] == "Bearer"
