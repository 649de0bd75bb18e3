"""An instance's timeline: its step attempts as bars on one time axis.

Steps are grouped in lanes, one per Parallel branch they run in (the main line otherwise), so that branches that
ran side by side show as lanes whose bars overlap in time. The steps of a ForEach's items are summarised in one row
per ForEach, with its items listed (the first :data:`ITEMS_SHOWN`) for browsing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from postgit.definition import control_children
from postgit_server.console.tree import root_of

ITEMS_SHOWN = 200
MAIN_LANE = "main"
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass
class Bar:
    """One attempt: where it sits on the axis, in percent of the axis's width."""

    attempt: int
    status: str
    left: float
    width: float
    title: str


@dataclass
class Row:
    """One run (or one ForEach item) and its attempts."""

    label: str
    bars: list[Bar] = field(default_factory=list)
    status: str = ""


@dataclass
class LoopSummary:
    """A ForEach's items: one bar over all of them, counts by status, and the items as rows."""

    node_id: str
    bar: Bar
    counts: dict[str, int]
    items: list[Row]
    total: int
    first: int = 0
    """The position of the first item shown (items are browsed :data:`ITEMS_SHOWN` at a time)."""

    @property
    def earlier(self) -> int | None:
        """Where the previous items start, or None on the first ones."""
        return max(0, self.first - ITEMS_SHOWN) if self.first > 0 else None

    @property
    def later(self) -> int | None:
        """Where the next items start, or None on the last ones."""
        return self.first + ITEMS_SHOWN if self.first + ITEMS_SHOWN < self.total else None


@dataclass
class Lane:
    """The runs of one Parallel branch (or of the main line), in the order they started."""

    label: str
    rows: list[Row] = field(default_factory=list)
    loops: list[LoopSummary] = field(default_factory=list)


@dataclass
class Timeline:
    """The axis (its start and end, and tick labels) and the lanes."""

    start: datetime
    end: datetime
    ticks: list[tuple[float, str]]
    lanes: list[Lane]

    @property
    def empty(self) -> bool:
        """Whether no step has started yet."""
        return not any(lane.rows or lane.loops for lane in self.lanes)


def build_timeline(
    definition: Any,
    steps: Iterable[Mapping[str, Any]],
    start: datetime,
    end: datetime | None,
    now: datetime,
    items_from: Mapping[str, int] | None = None,
) -> Timeline:
    """Lay ``steps`` (step attempts, in the order they started) out between ``start`` and ``end`` (or ``now``).

    ``items_from`` says, per ForEach node id, from which item its rows are listed (the first by default).
    """
    items_from = items_from or {}
    steps = list(steps)
    finish = end or now
    for step in steps:
        finish = max(finish, step["finished_at"] or now)
    span = max((finish - start).total_seconds(), 0.001)

    def place(begin: datetime, stop: datetime | None) -> tuple[float, float]:
        left = max(0.0, (begin - start).total_seconds() / span * 100)
        width = max(0.4, ((stop or now) - begin).total_seconds() / span * 100)
        return round(left, 3), round(min(width, 100 - left if left < 100 else 0.4), 3)

    branch_of, loop_of = _placement(definition)
    lanes: dict[str, Lane] = {}
    rows: dict[str, Row] = {}
    loops: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    lane_loops: dict[str, list[str]] = {}
    for step in steps:
        label = branch_of.get(step["node_id"], MAIN_LANE)
        lane = lanes.setdefault(label, Lane(label))
        loop = loop_of.get(step["node_id"])
        index = _INDEX.search(step["run_key"])
        if loop is not None and index is not None:
            loops.setdefault(loop, {}).setdefault(index.group(1), []).append(step)
            if loop not in lane_loops.setdefault(label, []):
                lane_loops[label].append(loop)
            continue
        row = rows.get(step["run_key"])
        if row is None:
            row = rows[step["run_key"]] = Row(step["run_key"])
            lane.rows.append(row)
        left, width = place(step["started_at"], step["finished_at"])
        row.bars.append(Bar(step["attempt"], step["status"], left, width, _title(step)))
        row.status = step["status"]
    for label, loop_ids in lane_loops.items():
        lanes[label].loops.extend(_summarise(loop, loops[loop], place, items_from.get(loop, 0)) for loop in loop_ids)
    ticks = [(fraction * 100, _offset(span * fraction)) for fraction in (0, 0.25, 0.5, 0.75, 1)]
    ordered = sorted(lanes.values(), key=lambda lane: (lane.label != MAIN_LANE, lane.label))
    return Timeline(start=start, end=finish, ticks=ticks, lanes=ordered)


def _summarise(node_id: str, items: dict[str, list[Mapping[str, Any]]], place: Any, first_shown: int) -> LoopSummary:
    counts: dict[str, int] = {}
    rows = []
    first: datetime | None = None
    last: datetime | None = None
    open_ended = False
    first_shown = min(max(first_shown, 0), max(len(items) - 1, 0))
    for position, index in enumerate(sorted(items, key=int)):
        attempts = items[index]
        status = attempts[-1]["status"]
        counts[status] = counts.get(status, 0) + 1
        for step in attempts:
            first = step["started_at"] if first is None else min(first, step["started_at"])
            if step["finished_at"] is None:
                open_ended = True
            else:
                last = step["finished_at"] if last is None else max(last, step["finished_at"])
        if first_shown <= position < first_shown + ITEMS_SHOWN:
            row = Row(f"item {index}", status=status)
            for step in attempts:
                left, width = place(step["started_at"], step["finished_at"])
                row.bars.append(Bar(step["attempt"], step["status"], left, width, _title(step)))
            rows.append(row)
    assert first is not None
    left, width = place(first, None if open_ended else last)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    bar = Bar(0, "loop", left, width, f"{node_id}: {len(items)} items ({summary})")
    return LoopSummary(node_id, bar, counts, rows, len(items), first_shown)


def _placement(definition: Any) -> tuple[dict[str, str], dict[str, str]]:
    """For each node id, the Parallel branch it runs in (``parallel / branch``) and its outermost ForEach."""
    branch_of: dict[str, str] = {}
    loop_of: dict[str, str] = {}

    def walk(data: Any, branch: str | None, loop: str | None) -> None:
        if not isinstance(data, dict):
            return
        node_id = str(data.get("id", ""))
        if branch is not None:
            branch_of[node_id] = branch
        if loop is not None:
            loop_of[node_id] = loop
        for role, child in control_children(data):
            inner = f"{node_id} / {role}" if data.get("type") == "Parallel" else branch
            walk(child, inner, loop if loop is not None else (node_id if data.get("type") == "ForEach" else None))

    walk(root_of(definition), None, None)
    return branch_of, loop_of


def _title(step: Mapping[str, Any]) -> str:
    took = ""
    if step["finished_at"] is not None:
        took = f", {_offset((step['finished_at'] - step['started_at']).total_seconds())}"
    return f"{step['run_key']} attempt {step['attempt']}: {step['status']}{took}"


def _offset(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
