"""SIGTERM to the server under load: requests it accepted are answered in full, then it exits cleanly.

A request sent on a keep-alive connection just as the server closes it never reaches the application (the client
sees a read error); what must never happen is a start that was committed but not answered, or any error answer.
"""

from __future__ import annotations

import asyncio

import httpx

from postgit.db import Store
from tests.support.server import start_server

REQUESTS = 200


async def test_sigterm_drains_in_flight_requests(store: Store, database_url, tmp_path):
    process, url = start_server(database_url, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            definition = {"id": "s", "type": "Shout", "params": {"text": "x"}}
            assert (
                await client.post("/workflows", json={"name": "drain", "definition": definition})
            ).status_code == 201
            answered: list[str] = []
            refused = 0
            unanswered = 0
            broken: list[str] = []

            async def start_one(n: int) -> None:
                nonlocal refused, unanswered
                try:
                    response = await client.post("/workflows/drain/instances", json={"input": {"n": n}})
                except httpx.ConnectError:
                    refused += 1  # arrived after the server stopped listening
                    return
                except httpx.TransportError:
                    unanswered += 1  # must not have been committed: checked below
                    return
                if response.status_code == 201:
                    answered.append(response.json()["id"])
                else:
                    broken.append(f"{response.status_code} {response.text[:200]}")

            tasks = [asyncio.create_task(start_one(n)) for n in range(REQUESTS)]
            while len(answered) < 20:
                await asyncio.sleep(0.01)
            code = await asyncio.to_thread(process.terminate, 30)
            await asyncio.gather(*tasks)
    finally:
        process.stop()
    assert code == 0, process.log_path.read_text()
    assert not broken, f"requests failed during shutdown: {broken[:5]}"
    assert len(answered) + refused + unanswered == REQUESTS
    stored = {row["id"] for row in await store.list_instances(limit=REQUESTS + 1)}
    assert {str(i) for i in stored} == set(answered), "every answered start was committed, and only those"
    print(f"graceful stop: {len(answered)} answered, {refused + unanswered} not accepted after SIGTERM, 0 cut off")
