"""Tokens with roles and the audit log: each role allowed and refused, the console's refusals, who did what."""

from __future__ import annotations

import asyncio
import html
import re
import subprocess

import httpx
import pytest
from fastapi.routing import APIRoute

from postgit.engine.retention import Retention
from postgit.errors import PostgitError
from postgit_cli import AsyncClient, Forbidden
from postgit_server.app import ROUTE_MODULES
from postgit_server.auth import role_of
from postgit_server.roles import ApiToken, Role, parse_entry
from postgit_server.settings import ServerSettings
from tests.server.conftest import deploy, sequence, shout
from tests.support.ports import free_port
from tests.support.processes import script
from tests.support.server import api_client, running_server, server_env

ADMIN = ApiToken("alice", Role.admin, "admin-token-1")
OPERATOR = ApiToken("ci", Role.operator, "operator-token-2")
VIEWER = ApiToken("grafana", Role.viewer, "viewer-token-3")
TOKENS = (ADMIN, OPERATOR, VIEWER)
ORIGIN = {"Origin": "http://postgit.test"}
WAITS = sequence({"id": "wait", "type": "WaitForEvent", "params": {"event": "go"}}, shout("after"))
SCHEDULE = {"name": "nightly", "workflow": "waits", "cron": "0 3 * * *"}


def as_(token: ApiToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.token}"}


def text(page: httpx.Response) -> str:
    return html.unescape(page.text)


@pytest.fixture
async def roles_client(database_url: str):
    async with api_client(database_url, api_tokens=TOKENS) as client:
        yield client


async def audit(client: httpx.AsyncClient, **params: str | int) -> list[dict]:
    response = await client.get("/audit", params=params, headers=as_(VIEWER))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_each_role_is_allowed_and_refused_on_representative_routes(roles_client):
    client = roles_client
    deploy_body = {"name": "waits", "definition": WAITS}
    for token in (VIEWER, OPERATOR):
        refused = await client.post("/workflows", json=deploy_body, headers=as_(token))
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            f"the token '{token.name}' has the role {token.role.value}; this needs the role admin"
        )
        assert (await client.post("/schedules", json=SCHEDULE, headers=as_(token))).status_code == 403
    assert (await client.post("/workflows", json=deploy_body, headers=as_(ADMIN))).status_code == 201

    start = await client.post("/workflows/waits/instances", headers=as_(VIEWER))
    assert start.status_code == 403 and "needs the role operator" in start.json()["detail"]
    instance_id = (await client.post("/workflows/waits/instances", headers=as_(OPERATOR))).json()["id"]
    event = {"name": "go"}
    assert (await client.post(f"/instances/{instance_id}/events", json=event, headers=as_(VIEWER))).status_code == 403
    assert (await client.post(f"/instances/{instance_id}/cancel", headers=as_(VIEWER))).status_code == 403
    assert (await client.post(f"/instances/{instance_id}/events", json=event, headers=as_(OPERATOR))).status_code == 202
    assert (await client.post(f"/instances/{instance_id}/cancel", headers=as_(OPERATOR))).status_code == 200
    assert (await client.delete(f"/instances/{instance_id}", headers=as_(OPERATOR))).status_code == 403
    assert (await client.post("/schedules", json=SCHEDULE, headers=as_(ADMIN))).status_code == 201

    for path in ("/workflows", "/instances", f"/instances/{instance_id}", "/schedules", "/workers", "/audit"):
        assert (await client.get(path, headers=as_(VIEWER))).status_code == 200, path
    assert (await client.get("/workflows", headers={"Authorization": "Bearer not-a-token"})).status_code == 401


async def test_every_state_change_is_in_the_audit_log_with_its_actor(roles_client):
    client = roles_client
    await client.post("/workflows", json={"name": "waits", "definition": WAITS}, headers=as_(ADMIN))
    instance_id = (await client.post("/workflows/waits/instances", headers=as_(OPERATOR))).json()["id"]
    await client.post(f"/instances/{instance_id}/events", json={"name": "go", "data": {"x": 1}}, headers=as_(OPERATOR))
    await client.post(f"/instances/{instance_id}/cancel", headers=as_(VIEWER))
    await client.get("/workflows", headers=as_(VIEWER))  # reads are not audited

    entries = await audit(client)
    seen = [(e["actor"], e["role"], e["via"], e["action"], e["target"], e["status"]) for e in entries]
    assert seen == [
        ("grafana", "viewer", "api", "cancel_instance", f"instance {instance_id}", 403),
        ("ci", "operator", "api", "send_instance_event", f"instance {instance_id}", 202),
        ("ci", "operator", "api", "start_instance", "workflow waits", 201),
        ("alice", "admin", "api", "deploy", "workflow waits", 201),
    ]
    assert entries[1]["detail"] == {"event": "go"}  # the event's name, never its data
    assert entries[2]["detail"] == {"instance": instance_id, "created": True}
    assert entries[3]["detail"] == {"version": 1, "created": True}

    first = (await client.get("/audit", params={"limit": 3}, headers=as_(VIEWER))).json()
    assert [e["id"] for e in first["items"]] == [e["id"] for e in entries[:3]]
    rest = await audit(client, before=first["next_before"])
    assert [e["id"] for e in rest] == [entries[3]["id"]]
    assert [e["action"] for e in await audit(client, actor="ci")] == ["send_instance_event", "start_instance"]


async def test_without_tokens_the_actor_is_anonymous(client):
    await deploy(client, "shouter")
    (entry,) = (await client.get("/audit")).json()["items"]
    assert (entry["actor"], entry["role"], entry["action"], entry["status"]) == ("anonymous", "admin", "deploy", 201)


async def test_requests_answered_at_once_each_have_their_entry_before_their_answer(client):
    await deploy(client, "shouter")

    async def start_and_read_own_entry(n: int) -> bool:
        started = await client.post("/workflows/shouter/instances", json={"input": {"n": n}})
        assert started.status_code == 201, started.text
        instance = started.json()["id"]
        entries = (await client.get("/audit", params={"limit": 200})).json()["items"]
        return any(entry["detail"].get("instance") == instance for entry in entries)

    assert all(await asyncio.gather(*(start_and_read_own_entry(n) for n in range(40))))
    entries = (await client.get("/audit", params={"limit": 200})).json()["items"]
    assert sorted(e["action"] for e in entries) == ["deploy"] + ["start_instance"] * 40


async def test_the_schema_documents_the_403_where_it_can_happen(database_url):
    async with api_client(database_url, api_tokens=TOKENS) as client:
        schema = (await client.get("/openapi.json", headers=as_(VIEWER))).json()
    assert "403" in schema["paths"]["/workflows"]["post"]["responses"]
    assert "403" in schema["paths"]["/instances/{instance_id}/cancel"]["post"]["responses"]
    assert "403" not in schema["paths"]["/workflows"]["get"]["responses"]
    assert "403" not in schema["paths"]["/audit"]["get"]["responses"]


async def login(client: httpx.AsyncClient, token: ApiToken) -> None:
    response = await client.post("/ui/login", data={"token": token.token, "next": "/ui/workers"}, headers=ORIGIN)
    assert response.status_code == 303, response.text


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


async def test_the_console_refuses_a_viewer_and_audits_an_operator(roles_client):
    client = roles_client
    await client.post("/workflows", json={"name": "waits", "definition": WAITS}, headers=as_(ADMIN))
    instance_id = (await client.post("/workflows/waits/instances", headers=as_(OPERATOR))).json()["id"]

    await login(client, VIEWER)
    shown = await client.get(f"/ui/instances/{instance_id}")
    assert "grafana · viewer" in text(shown)
    assert re.search(r'id="cancel-submit" disabled', shown.text)
    assert "it needs the role operator" in text(shown)
    assert re.search(r'id="start" disabled', (await client.get("/ui/workflows/waits")).text)
    form = {"csrf": csrf_of(shown), "confirmed": "yes"}
    refused = await client.post(f"/ui/instances/{instance_id}/do/cancel", data=form, headers=ORIGIN)
    assert refused.status_code == 403
    assert "your role (viewer) may not do this: it needs the role operator" in text(refused)
    start = await client.post("/ui/workflows/waits/start", data={"csrf": form["csrf"]}, headers=ORIGIN)
    assert start.status_code == 403 and "it needs the role operator" in text(start)
    assert (await client.get(f"/instances/{instance_id}", headers=as_(VIEWER))).json()["status"] != "cancelled"
    refusals = [(e["actor"], e["role"], e["via"], e["action"], e["target"], e["status"]) for e in await audit(client)]
    assert refusals[:2] == [
        ("grafana", "viewer", "console", "start_instance", "workflow waits", 403),
        ("grafana", "viewer", "console", "cancel_instance", f"instance {instance_id}", 403),
    ]

    client.cookies.clear()
    await login(client, OPERATOR)
    shown = await client.get(f"/ui/instances/{instance_id}")
    assert not re.search(r'id="cancel-submit" disabled', shown.text)
    form = {"csrf": csrf_of(shown), "confirmed": "yes"}
    done = await client.post(f"/ui/instances/{instance_id}/do/cancel", data=form, headers=ORIGIN)
    assert done.status_code == 303, done.text
    latest = (await audit(client))[0]
    assert (latest["actor"], latest["role"], latest["via"], latest["action"], latest["status"]) == (
        "ci", "operator", "console", "cancel_instance", 200
    )  # fmt: skip
    page = await client.get("/ui/audit")
    assert page.status_code == 200 and "cancel_instance" in page.text and f"instance {instance_id}" in page.text
    assert '<a href="/ui/audit">Audit</a>' in page.text


async def test_console_headers_do_not_raise_a_token_s_role(roles_client):
    forged = {**as_(VIEWER), "x-postgit-console-actor": "alice", "x-postgit-console-role": "admin"}
    refused = await roles_client.post("/workflows", json={"name": "waits", "definition": WAITS}, headers=forged)
    assert refused.status_code == 403
    (entry,) = await audit(roles_client)
    assert (entry["actor"], entry["via"]) == ("grafana", "api")


def test_the_settings_list_every_token_the_single_one_as_an_admin_s():
    settings = ServerSettings(database_url="postgresql://unused", api_tokens=TOKENS)
    assert settings.auth_required and [t.name for t in settings.tokens] == ["alice", "ci", "grafana"]
    assert [t.name for t in ServerSettings(database_url="x", api_token="single-token").tokens] == ["api-token"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("alice:admin", "POSTGIT_API_TOKENS entry 1: expected name:role:token"),
        ("alice:root:sup3r-secret-value", "POSTGIT_API_TOKENS entry 1 (alice): role 'root' is not one of"),
        ("alice:admin:short", "POSTGIT_API_TOKENS entry 1 (alice): the token must be 8 to 512"),
        ("a lice:admin:sup3r-secret-value", "POSTGIT_API_TOKENS entry 1: the name must be"),
    ],
)
def test_a_bad_token_entry_names_it_without_its_token(entry, message):
    with pytest.raises(PostgitError) as raised:
        parse_entry(entry, "POSTGIT_API_TOKENS entry 1")
    assert str(raised.value).startswith(message)
    assert "sup3r" not in str(raised.value)


def test_bad_token_config_is_a_one_line_startup_error(database_url, tmp_path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("# name:role:token\nops:operator:sup3r-secret-one\nops:viewer:sup3r-secret-two\n")
    cases = [
        ({"POSTGIT_API_TOKENS": "ci:operator:sup3r-secret-a,bot:boss:sup3r-secret-b"}, "entry 2 (bot): role 'boss'"),
        ({"POSTGIT_API_TOKENS_FILE": str(tokens_file)}, "API tokens: the name 'ops' is given twice"),
        ({"POSTGIT_API_TOKENS_FILE": str(tmp_path / "missing")}, "cannot read it"),
    ]
    for overrides, expected in cases:
        env = server_env(database_url, free_port(), **overrides)
        result = subprocess.run([script("postgit-server")], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert "sup3r" not in result.stderr


async def test_a_server_process_takes_tokens_from_a_file_and_the_cli_client_says_forbidden(database_url, tmp_path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"{ADMIN.name}:admin:{ADMIN.token}\n\n{VIEWER.name}:viewer:{VIEWER.token}\n")
    with running_server(database_url, tmp_path, POSTGIT_API_TOKENS_FILE=str(tokens_file)) as (_, url):
        async with AsyncClient(url, token=VIEWER.token) as viewer:
            with pytest.raises(Forbidden) as raised:
                await viewer.deploy(WAITS, "waits")
        assert "needs the role admin" in str(raised.value) and "\n" not in str(raised.value)
        async with httpx.AsyncClient(base_url=url) as http:
            deployed = await http.post("/workflows", json={"name": "w", "definition": WAITS}, headers=as_(ADMIN))
            assert deployed.status_code == 201
            entries = (await http.get("/audit", headers=as_(VIEWER))).json()["items"]
    assert [(e["actor"], e["action"], e["status"]) for e in entries] == [
        ("alice", "deploy", 201),
        ("grafana", "deploy", 403),
    ]


async def test_retention_deletes_audit_entries_older_than_postgit_retention(store):
    entry = {"role": "admin", "via": "api", "action": "deploy", "target": None, "detail": {}, "status": 201}
    await store.record_audit([entry | {"actor": "old"}, entry | {"actor": "new"}])
    async with store.pool.connection() as conn:
        await conn.execute("UPDATE postgit.audit_log SET at = now() - interval '2 days' WHERE actor = 'old'")
    await Retention(store, retention_seconds=86400, interval=60).purge()
    assert [row["actor"] for row in await store.list_audit(limit=10)] == ["new"]
    await Retention(store, retention_seconds=None, interval=60).purge()  # off: kept for ever
    assert len(await store.list_audit(limit=10)) == 1


def test_every_api_route_declares_the_role_it_needs():
    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for module in ROUTE_MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute) and role_of(route.dependant.dependencies) is None
    ]
    assert undeclared == [], "declare dependencies=[VIEWER|OPERATOR|ADMIN] (postgit_server.auth) on these routes"
