"""Everything the CLI prints: JSON for ``--json``, rich tables and lines for people, errors on stderr.

Commands hand data to these functions and never format anything themselves. Values from the server are printed
as plain text (markup off), so a ``[red]`` in a workflow name is shown, not interpreted.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

NON_TERMINAL_WIDTH = 200
"""Width used when stdout is a pipe or a file, so tables are not squeezed to 80 columns."""

STATUS_STYLES = {
    "pending": "dim",
    "running": "cyan",
    "waiting": "magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
}


@cache
def stdout() -> Console:
    """The console for results."""
    return _console(stderr=False)


@cache
def stderr() -> Console:
    """The console for errors and progress notes."""
    return _console(stderr=True)


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, markup=False, highlight=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = NON_TERMINAL_WIDTH
    return console


# -- generic ---------------------------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (for ``--json``), nothing else."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_error(message: str) -> None:
    """One ``error: ...`` line on stderr; newlines in ``message`` are folded so it stays one line."""
    line = " ".join(message.split())
    stderr().print(Text("error: ", style="bold red") + Text(line), soft_wrap=True)


def note(message: str) -> None:
    """A line for people on stderr, kept out of stdout so scripts can read stdout alone."""
    stderr().print(Text(message, style="dim"), soft_wrap=True)


def say(message: str) -> None:
    """Plain lines on stdout, as they are (for long-running commands such as ``pst dev``)."""
    stdout().print(Text(message), soft_wrap=True)


def _line(*parts: str | Text) -> None:
    stdout().print(Text.assemble(*parts), soft_wrap=True)


def status_text(status: Any) -> Text:
    """An instance or step status, coloured when stdout is a terminal."""
    text = str(status or "")
    return Text(text, style=STATUS_STYLES.get(text, ""))


def format_time(value: Any) -> str:
    """An ISO-8601 timestamp from the API in local time, to the second; '' for None."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_duration(milliseconds: Any) -> str:
    """``850ms``, ``1.25s``, ``2m 05s`` or ``1h 02m``; '' when unknown."""
    if milliseconds is None:
        return ""
    ms = float(milliseconds)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def error_message(error: Any) -> str:
    """The message of a step's or instance's error (a ``{"message", ...}`` object or a string)."""
    if error is None:
        return ""
    if isinstance(error, dict):
        return str(error.get("message") or json.dumps(error))
    return str(error)


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _cell(value: Any) -> Text:
    return Text("" if value is None else str(value))


# -- deploy, run, cancel -----------------------------------------------------------------------------------------


def print_deployed(result: dict[str, Any]) -> None:
    """``Deployed NAME version N``, or ``NAME unchanged, version N`` when the definition was already stored."""
    if result.get("created", True):
        _line("Deployed ", Text(str(result["name"]), style="bold"), f" version {result['version']}")
    else:
        _line(Text(str(result["name"]), style="bold"), f" unchanged, version {result['version']}")


def print_started(result: dict[str, Any]) -> None:
    """The new instance's id alone on stdout (so ``ID=$(pst run flow)`` works)."""
    if result.get("created") is False:
        note("an instance with this idempotency key already exists; not started again")
    stdout().print(Text(str(result["id"])), soft_wrap=True)


def print_event_sent(result: dict[str, Any], key: str | None) -> None:
    """``Sent event N`` (or that it had been sent before), and for a keyed event how many waiting instances woke."""
    if result.get("duplicate"):
        _line(f"Event {result.get('signal_id')} was sent before with this event id; not sent again")
    elif key is not None:
        _line(f"Sent event {result.get('signal_id')}; woke {result.get('woken') or 0} waiting instance(s)")
    else:
        _line(f"Sent event {result.get('signal_id')}")


def print_cancelled(result: dict[str, Any]) -> None:
    """``Cancelled ID``."""
    _line("Cancelled ", Text(str(result.get("id", ""))))


# -- listings ----------------------------------------------------------------------------------------------------


def print_workflows(rows: list[dict[str, Any]]) -> None:
    """The ``pst wf ls`` table."""
    if not rows:
        note("no workflows deployed yet: pst deploy FILE")
        return
    table = _table("NAME", "LATEST", "VERSIONS", "UPDATED")
    for row in rows:
        versions = row.get("versions")
        count = len(versions) if isinstance(versions, list) else versions
        table.add_row(
            _cell(row.get("name")),
            _cell(row.get("latest_version")),
            _cell(count),
            _cell(format_time(row.get("updated_at") or row.get("created_at"))),
        )
    stdout().print(table)


def print_instances(items: list[dict[str, Any]], next_offset: Any = None) -> None:
    """The ``pst i ls`` table, newest first as the server returns it."""
    if not items:
        note("no instances")
        return
    table = _table("ID", "WORKFLOW", "VERSION", "STATUS", "NODE", "CREATED")
    for row in items:
        table.add_row(
            _cell(row.get("id")),
            _cell(row.get("workflow")),
            _cell(row.get("version")),
            status_text(row.get("status")),
            _cell(row.get("current_node")),
            _cell(format_time(row.get("created_at"))),
        )
    stdout().print(table)
    if next_offset is not None:
        note(f"more instances: pst i ls --offset {next_offset}")


def workers_cell(row: dict[str, Any], live_workers: int) -> str:
    """``2 of 2`` live workers have the node type, or ``server only`` when no worker has it."""
    workers = row.get("workers") or []
    count = len(workers) if isinstance(workers, list) else int(workers)
    if count == 0:
        return "server only" if row.get("on_server", True) else "nowhere"
    text = f"{count} of {max(live_workers, count)}"
    return text if row.get("on_server", True) else f"{text}, not on the server"


def print_plugins(rows: list[dict[str, Any]]) -> None:
    """The ``pst plugins ls`` table: node types, the package and version providing each, and worker coverage."""
    live = {worker for row in rows if isinstance(row.get("workers"), list) for worker in row["workers"]}
    table = _table("NAME", "PACKAGE", "VERSION", "DESCRIPTION", "WORKERS")
    for row in sorted(rows, key=lambda row: str(row.get("name"))):
        table.add_row(
            _cell(row.get("name")),
            _cell(row.get("package") or "-"),
            _cell(row.get("version") or "-"),
            _cell(row.get("description")),
            _cell(workers_cell(row, len(live))),
        )
    stdout().print(table)


def print_outbox(rows: list[dict[str, Any]]) -> None:
    """The ``pst outbox ls`` table: emails parked because no SMTP server is configured."""
    if not rows:
        note("the outbox is empty")
        return
    table = _table("ID", "TO", "SUBJECT", "INSTANCE", "CREATED")
    for row in rows:
        message = row.get("message") if isinstance(row.get("message"), dict) else {}
        to = message.get("to")
        table.add_row(
            _cell(row.get("id")),
            _cell(", ".join(map(str, to)) if isinstance(to, list) else to),
            _cell(message.get("subject")),
            _cell(message.get("instance_id")),
            _cell(format_time(row.get("created_at"))),
        )
    stdout().print(table)


# -- one instance ------------------------------------------------------------------------------------------------


MAX_STEPS_SHOWN = 50
"""``pst status`` lists the latest attempts only, beyond this many (``--json`` has them all)."""


def print_instance(row: dict[str, Any]) -> None:
    """``pst status``: the header, the tree of runs, the active branches, the state, children and steps."""
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("Instance", _cell(row.get("id")))
    header.add_row("Workflow", _cell(f"{row.get('workflow')}@{row.get('version')}"))
    header.add_row("Status", status_text(row.get("status")))
    if row.get("parent_id"):
        header.add_row("Parent", _cell(f"{row['parent_id']} (run {row.get('parent_run_key')})"))
    if row.get("current_node") and row.get("status") in ("pending", "running", "waiting"):
        node = f"{row['current_node']} ({row.get('node_type')}), attempt {row.get('attempt') or 1}"
        header.add_row("Node", _cell(node))
    if row.get("wait_reason"):
        header.add_row("Waiting", _cell(row["wait_reason"]))
    if row.get("error"):
        header.add_row("Error", Text(error_message(row["error"]), style="red"))
    if row.get("deadline_at") and row.get("status") in ("pending", "running", "waiting"):
        header.add_row("Deadline", _cell(format_time(row["deadline_at"])))
    header.add_row("Created", _cell(format_time(row.get("created_at"))))
    if row.get("finished_at"):
        header.add_row("Finished", _cell(format_time(row["finished_at"])))
    stdout().print(header)
    branches = {branch.get("run_key"): branch for branch in row.get("branches") or [] if isinstance(branch, dict)}
    if isinstance(row.get("tree"), dict):
        stdout().print(Text("Runs", style="bold"))
        tree = Tree(_run_label(row["tree"], branches), guide_style="dim")
        _add_runs(tree, row["tree"], branches)
        stdout().print(tree)
    if branches:
        stdout().print(Text("Active branches", style="bold"))
        table = _table("RUN", "TYPE", "STATUS", "ATTEMPT", "WAITING FOR")
        for branch in branches.values():
            table.add_row(
                _cell(branch.get("run_key")),
                _cell(branch.get("node_type")),
                status_text(branch.get("status")),
                _cell(branch.get("attempt")),
                _cell(branch.get("waiting_for")),
            )
        stdout().print(table)
    _print_state(row.get("state"))
    children = row.get("children") or []
    if children:
        stdout().print(Text("Child instances", style="bold"))
        table = _table("ID", "WORKFLOW", "STATUS", "RUN")
        for child in children:
            table.add_row(
                _cell(child.get("id")),
                _cell(f"{child.get('workflow')}@{child.get('version')}"),
                status_text(child.get("status")),
                _cell(child.get("parent_run_key")),
            )
        stdout().print(table)
    _print_steps(row.get("steps") or [], row.get("steps_total"))


def _print_steps(steps: list[dict[str, Any]], total: Any) -> None:
    if not steps:
        return
    stdout().print(Text("Steps", style="bold"))
    total = total if isinstance(total, int) and total >= len(steps) else len(steps)
    if total > MAX_STEPS_SHOWN:
        note(f"the latest {MAX_STEPS_SHOWN} of {total} step attempts (pst status --json has more)")
        steps = steps[-MAX_STEPS_SHOWN:]
    table = _table("RUN", "ATTEMPT", "STATUS", "DURATION", "ERROR")
    for step in steps:
        table.add_row(
            _cell(step.get("run_key") or step.get("node_id")),
            _cell(step.get("attempt")),
            status_text(step.get("status")),
            _cell(format_duration(step.get("duration_ms"))),
            Text(error_message(step.get("error")), style="red"),
        )
    stdout().print(table)


def _add_runs(tree: Tree, node: dict[str, Any], branches: dict[Any, dict[str, Any]]) -> None:
    for child in node.get("children") or []:
        if isinstance(child, dict):
            _add_runs(tree.add(_run_label(child, branches)), child, branches)


def _run_label(node: dict[str, Any], branches: dict[Any, dict[str, Any]]) -> Text:
    label = Text()
    if node.get("role"):
        label.append(f"{node['role']}: ", style="dim")
    label.append(str(node.get("node_id")), style="bold")
    label.append(f"  {node.get('type')}", style="dim")
    if node.get("status"):
        label.append("  ")
        label.append_text(status_text(node["status"]))
    items = node.get("items")
    if isinstance(items, dict) and items.get("total") is not None:
        label.append(
            f"  items {items.get('completed', 0)}/{items['total']} completed, {items.get('failed', 0)} failed, "
            f"{items.get('running', 0)} running"
        )
    branch = branches.get(node.get("run_key"))
    if branch and branch.get("waiting_for"):
        label.append(f"  {branch['waiting_for']}", style="magenta")
    return label


def _print_state(state: Any) -> None:
    stdout().print(Text("State", style="bold"))
    stdout().print(JSON.from_data(state, ensure_ascii=False))


def print_outcome(row: dict[str, Any]) -> None:
    """After ``run --watch``: the final status, the error if any, and the final state."""
    status = row.get("status")
    line = Text.assemble("Instance ", str(row.get("id")), " ", status_text(status))
    if row.get("error"):
        line.append(f": {error_message(row['error'])}", style="red")
    stdout().print(line, soft_wrap=True)
    _print_state(row.get("state"))


@dataclass
class _LoopTally:
    """What the watch has seen of one node's loop items."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    failures_shown: int = 0
    printed_at: datetime | None = None
    unprinted: bool = False

    def line(self, node: str) -> Text:
        running = max(0, self.started - self.completed - self.failed)
        return Text.assemble(
            (node, "bold"), f"  items: {self.completed} completed, {self.failed} failed, {running} running"
        )


class EventPrinter:
    """Prints a watched instance's events as lines: each step as it starts and ends, retries, sleeps and waits.

    Steps of loop items are counted per node and summarised (at most one line per node a second, and a last one
    at the end), so a loop over 10,000 items prints a handful of lines rather than 10,000.
    """

    LOOP_SUMMARY_SECONDS = 1.0
    MAX_ITEM_FAILURES_SHOWN = 5

    def __init__(self) -> None:
        self._started: dict[str, datetime] = {}
        self._loops: dict[str, _LoopTally] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        """Print one event (``{"id", "kind", "node_id", "data", "at"}``)."""
        kind = str(event.get("kind"))
        node = str(event.get("node_id") or "")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        at = _parse_time(event.get("at"))
        if data.get("run") and kind.startswith("step_"):
            for text in self._loop_item(kind, node, data, at):
                self._print(at, text)
            return
        if kind.startswith("instance_") and kind != "instance_created":
            for loop_node, tally in self._loops.items():
                if tally.unprinted:
                    self._print(at, tally.line(loop_node))
        if kind != "step_started" and kind.startswith("step_") and data.get("started_at"):
            # a step that ended soon after it started: one event carries both
            started = _parse_time(data["started_at"])
            self._print(started, self._describe("step_started", node, data, started) or Text(""))
        text = self._describe(kind, node, data, at)
        if text is not None:
            self._print(at, text)

    def _print(self, at: datetime | None, text: Text) -> None:
        when = at.astimezone().strftime("%H:%M:%S") if at else "        "
        stdout().print(Text.assemble((when, "dim"), "  ", text), soft_wrap=True)

    def _loop_item(self, kind: str, node: str, data: dict[str, Any], at: datetime | None) -> list[Text]:
        tally = self._loops.get(node)
        lines: list[Text] = []
        if tally is None:
            tally = self._loops[node] = _LoopTally(printed_at=at)
            lines.append(Text.assemble((node, "bold"), "  started its loop items"))
        first_start = data.get("attempt", 1) == 1 and not data.get("resumed")
        if first_start and (kind == "step_started" or (kind != "step_cancelled" and data.get("started_at"))):
            tally.started += 1
        if kind == "step_completed":
            tally.completed += 1
        elif kind == "step_failed" and data.get("retry_in") is None:
            tally.failed += 1
            if tally.failures_shown < self.MAX_ITEM_FAILURES_SHOWN:
                tally.failures_shown += 1
                text = Text.assemble((str(data["run"]), "bold"), "  ", ("failed", "red"))
                message = error_message(data.get("error"))
                if message:
                    text.append(f": {message}")
                lines.append(text)
        tally.unprinted = True
        due = tally.printed_at is None or (
            at is not None and (at - tally.printed_at).total_seconds() >= self.LOOP_SUMMARY_SECONDS
        )
        if due:
            lines.append(tally.line(node))
            tally.printed_at, tally.unprinted = at, False
        return lines

    def _describe(self, kind: str, node: str, data: dict[str, Any], at: datetime | None) -> Text | None:
        if kind == "instance_created":
            workflow = f" of {data['workflow']} version {data.get('version')}" if data.get("workflow") else ""
            return Text(f"instance created{workflow}", style="dim")
        if kind == "step_started":
            if data.get("resumed"):  # woken up after a suspension: the step's time runs from its first start
                return Text.assemble((node, "bold"), "  woke up")
            started = _parse_time(data.get("started_at")) or at
            if started is not None:
                self._started[node] = started
            return Text.assemble((node, "bold"), f"  started (attempt {data.get('attempt', 1)})")
        if kind == "step_completed":
            return Text.assemble((node, "bold"), "  ", ("completed", "green"), self._took(node, at, "in"))
        if kind == "step_suspended":
            if data.get("event") == "postgit.child":
                return Text.assemble((node, "bold"), "  ", ("waiting for its child instance", "magenta"))
            if data.get("event"):
                key = f" with key {data['key']!r}" if data.get("key") is not None else ""
                until = f" until {format_time(data['until'])}" if data.get("until") else ""
                return Text.assemble(
                    (node, "bold"), "  ", (f"waiting for event {data['event']!r}{key}", "magenta"), until
                )
            return Text.assemble((node, "bold"), "  ", ("sleeping until ", "magenta"), format_time(data.get("until")))
        if kind == "step_cancelled":
            return Text.assemble((node, "bold"), "  ", ("cancelled", "yellow"))
        if kind == "step_failed":
            message = error_message(data.get("error"))
            failed = (f"failed (attempt {data.get('attempt', '?')})", "red")
            text = Text.assemble((node, "bold"), "  ", failed, self._took(node, at, "after"))
            if message:
                text.append(f": {message}")
            if data.get("retry_in") is not None:
                text.append(f"; retrying in {float(data['retry_in']):.1f}s", style="yellow")
            return text
        if kind in ("instance_completed", "instance_failed", "instance_cancelled"):
            status = kind.removeprefix("instance_")
            return Text.assemble("instance ", status_text(status))
        return Text(f"{kind} {node}".strip(), style="dim")

    def _took(self, node: str, at: datetime | None, word: str) -> str:
        started = self._started.pop(node, None)
        if started is None or at is None:
            return ""
        return f" {word} {format_duration((at - started).total_seconds() * 1000)}"


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
