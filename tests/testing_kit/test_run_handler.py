"""run_handler: one step of a node type, as the engine runs it, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

import postgit
from postgit import ref
from postgit.testing import PostgitTestingError, arun_handler, run_handler


class CountParams(BaseModel):
    n: int


def count(ctx: postgit.StepContext, params: CountParams) -> object:
    if params.n < 0:
        raise postgit.FatalError("n must not be negative")
    if params.n == 0:
        raise ValueError("nothing to count")
    return {"counted": params.n, "key": ctx.idempotency_key}


COUNT = postgit.NodeType(name="Count", params=CountParams, handler=count)


def test_an_installed_node_type_runs_by_name_with_refs_resolved_against_the_state():
    result = run_handler("Shout", {"text": ref("$.input.name"), "exclamations": 2}, state={"input": {"name": "ada"}})
    assert result.status == "completed"
    assert result.output == {"text": "ADA!!"}
    assert result.params == {"text": "ada", "exclamations": 2}


def test_a_plain_handler_of_a_node_type_that_is_not_installed():
    result = run_handler(COUNT, {"n": 3}, node_id="count", instance_id="i-1")
    assert result.output == {"counted": 3, "key": "i-1:count"}


def test_failures_are_what_the_engine_records():
    fatal = run_handler(COUNT, {"n": -1})
    assert fatal.status == "failed" and not fatal.retryable
    assert fatal.error["type"] == "FatalError" and fatal.error["message"] == "n must not be negative"
    crashed = run_handler(COUNT, {"n": 0})
    assert crashed.retryable and crashed.error["message"] == "ValueError: nothing to count"
    last = run_handler(COUNT, {"n": 0}, attempt=3)
    assert last.status == "failed" and not last.retryable  # the default policy gives up after 3 attempts
    invalid = run_handler(COUNT, {"n": "many"})
    assert invalid.status == "failed" and "n" in invalid.error["message"]


def test_sleep_suspends_and_completes_when_woken():
    before = datetime.now(UTC)
    first = run_handler("Sleep", {"seconds": 10})
    assert first.status == "suspended" and first.until is not None
    assert first.until >= before + timedelta(seconds=10)
    woken = run_handler("Sleep", {"seconds": 10}, suspended_until=first.until, resume=first.resume)
    assert woken.output == {"slept_until": first.until.isoformat()}


def test_send_email_parks_the_message_in_the_outbox_without_smtp(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("POSTGIT_SMTP_URL", raising=False)
    result = run_handler(
        "SendEmail",
        {"to": "ada@example.com", "subject": "Hi", "body": "Hello {{ input.name }}"},
        state={"input": {"name": "Ada"}},
    )
    assert result.output["delivery"] == "outbox"
    [message] = result.outbox
    assert message["to"] == ["ada@example.com"] and message["body"] == "Hello Ada"


def test_an_unknown_node_type_is_named():
    with pytest.raises(PostgitTestingError, match="node type 'Shuot' is not installed"):
        run_handler("Shuot", {})


async def test_async_tests_await_arun_handler():
    with pytest.raises(PostgitTestingError, match="await arun_handler"):
        run_handler(COUNT, {"n": 1})
    result = await arun_handler(COUNT, {"n": 1})
    assert result.output["counted"] == 1
