"""Interruptions: a worker that stopped while it held an instance, and the step attempts it left unfinished.

The worker that takes such an instance over logs them as it claims it (see the ``claim_instances`` query): a
``lease_expired`` event naming the worker that stopped, and a ``step_interrupted`` event for each attempt that
started and never ended. Such an attempt is run again; these functions turn the events into what an instance's
detail shows: the interrupted attempts among its steps, and the interruptions themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

INTERRUPTED = "interrupted"
"""The status of an interrupted attempt among an instance's steps."""


def interrupted_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``step_interrupted`` events as step attempts (the shape of ``list_steps`` rows), oldest first."""
    steps = []
    for event in events:
        if event["kind"] != "step_interrupted":
            continue
        data = event["data"] if isinstance(event["data"], dict) else {}
        node_id = event["node_id"]
        worker = data.get("worker") or "?"
        expired = _timestamp(data.get("lease_expired_at"))
        when = f" (its lease expired at {expired.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)" if expired else ""
        steps.append(
            {
                "run_key": data.get("run") or node_id,
                "node_id": node_id,
                "attempt": data.get("attempt") or 1,
                "status": INTERRUPTED,
                "params": None,
                "output": None,
                "error": {
                    "type": "Interrupted",
                    "message": f"worker {worker} stopped before this attempt ended{when}; the attempt is run again",
                    "node_id": node_id,
                },
                "worker_id": data.get("worker"),
                "started_at": _timestamp(data.get("started_at")) or event["at"],
                "finished_at": None,
                "due_at": None,
                "wait_event": None,
                "wait_key": None,
            }
        )
    return steps


def lease_expiries(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``lease_expired`` events: ``{"worker", "lease_expired_at", "taken_over_by", "at"}``, oldest first."""
    out = []
    for event in events:
        if event["kind"] != "lease_expired":
            continue
        data = event["data"] if isinstance(event["data"], dict) else {}
        out.append(
            {
                "worker": data.get("worker"),
                "lease_expired_at": _timestamp(data.get("lease_expired_at")),
                "taken_over_by": data.get("taken_over_by"),
                "at": event["at"],
            }
        )
    return out


def with_interrupted(steps: list[dict[str, Any]], interrupted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``steps`` (in the order they started) with the interrupted attempts among them, by when each started.

    An interrupted attempt that was charged (its step row records the failure: the worker died while running it)
    is shown by that row alone.
    """
    if not interrupted:
        return steps
    recorded = {(step["run_key"], step.get("attempt")) for step in steps}
    interrupted = [step for step in interrupted if (step["run_key"], step["attempt"]) not in recorded]
    return sorted([*steps, *interrupted], key=lambda step: step["started_at"])


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
