"""Handlers that raise, hang, return something not JSON or something huge: the step fails, the worker goes on."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

import postgit
from postgit import Node, Sequence
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import in_process_worker, wait_finished

ONE_TRY = {"maxAttempts": 1}


class NoParams(BaseModel):
    pass


async def raises(ctx, params):
    raise KeyError("boom")


async def hangs(ctx, params):
    await asyncio.sleep(3600)


def hangs_in_a_thread(ctx, params):
    time.sleep(2)


async def not_json(ctx, params):
    return {"when": object()}


async def not_a_number(ctx, params):
    return {"ratio": float("nan")}


async def nul_character(ctx, params):
    return {"text": "a\x00b"}


async def huge(ctx, params):
    return "x" * 2_000_000


class Misbehaving:
    @postgit.hookimpl
    def postgit_node_types(self):
        def node(name, handler):
            return postgit.NodeType(name=name, params=NoParams, handler=handler, timeout=0.5)

        return [
            node("Raises", raises),
            node("Hangs", hangs),
            node("HangsInAThread", hangs_in_a_thread),
            node("NotJson", not_json),
            node("Huge", huge),
            node("NotANumber", not_a_number),
            node("NulCharacter", nul_character),
        ]


@pytest.fixture(scope="module")
def misbehaving_registry():
    return load_registry(extra=[Misbehaving()])


@pytest.mark.parametrize(
    ("node_type", "message"),
    [
        ("Raises", "KeyError: 'boom'"),
        ("Hangs", "step timed out after 0.5s"),
        ("HangsInAThread", "step timed out after 0.5s"),
        ("NotJson", "output is not JSON-serialisable"),
        ("Huge", "output is 2000002 bytes; the limit is 1000000"),
        ("NotANumber", "output holds NaN or an infinite number"),
        ("NulCharacter", "output holds a NUL character"),
    ],
)
async def test_a_misbehaving_handler_fails_its_step_and_the_worker_serves_others(
    misbehaving_registry, store, database_url, node_type, message
):
    service = WorkflowService(store, misbehaving_registry)
    bad = Sequence(id="root", children=[Node(node_type, id="bad", retry=ONE_TRY)])
    good = Sequence(id="root", children=[Node("Shout", id="fine", text="still here", assign_to="$.out")])
    await service.deploy("bad", bad.to_json())
    await service.deploy("good", good.to_json())
    async with in_process_worker(store, misbehaving_registry, database_url):
        failed, _ = await service.start("bad")
        instance = await wait_finished(store, failed["id"])
        after, _ = await service.start("good")
        healthy = await wait_finished(store, after["id"])
    assert instance["status"] == "failed"
    assert message in instance["error"]["message"]
    assert instance["error"]["node_id"] == "bad"
    [step] = await store.list_steps(failed["id"])
    assert step["status"] == "failed" and message in step["error"]["message"]
    assert healthy["status"] == "completed"
    assert healthy["state"]["out"] == {"text": "STILL HERE!"}
