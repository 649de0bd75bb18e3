"""Pure pieces of the CLI: the server-sent events parser and the formatting helpers."""

from __future__ import annotations

from postgit_cli.output import format_duration, version_cell, workers_cell
from postgit_cli.sse import ServerSentEvent, iter_sse


def test_sse_events_are_dispatched_at_blank_lines():
    lines = [
        ": keep-alive",
        "id: 1",
        "event: step_started",
        'data: {"kind": "step_started"}',
        "",
        "id: 2",
        "event: step_completed",
        "data: first line",
        "data:second line",
        "retry: 1500",
        "",
        "data: without id or event",
        "",
        "id: 3",
        "data: cut off at the end of the stream",
    ]
    assert list(iter_sse(lines)) == [
        ServerSentEvent("step_started", '{"kind": "step_started"}', "1"),
        ServerSentEvent("step_completed", "first line\nsecond line", "2", 1500),
        ServerSentEvent("message", "without id or event", "2", 1500),
    ]


def test_sse_ignores_empty_events_and_unknown_fields():
    assert list(iter_sse(["event: nothing", "", "foo: bar", "id", "", "data", ""])) == [
        ServerSentEvent("message", "", "")
    ]


def test_durations():
    assert format_duration(None) == ""
    assert format_duration(12) == "12ms"
    assert format_duration(1250) == "1.25s"
    assert format_duration(125_000) == "2m 05s"
    assert format_duration(3_720_000) == "1h 02m"


def test_workers_cell():
    assert workers_cell({"workers": [], "on_server": True}, 0) == "server only"
    assert workers_cell({"workers": ["a"], "on_server": True}, 2) == "1 of 2"
    assert workers_cell({"workers": ["a", "b"], "on_server": True}, 2) == "2 of 2"
    assert workers_cell({"workers": ["a"], "on_server": False}, 1) == "1 of 1, not on the server"
    assert workers_cell({"workers": [], "on_server": True, "builtin": True}, 0) == "no live worker"


def test_version_cell_shows_the_other_versions_workers_run():
    row = {"package": "p", "version": "1.0", "on_server": True}
    assert version_cell(row) == "1.0"
    same = {"w1": {"package": "p", "version": "1.0"}, "w2": None}
    assert version_cell({**row, "worker_versions": same}) == "1.0"
    others = {"w1": {"package": "p", "version": "2.0"}, "w2": {"package": "q", "version": "1.0"}, "w3": None}
    assert version_cell({**row, "worker_versions": others}) == "1.0 (workers: 2.0, q 1.0)"
    remote = {
        "package": None,
        "version": None,
        "on_server": False,
        "worker_versions": {"w": {"package": "p", "version": "3"}},
    }
    assert version_cell(remote) == "workers: p 3"
