"""examples/order.py, as the README describes it: an approved order ships each line, a rejected one is refunded."""

from __future__ import annotations

import json
from pathlib import Path

from postgit import load_definition_file
from tests.support.engine import in_process_worker, wait_event, wait_finished

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "order.py"


def order(order_id: str, api: str) -> dict:
    lines = [{"sku": "tea", "qty": 2}, {"sku": "cup", "qty": 1}, {"sku": "pot", "qty": 1}]
    return {"order_id": order_id, "email": "ada@example.com", "amount": 42, "lines": lines, "api": api}


async def test_the_order_example(service, store, registry, database_url, http_server):
    await service.deploy("order", load_definition_file(EXAMPLE))
    approved, _ = await service.start("order", order("o-1", http_server.url))
    rejected, _ = await service.start("order", order("o-2", http_server.url))
    async with in_process_worker(store, registry, database_url):
        for row in (approved, rejected):
            await wait_event(store, row["id"], "step_suspended", "approval")
        await service.send_keyed_event("approval", "o-1", {"approved": True})
        await service.send_keyed_event("approval", "o-2", {"approved": False})
        shipped = await wait_finished(store, approved["id"])
        refunded = await wait_finished(store, rejected["id"])
    assert shipped["status"] == "completed", shipped["error"]
    assert [shipment["status"] for shipment in shipped["state"]["shipments"]] == [200, 200, 200]
    bodies = [json.loads(hit.body) for hit in http_server.hits("/ship")]
    assert sorted((body["order"], body["sku"], body["qty"]) for body in bodies) == [
        ("o-1", "cup", 1),
        ("o-1", "pot", 1),
        ("o-1", "tea", 2),
    ]
    keys = {hit.headers["Idempotency-Key"] for hit in http_server.hits("/ship")}
    assert keys == {f"{approved['id']}:ship-line[{index}]" for index in range(3)}
    assert refunded["status"] == "completed", refunded["error"]
    [refund] = [json.loads(hit.body) for hit in http_server.hits("/refund")]
    assert refund["order"] == "o-2" and "no case of Switch 'approved' matched" in refund["reason"]
    assert len(http_server.hits("/charge")) == 2 and len(http_server.hits("/warehouse")) == 2
    subjects = sorted(row["message"]["subject"] for row in await store.list_outbox())
    assert subjects == ["Order o-1 received", "Order o-2 received", "Order o-2 refunded"]
