"""Step logs: what a handler logs through ``ctx.logger`` is kept with its attempt, and shown by the API, ``pst``
and the console."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from datetime import timedelta

import httpx
from prometheus_client import REGISTRY
from pydantic import BaseModel

import postgit
from postgit import Node, Sequence
from postgit.clock import SYSTEM_CLOCK
from postgit.plugins import load_registry
from postgit.retry import RetryPolicy
from postgit.sdk import secret
from postgit.service import WorkflowService
from postgit.step_logs import MAX_LOG_BYTES, StepLogBuffer
from postgit_cli import AsyncClient
from tests.cli.conftest import cli_env
from tests.support.engine import in_process_worker, wait_finished
from tests.support.processes import script
from tests.support.server import serving

TOKEN = "L0g-S3cr3t-value"


class ChattyParams(BaseModel):
    token: str
    lines: int = 1
    fail_first: bool = False
    nap: float = 0.0


def chatty(ctx: postgit.StepContext, params: ChattyParams) -> dict[str, int] | postgit.Suspended:
    """A plain function (run in a thread) that logs, then fails on its first attempt or naps, when asked."""
    if params.nap:
        if ctx.resume is None:
            ctx.logger.info("going to sleep")
            return postgit.Suspended(until=ctx.now() + timedelta(seconds=params.nap), data={"slept": True})
        ctx.logger.info("woke up")
        return {"lines": 2}
    ctx.logger.info("attempt %d starts with token %s", ctx.attempt, params.token)
    ctx.logger.debug("a debug line, kept only when the logger is enabled for DEBUG")
    for n in range(params.lines - 1):
        ctx.logger.warning("line %d %s", n, "x" * 100)
    if params.fail_first and ctx.attempt == 1:
        try:
            raise ValueError(f"bad token {params.token}")
        except ValueError:
            ctx.logger.exception("the first attempt fails")
        raise postgit.RetryableError("try again")
    return {"lines": params.lines}


class ChattyPlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types() -> list[postgit.NodeType]:
        retry = RetryPolicy(max_attempts=2, initial_interval=0.05, max_interval=0.1)
        return [postgit.NodeType(name="Chatty", params=ChattyParams, handler=chatty, retry=retry)]


async def test_step_logs_are_stored_redacted_and_capped_and_shown_by_the_api_and_pst(store, database_url, monkeypatch):
    monkeypatch.setenv("POSTGIT_SECRET_LOG_TOKEN", TOKEN)
    registry = load_registry(extra=[ChattyPlugin])
    service = WorkflowService(store, registry)
    flow = Sequence(
        id="root",
        children=[
            Node("Chatty", id="talk", token=secret("LOG_TOKEN"), fail_first=True),
            Node("Chatty", id="flood", token="plain", lines=600),
            Node("Shout", id="quiet-then-loud", text="hi"),
            Node("Chatty", id="nap", token="plain", nap=0.2),
        ],
    )
    await service.deploy("chatty", flow.to_json())
    row, _ = await service.start("chatty", {})
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, row["id"]))["status"] == "completed"

    async with serving(database_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            plain = (await client.get(f"/instances/{row['id']}")).json()
            detail = (await client.get(f"/instances/{row['id']}", params={"logs": "true"})).json()
            console_page = (await client.get(f"/ui/instances/{row['id']}")).text
        async with AsyncClient(server.url) as python_client:
            through_client = await python_client.get(str(row["id"]), logs=True)
        pst = await asyncio.to_thread(  # the server runs on this event loop
            subprocess.run,
            [script("pst"), "status", str(row["id"]), "--logs"],
            env=cli_env(server.url),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert all(step["logs"] is None for step in plain["steps"]), "logs only when asked for"
    logs = {(step["run_key"], step["attempt"]): step["logs"] for step in detail["steps"]}
    first, second = logs[("talk", 1)], logs[("talk", 2)]
    assert " INFO attempt 1 starts with token ***" in first
    assert " ERROR the first attempt fails" in first
    assert "Traceback" in first and "ValueError: bad token ***" in first, "the traceback is kept, redacted"
    assert "debug line" not in first
    assert second.count("\n") == 0 and " INFO attempt 2 starts with token ***" in second
    flood = logs[("flood", 1)]
    assert len(flood.encode()) <= MAX_LOG_BYTES + 200
    assert flood.splitlines()[-1].startswith("[log truncated: ")
    assert " INFO shouting 2 characters" in logs[("quiet-then-loud", 1)], "a plugin's own logger.info"
    napped = logs[("nap", 1)].splitlines()
    assert [line.split(" ", 2)[2] for line in napped] == ["going to sleep", "woke up"], (
        "a resumed attempt adds its lines"
    )
    started = REGISTRY.get_sample_value("postgit_steps_started_total", {"workflow": "chatty", "node_type": "Chatty"})
    assert started == 4, "talk twice, flood and nap once each: resuming is not starting again"
    assert TOKEN not in repr(detail)
    assert [step["logs"] for step in through_client["steps"]] == [step["logs"] for step in detail["steps"]]

    assert "<h3>Logs</h3>" in console_page and "attempt 1 starts with token ***" in console_page
    assert TOKEN not in console_page

    assert pst.returncode == 0, pst.stderr
    assert "attempt 1 starts with token ***" in pst.stdout
    assert "talk attempt 2" in pst.stdout
    assert TOKEN not in pst.stdout


def test_a_log_buffer_keeps_what_fits_and_counts_the_rest():
    buffer = StepLogBuffer(SYSTEM_CLOCK)
    assert buffer.text() is None
    buffer.add(logging.INFO, "é" * MAX_LOG_BYTES)  # one line longer than the cap, in two-byte characters
    buffer.add(logging.INFO, "after")
    text = buffer.text()
    kept, marker = text.rsplit("\n", 1)
    assert len(kept.encode()) < MAX_LOG_BYTES
    assert kept.endswith("é")
    assert marker.startswith("[log truncated: ") and "after" not in text
