"""/health, authentication, and the OpenAPI document."""

from __future__ import annotations

import asyncio
import re

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.server.conftest import TOKEN
from tests.support.server import api_client

PROTECTED = [
    ("GET", "/workflows"),
    ("POST", "/workflows"),
    ("GET", "/workflows/demo"),
    ("GET", "/workflows/demo/versions/1"),
    ("POST", "/workflows/demo/instances"),
    ("GET", "/instances"),
    ("GET", "/instances/00000000-0000-0000-0000-000000000000"),
    ("GET", "/instances/00000000-0000-0000-0000-000000000000/events"),
    ("POST", "/instances/00000000-0000-0000-0000-000000000000/cancel"),
    ("GET", "/plugins"),
    ("GET", "/workers"),
    ("GET", "/outbox"),
    ("GET", "/openapi.json"),
]


async def test_health_reports_the_database(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_without_a_token_every_route_is_open(client):
    for method, path in PROTECTED:
        response = await client.request(method, path)
        assert response.status_code != 401, (method, path)


async def test_health_needs_no_token(auth_client):
    response = await auth_client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("method,path", PROTECTED)
async def test_every_other_route_needs_the_token(auth_client, method, path):
    missing = await auth_client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in missing.json()["detail"]

    wrong = await auth_client.request(method, path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["detail"] == "the API token is not valid for this server"


@pytest.mark.parametrize(
    "header",
    [f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer \u00e9\u00e9".encode()],
)
async def test_malformed_or_wrong_authorization_is_refused(auth_client, header):
    response = await auth_client.get("/workflows", headers={"Authorization": header})
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


async def test_the_right_token_is_accepted(auth_client):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert (await auth_client.get("/workflows", headers=headers)).status_code == 200
    deployed = await auth_client.post(
        "/workflows",
        json={"name": "demo", "definition": {"id": "s", "type": "Shout", "params": {"text": "x"}}},
        headers=headers,
    )
    assert deployed.status_code == 201
    assert (await auth_client.get("/workflows/demo", headers=headers)).status_code == 200


async def test_openapi_describes_every_route(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) >= {
        "/health",
        "/workflows",
        "/workflows/{name}",
        "/workflows/{name}/versions/{version}",
        "/workflows/{name}/instances",
        "/instances",
        "/instances/{instance_id}",
        "/instances/{instance_id}/events",
        "/instances/{instance_id}/cancel",
        "/plugins",
        "/workers",
        "/outbox",
    }
    schemas = schema["components"]["schemas"]
    assert schemas["ValidationErrorBody"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in schemas
    assert "issues" in schemas["DefinitionErrorBody"]["properties"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI is served by the server itself, so that the page works without internet access
    scripts = re.findall(r'<script src="([^"]+)"', docs.text)
    styles = re.findall(r'<link type="text/css" rel="stylesheet" href="([^"]+)"', docs.text)
    assert scripts and styles
    for asset in scripts + styles:
        assert asset.startswith("/"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 10_000, asset


async def test_health_and_every_route_are_503_when_the_database_is_gone(database_url):
    async with api_client(database_url, db_timeout_seconds=1) as client:
        assert (await client.get("/health")).status_code == 200
        name = conninfo_to_dict(database_url)["dbname"]
        with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        response = await client.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["database"].startswith("unreachable: ")
        # all but the schema, and the deploy whose empty body is refused (422) before the database is asked
        routes = [route for route in PROTECTED[:-1] if route != ("POST", "/workflows")]
        answers = await asyncio.gather(*(client.request(method, path) for method, path in routes))
        for route, refused in zip(routes, answers, strict=True):
            assert refused.status_code == 503, (route, refused.text)
            assert refused.json()["detail"].startswith("database unavailable: "), route
            assert refused.headers["retry-after"] == "5"


async def test_openapi_documents_the_503_of_an_unavailable_database(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        if path == "/metrics":
            continue  # answers without the database's series (postgit_database_up 0), never 503
        for method, operation in operations.items():
            unavailable = operation["responses"].get("503")
            assert unavailable is not None, f"{method.upper()} {path} does not document 503"
            body = "Health" if path == "/health" else "ErrorBody"
            assert unavailable["content"]["application/json"]["schema"]["$ref"].endswith(f"/{body}")


async def test_with_a_token_the_schema_needs_it_and_the_docs_page_a_console_login(auth_client):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    schema = await auth_client.get("/openapi.json", headers=headers)
    assert schema.status_code == 200 and "/workflows" in schema.json()["paths"]
    docs = await auth_client.get("/docs", headers=headers)
    assert docs.status_code == 303 and docs.headers["location"].startswith("/ui/login")
