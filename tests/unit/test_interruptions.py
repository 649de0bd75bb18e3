"""Interrupted attempts: the claim's events turned into step attempts, and how pst shows them."""

from __future__ import annotations

from datetime import UTC, datetime

from postgit.interruptions import interrupted_steps, lease_expiries, with_interrupted
from postgit_cli.output import EventPrinter

AT = datetime(2026, 12, 3, 2, 41, tzinfo=UTC)
EVENTS = [
    {"kind": "lease_expired", "node_id": None, "at": AT,
     "data": {"worker": "w1", "lease_expired_at": "2026-12-03T02:40:59+00:00", "taken_over_by": "w2"}},
    {"kind": "step_interrupted", "node_id": "ship", "at": AT,
     "data": {"run": "ship[3]", "attempt": 2, "started_at": "2026-12-03T02:40:30+00:00", "worker": "w1",
              "lease_expired_at": "2026-12-03T02:40:59+00:00"}},
]  # fmt: skip


def test_interrupted_attempts_become_steps_in_start_order():
    [step] = interrupted_steps(EVENTS)
    assert (step["run_key"], step["node_id"], step["attempt"], step["status"]) == ("ship[3]", "ship", 2, "interrupted")
    assert step["worker_id"] == "w1"
    assert step["error"]["type"] == "Interrupted"
    assert (
        "worker w1 stopped before this attempt ended (its lease expired at 2026-12-03 02:40:59 UTC)"
        in (step["error"]["message"])
    )
    earlier = {"run_key": "a", "started_at": datetime(2026, 12, 3, 2, 40, tzinfo=UTC)}
    later = {"run_key": "b", "started_at": datetime(2026, 12, 3, 2, 41, tzinfo=UTC)}
    assert [s["run_key"] for s in with_interrupted([earlier, later], [step])] == ["a", "ship[3]", "b"]
    charged = {"run_key": "ship[3]", "attempt": 2, "status": "failed", "started_at": step["started_at"]}
    assert with_interrupted([earlier, charged], [step]) == [earlier, charged], "a charged attempt is shown once"
    assert lease_expiries(EVENTS) == [
        {"worker": "w1", "lease_expired_at": datetime(2026, 12, 3, 2, 40, 59, tzinfo=UTC), "taken_over_by": "w2",
         "at": AT}
    ]  # fmt: skip


def test_the_watch_prints_interruptions(capsys):
    printer = EventPrinter()
    printer({"kind": "step_started", "node_id": "fetch", "at": "2026-12-03T02:40:00+00:00",
             "data": {"attempt": 1, "started_at": "2026-12-03T02:40:00+00:00"}})  # fmt: skip
    printer({"kind": "lease_expired", "node_id": None, "at": "2026-12-03T02:41:00+00:00",
             "data": {"worker": "w1", "taken_over_by": "w2"}})  # fmt: skip
    printer({"kind": "step_interrupted", "node_id": "fetch", "at": "2026-12-03T02:41:00+00:00",
             "data": {"attempt": 1, "started_at": "2026-12-03T02:40:00+00:00", "worker": "w1"}})  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert lines[1].endswith("worker w1 stopped; worker w2 took the instance over")
    assert lines[2].endswith("fetch  interrupted (attempt 1): its worker stopped; it is run again")


def test_the_watch_prints_a_compacted_stretch_as_one_line(capsys):
    EventPrinter()(
        {"kind": "events_compacted", "node_id": None, "at": "2026-12-03T02:40:00+00:00", "data": {"events": 98900}}
    )
    [line] = capsys.readouterr().out.splitlines()
    assert line.endswith("98900 earlier events compacted: the log keeps an instance's first and latest")
