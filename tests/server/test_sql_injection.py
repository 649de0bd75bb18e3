"""SQL-injection payloads through every string field of the API: refused or stored verbatim, never executed."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest

from tests.server.conftest import deploy, sequence, shout, start

PAYLOADS = [
    "'; DROP TABLE postgit.instances; --",
    '" OR 1=1 --',
    "x') ; DELETE FROM postgit.workflows WHERE ('1'='1",
    "$$; DROP SCHEMA postgit CASCADE; $$",
    "%(id)s %s {0} \\x00",
    "1; SELECT pg_sleep(10)",
]


def tables_intact(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        workflows = conn.execute("SELECT count(*) FROM postgit.workflows").fetchone()[0]
        instances = conn.execute("SELECT count(*) FROM postgit.instances").fetchone()[0]
    return workflows, instances


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_payloads_in_every_string_field(client, database_url, payload):
    payload = payload.replace("\\x00", "")  # PostgreSQL text cannot hold NUL; that case has its own 400 test
    definition = sequence(shout(node_id=payload[:150] or "n", text=payload), node_id="root")
    await deploy(client, "safe", definition)
    instance = await start(client, "safe", input={"text": payload, payload: payload}, idempotency_key=payload)

    # stored verbatim where accepted
    shown = (await client.get(f"/instances/{instance['id']}")).json()
    assert shown["state"]["input"] == {"text": payload, payload: payload}
    again = await start(client, "safe", input={}, idempotency_key=payload)
    assert again["id"] == instance["id"]
    stored = (await client.get("/workflows/safe")).json()["definition"]
    assert stored["children"][0]["params"]["text"] == payload

    # refused, with a 4xx, where they cannot be valid
    for response in [
        await client.post("/workflows", json={"name": payload, "definition": shout()}),
        await client.get(f"/workflows/{quote(payload, safe='')}"),
        await client.get(f"/workflows/{quote(payload, safe='')}/versions/1"),
        await client.post(f"/workflows/{quote(payload, safe='')}/instances", json={}),
        await client.get("/instances", params={"status": payload}),
        await client.get("/instances", params={"workflow": payload}),
        await client.get(f"/instances/{quote(payload, safe='')}"),
        await client.post(f"/instances/{quote(payload, safe='')}/cancel"),
        await client.get(f"/instances/{quote(payload, safe='')}/events"),
        await client.get("/outbox", params={"limit": payload}),
    ]:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)

    assert tables_intact(database_url) == (1, 1)
