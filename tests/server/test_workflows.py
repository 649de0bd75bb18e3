"""Deploying, listing and showing workflows."""

from __future__ import annotations

from datetime import datetime

from tests.server.conftest import deploy, sequence, shout


async def test_deploy_creates_a_version_and_is_idempotent(client):
    body = {"name": "greet", "definition": shout()}
    first = await client.post("/workflows", json=body)
    assert first.status_code == 201
    assert first.json() == {"name": "greet", "version": 1, "created": True}

    again = await client.post("/workflows", json=body)
    assert again.status_code == 200
    assert again.json() == {"name": "greet", "version": 1, "created": False}

    changed = await client.post("/workflows", json={"name": "greet", "definition": shout(text="bye")})
    assert changed.status_code == 201
    assert changed.json() == {"name": "greet", "version": 2, "created": True}

    # redeploying an older definition returns its version rather than making a third
    back = await client.post("/workflows", json=body)
    assert back.status_code == 200
    assert back.json()["version"] == 1


async def test_list_workflows_sorted_by_name(client):
    assert (await client.get("/workflows")).json() == []
    await deploy(client, "zeta")
    await deploy(client, "alpha", shout(text="a"))
    await deploy(client, "alpha", shout(text="b"))
    rows = (await client.get("/workflows")).json()
    assert [row["name"] for row in rows] == ["alpha", "zeta"]
    alpha = rows[0]
    assert alpha["latest_version"] == 2
    assert alpha["versions"] == 2
    assert datetime.fromisoformat(alpha["created_at"]) <= datetime.fromisoformat(alpha["updated_at"])
    assert set(alpha) == {"name", "latest_version", "versions", "created_at", "updated_at"}


async def test_show_a_workflow_and_its_versions(client):
    v1 = sequence(shout("a", "one"))
    v2 = sequence(shout("a", "one"), shout("b", "two"))
    await deploy(client, "flow", v1)
    await deploy(client, "flow", v2)

    detail = (await client.get("/workflows/flow")).json()
    assert detail["name"] == "flow"
    assert detail["latest_version"] == 2
    assert detail["definition"] == v2
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert all(datetime.fromisoformat(v["created_at"]).tzinfo is not None for v in detail["versions"])

    first = await client.get("/workflows/flow/versions/1")
    assert first.status_code == 200
    assert first.json()["definition"] == v1
    assert first.json()["version"] == 1
    assert set(first.json()) == {"name", "version", "definition", "plugins", "created_at"}
    assert first.json()["plugins"]["Shout"]["package"] == "postgit-example-plugin"


async def test_unknown_workflow_or_version_is_404(client):
    missing = await client.get("/workflows/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    await deploy(client, "flow")
    assert (await client.get("/workflows/flow/versions/2")).status_code == 404
    assert (await client.get("/workflows/nope/versions/1")).status_code == 404
    assert (await client.get("/workflows/flow/versions/0")).status_code == 422
    assert (await client.get("/workflows/flow/versions/abc")).status_code == 422
    assert (await client.get(f"/workflows/flow/versions/{2**40}")).status_code == 422


async def test_invalid_definition_is_422_with_issues_naming_node_and_field(client):
    definition = sequence(shout("ok"), {"id": "bad", "type": "Shout", "params": {"text": 5, "exclamations": 99}})
    response = await client.post("/workflows", json={"name": "broken", "definition": definition})
    assert response.status_code == 422
    body = response.json()
    assert "\n" not in body["detail"]
    assert "'bad'" in body["detail"]
    assert "params." in body["detail"]
    fields = {(issue["node_id"], issue["field"]) for issue in body["issues"]}
    assert fields == {("bad", "params.text"), ("bad", "params.exclamations")}
    assert all(issue["message"] for issue in body["issues"])
    assert (await client.get("/workflows/broken")).status_code == 404


async def test_unknown_node_type_is_refused(client):
    response = await client.post(
        "/workflows", json={"name": "x", "definition": {"id": "n", "type": "NoSuchType", "params": {}}}
    )
    assert response.status_code == 422
    assert response.json()["issues"][0]["node_id"] == "n"
    assert "NoSuchType" in response.json()["detail"]


async def test_invalid_name_is_400(client):
    for name in ["", "-leading-dash", "has space", "slash/inside", "x" * 129, "ünïcode"]:
        response = await client.post("/workflows", json={"name": name, "definition": shout()})
        assert response.status_code == 400, name
        assert "invalid workflow name" in response.json()["detail"]
    assert (await client.get("/workflows")).json() == []
