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
    "interrupted": "yellow",
}
ACTIVE = ("pending", "running", "waiting")


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


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr: something the user should know, which did not stop the command."""
    line = " ".join(message.split())
    stderr().print(Text("warning: ", style="bold yellow") + Text(line), soft_wrap=True)


def warn_all(result: Any) -> None:
    """Each line of a response's ``warnings`` (deploy, start), as ``warning: ...`` on stderr."""
    warnings = result.get("warnings") if isinstance(result, dict) else None
    for warning in warnings if isinstance(warnings, list) else []:
        warn(str(warning))


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


def print_batch_outcome(outcome: dict[str, Any]) -> None:
    """How many lines of a JSONL file started, on stdout; each line that did not, with why, on stderr."""
    counts = f"{outcome['started']:,} started"
    if outcome["existing"]:
        counts += f", {outcome['existing']:,} already started (idempotency key used before)"
    counts += f", {outcome['failed']:,} failed"
    _line(f"{outcome['file']}: {len(outcome['results']):,} lines: {counts}")
    for result in outcome["results"]:
        if result["error"] is not None:
            stderr().print(Text(f"line {result['line']}: {result['error']}"), soft_wrap=True)


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


def print_paused(result: dict[str, Any]) -> None:
    """``Paused ID`` or ``Resumed ID``, with its status."""
    verb = "Paused" if result.get("paused") else "Resumed"
    _line(f"{verb} ", Text(str(result.get("id", ""))), f" ({result.get('status')})")


def print_retried(result: dict[str, Any]) -> None:
    """``Retried ID`` with the version it runs and what re-runs."""
    _line(
        "Retried ",
        Text(str(result.get("id", ""))),
        f" on version {result.get('version')} ({result.get('steps_retired')} step attempts set aside)",
    )


def print_bulk(result: dict[str, Any]) -> None:
    """What a bulk action did on stdout; each instance it skipped, with why, on stderr."""
    done = {"retry": "retried", "cancel": "cancelled", "pause": "paused", "resume": "resumed"}[result["action"]]
    line = f"{result['done']:,} of {result['matched']:,} instances {done}"
    if result.get("skipped"):
        line += f", {result['skipped']:,} skipped (they changed meanwhile)"
    _line(line)
    for error in result.get("errors") or ():
        warn(f"{error['id']}: {error['error']}")


def print_deleted(instance_id: str) -> None:
    """``Deleted ID``."""
    _line("Deleted ", Text(instance_id))


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


def print_check(report: dict[str, Any], file_name: str) -> None:
    """The ``pst wf check`` report: one line per instance replayed, then the verdict."""
    workflow, version = report.get("workflow"), report.get("version")
    items = report.get("instances") or []
    if not items:
        note(f"no finished instances of {workflow} version {version} to replay {file_name} over")
        return
    for item in items:
        status = Text(f"{item.get('status')}", style=STATUS_STYLES.get(str(item.get("status")), ""))
        if item.get("diverged"):
            where = f"node '{item.get('node_id')}'"
            if item.get("run") and item.get("run") != item.get("node_id"):
                where += f" (run '{item.get('run')}')"
            stdout().print(
                Text("diverges  ", style="bold red")
                + Text(f"{item.get('id')} (")
                + status
                + Text(f"): {where} ")
                + Text(str(item.get("reason"))),
                soft_wrap=True,
            )
        else:
            stdout().print(Text("same      ", style="green") + Text(f"{item.get('id')} (") + status + Text(")"))
    diverged, checked = report.get("diverged", 0), report.get("checked", len(items))
    verdict = f"{diverged} of {checked} instances of {workflow} version {version} would diverge under {file_name}"
    if diverged:
        stdout().print(Text(verdict, style="bold red"), soft_wrap=True)
    else:
        stdout().print(Text(f"{file_name} replays all {checked} instances of {workflow} version {version} the same"))


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
            _status_cell(row),
            _cell(row.get("current_node")),
            _cell(format_time(row.get("created_at"))),
        )
    stdout().print(table)
    if next_offset is not None:
        note(f"more instances: pst i ls --offset {next_offset}")


def _status_cell(row: dict[str, Any]) -> Text:
    text = status_text(row.get("status"))
    if row.get("paused_at"):
        text.append(" (paused)", style="yellow")
    return text


def workers_cell(row: dict[str, Any], live_workers: int) -> str:
    """``2 of 2`` live workers have the node type, or ``server only`` when no worker has it."""
    workers = row.get("workers") or []
    count = len(workers) if isinstance(workers, list) else int(workers)
    if count == 0:
        if row.get("builtin"):
            return "no live worker"
        return "server only" if row.get("on_server", True) else "nowhere"
    text = f"{count} of {max(live_workers, count)}"
    return text if row.get("on_server", True) else f"{text}, not on the server"


def queues_cell(queues: Any) -> str:
    """The queues a worker serves: ``every queue`` (null), or their names."""
    if queues is None:
        return "every queue"
    return ", ".join(str(queue) for queue in queues) if isinstance(queues, list) else str(queues)


def plugin_queues_cell(row: dict[str, Any]) -> str:
    """The queues served by the live workers that have a node type: ``every queue`` when one serves every queue."""
    by_worker = row.get("worker_queues")
    if not isinstance(by_worker, dict) or not by_worker:
        return "-"
    if any(queues is None for queues in by_worker.values()):
        return "every queue"
    return ", ".join(sorted({str(q) for queues in by_worker.values() if isinstance(queues, list) for q in queues}))


def print_workers(rows: list[dict[str, Any]]) -> None:
    """The ``pst workers ls`` table: each live worker, its host, the queues it serves and its node types."""
    if not rows:
        note("no live worker: start one with pst worker")
        return
    table = _table("ID", "HOST", "QUEUES", "NODE TYPES", "HEARTBEAT")
    for row in sorted(rows, key=lambda row: str(row.get("id"))):
        types = row.get("node_types")
        heartbeat = row.get("seconds_since_heartbeat")
        table.add_row(
            _cell(row.get("id")),
            _cell(f"{row.get('host')} (pid {row.get('pid')})"),
            _cell(queues_cell(row.get("queues"))),
            _cell(", ".join(str(t) for t in types) if isinstance(types, list) else types),
            _cell(f"{float(heartbeat):.0f}s ago" if isinstance(heartbeat, int | float) else heartbeat),
        )
    stdout().print(table)


def print_plugins(rows: list[dict[str, Any]]) -> None:
    """The ``pst plugins ls`` table: node types, the package and version providing each, and worker coverage."""
    live = {worker for row in rows if isinstance(row.get("workers"), list) for worker in row["workers"]}
    table = _table("NAME", "PACKAGE", "VERSION", "DESCRIPTION", "WORKERS", "QUEUES")
    ordered = sorted(rows, key=lambda row: str(row.get("name")))
    for row in ordered:
        package = row.get("package") or "-"
        table.add_row(
            _cell(row.get("name")),
            _cell(f"{package} (built in)" if row.get("builtin") else package),
            _cell(version_cell(row)),
            _cell(row.get("description")),
            _cell(workers_cell(row, len(live))),
            _cell(plugin_queues_cell(row)),
        )
    stdout().print(table)
    for row in ordered:
        warn_all(row)


def version_cell(row: dict[str, Any]) -> str:
    """The server's version of the node type's package, then each other version live workers run."""
    version = str(row.get("version") or "-")
    versions = row.get("worker_versions")
    others = sorted(
        {
            f"{found.get('package')} {found.get('version')}"
            if found.get("package") != row.get("package")
            else str(found.get("version"))
            for found in (versions.values() if isinstance(versions, dict) else [])
            if isinstance(found, dict)
            and (found.get("package"), found.get("version")) != (row.get("package"), row.get("version"))
        }
    )
    if not others:
        return version
    return (
        f"{version} (workers: {', '.join(others)})" if row.get("on_server", True) else f"workers: {', '.join(others)}"
    )


def print_outbox(rows: list[dict[str, Any]], *, with_delivery: bool = False) -> None:
    """The ``pst outbox ls`` table: emails parked because no SMTP server is configured (and, asked, those sent)."""
    if not rows:
        note("no messages in the outbox" if with_delivery else "the outbox is empty")
        return
    columns = ["ID", "TO", "SUBJECT", "INSTANCE", "CREATED"]
    table = _table(*columns, *(["SENT"] if with_delivery else []))
    for row in rows:
        message = row.get("message") if isinstance(row.get("message"), dict) else {}
        to = message.get("to")
        cells = [
            _cell(row.get("id")),
            _cell(", ".join(map(str, to)) if isinstance(to, list) else to),
            _cell(message.get("subject")),
            _cell(message.get("instance_id")),
            _cell(format_time(row.get("created_at"))),
        ]
        if with_delivery:
            sent = f"{format_time(row['sent_at'])} via {row.get('sent_via')}" if row.get("sent_at") else "not yet"
            cells.append(_cell(sent))
        table.add_row(*cells)
    stdout().print(table)


def print_outbox_sent(result: dict[str, Any]) -> None:
    """``Sent message N ...``, or that it had been sent before and was not sent again."""
    via = f" through {result.get('sent_via')}" if result.get("sent_via") else ""
    message_id = f" ({result['message_id']})" if result.get("message_id") else ""
    if result.get("status") == "already_sent":
        _line(f"Message {result['id']}{message_id} was sent {format_time(result.get('sent_at'))}{via}; not sent again")
    else:
        _line(f"Sent message {result['id']}{message_id}{via}")


def print_outbox_batch(outcome: dict[str, Any]) -> None:
    """How many parked messages were sent, on stdout; each that was not, with why, on stderr."""
    if not outcome["results"]:
        note("the outbox is empty: nothing to send")
        return
    counts = f"Sent {outcome['sent']:,} message{'s' if outcome['sent'] != 1 else ''}"
    if outcome["already_sent"]:
        counts += f", {outcome['already_sent']:,} sent before"
    counts += f", {outcome['failed'] + outcome['busy']:,} not sent"
    _line(counts)
    for result in outcome["results"]:
        if result.get("status") in ("failed", "busy"):
            stderr().print(Text(f"message {result['id']}: {result.get('error')}"), soft_wrap=True)


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
    if row.get("paused_at"):
        reason = f": {row['pause_reason']}" if row.get("pause_reason") else ""
        header.add_row("Paused", Text(f"since {format_time(row['paused_at'])}{reason} (pst i resume)", style="yellow"))
    if row.get("retries"):
        header.add_row("Retried", _cell(f"{row['retries']} time(s)"))
    if row.get("parent_id"):
        header.add_row("Parent", _cell(f"{row['parent_id']} (run {row.get('parent_run_key')})"))
    active = row.get("status") in ACTIVE
    if row.get("current_node") and active:
        node_type = f" ({row['node_type']})" if row.get("node_type") else ""
        header.add_row("Node", _cell(f"{row['current_node']}{node_type}, attempt {row.get('attempt') or 1}"))
    if row.get("wait_reason") and active:
        header.add_row("Waiting", _cell(row["wait_reason"]))
    if row.get("error"):
        header.add_row("Error", Text(_instance_error(row["error"], row.get("tree")), style="red"))
    if row.get("interruptions"):
        header.add_row("Interrupted", Text(_interruptions(row["interruptions"]), style="yellow"))
    if row.get("deadline_at") and active:
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
    _print_step_logs(row.get("steps") or [])


def _instance_error(error: Any, tree: Any) -> str:
    """An instance's error message, after the node it failed at and that node's type (from the tree of runs)."""
    message = error_message(error)
    node_id = error.get("node_id") if isinstance(error, dict) else None
    if not node_id:
        return message
    node_type = _node_type(tree, node_id)
    return f"node '{node_id}'{f' ({node_type})' if node_type else ''}: {message}"


def _node_type(tree: Any, node_id: str) -> str | None:
    if not isinstance(tree, dict):
        return None
    if tree.get("node_id") == node_id:
        return tree.get("type")
    for child in tree.get("children") or []:
        if (found := _node_type(child, node_id)) is not None:
            return found
    return None


def _interruptions(interruptions: list[dict[str, Any]]) -> str:
    """How often the instance's worker stopped while it held it, and the latest time."""
    last = interruptions[-1]
    times = f"{len(interruptions)} times; the latest: " if len(interruptions) > 1 else ""
    expired = last.get("lease_expired_at")
    expired = f" (its lease expired {format_time(expired)})" if expired else ""
    return (
        f"{times}worker {last.get('worker')} stopped while it ran this instance{expired}; "
        f"worker {last.get('taken_over_by')} took it over"
    )


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


def _print_step_logs(steps: list[dict[str, Any]]) -> None:
    """What each attempt's handler logged (present only when asked for: ``pst status --logs``)."""
    logged = [step for step in steps if isinstance(step.get("logs"), str)]
    if not logged:
        return
    stdout().print(Text("Logs", style="bold"))
    for step in logged:
        stdout().print(Text(f"{step.get('run_key') or step.get('node_id')} attempt {step.get('attempt')}", style="dim"))
        stdout().print(Text(step["logs"]), soft_wrap=True)


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
        if kind not in ("step_started", "step_interrupted") and kind.startswith("step_") and data.get("started_at"):
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
        if kind == "step_interrupted":
            tally.started -= 1 if first_start else 0  # it starts again
        elif first_start and (kind == "step_started" or (kind != "step_cancelled" and data.get("started_at"))):
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
        if kind in ("step_interrupted", "lease_expired"):
            return self._interruption(kind, node, data)
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
        return _operation(kind, node, data) or Text(f"{kind} {node}".strip(), style="dim")

    def _interruption(self, kind: str, node: str, data: dict[str, Any]) -> Text:
        if kind == "lease_expired":
            return Text.assemble(
                (f"worker {data.get('worker')} stopped", "yellow"),
                f"; worker {data.get('taken_over_by')} took the instance over",
            )
        self._started.pop(node, None)
        interrupted = (f"interrupted (attempt {data.get('attempt', '?')})", "yellow")
        return Text.assemble((node, "bold"), "  ", interrupted, ": its worker stopped; it is run again")

    def _took(self, node: str, at: datetime | None, word: str) -> str:
        started = self._started.pop(node, None)
        if started is None or at is None:
            return ""
        return f" {word} {format_duration((at - started).total_seconds() * 1000)}"


def _operation(kind: str, node: str, data: dict[str, Any]) -> Text | None:
    """The line of an operation's event: a worker lost under a step, a pause, a resume, a retry, a compaction."""
    if kind == "worker_lost":
        after = "; the attempt counts as failed" + ("" if data.get("retried") else ", and it was the last")
        attempt = data.get("attempt", "?")
        died = (f"its worker {data.get('worker')} died while running it (attempt {attempt})", "red")
        return Text.assemble((node, "bold"), "  ", died, after)
    if kind in ("instance_paused", "instance_resumed"):
        reason = f": {data['reason']}" if data.get("reason") and data["reason"] != "paused" else ""
        return Text.assemble("instance ", (kind.removeprefix("instance_"), "yellow"), reason)
    if kind == "events_compacted":
        counted = data.get("events")
        return Text(f"{counted} earlier events compacted: the log keeps an instance's first and latest", style="dim")
    if kind == "instance_retried":
        start = f"from node {data['from']}" if data.get("from") else "from where it failed"
        return Text.assemble("instance ", ("retried", "yellow"), f" {start}, on version {data.get('version')}")
    return None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- schedules ---------------------------------------------------------------------------------------------------


def print_schedules(rows: list[dict[str, Any]]) -> None:
    """The ``pst schedule ls`` table: each schedule with its next fire time."""
    if not rows:
        note("no schedules: pst schedule create NAME --workflow W --cron EXPR")
        return
    table = _table("NAME", "WORKFLOW", "CRON", "TIMEZONE", "OVERLAP", "NEXT FIRE", "LAST INSTANCE")
    for row in rows:
        last = row.get("last_instance_id")
        table.add_row(
            _cell(row.get("name")),
            _cell(row.get("workflow")),
            _cell(row.get("cron")),
            _cell(row.get("timezone")),
            _cell(row.get("overlap")),
            Text("paused", style="yellow") if row.get("paused") else _cell(format_time(row.get("next_fire_at"))),
            _cell(f"{last} ({row.get('last_instance_status') or 'deleted'})" if last else ""),
        )
    stdout().print(table)


def print_schedule(row: dict[str, Any]) -> None:
    """``pst schedule show``: the schedule, its next fire times and its latest fires."""
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("Schedule", _cell(row.get("name")))
    header.add_row("Workflow", _cell(row.get("workflow")))
    header.add_row("Cron", _cell(f"{row.get('cron')} ({row.get('timezone')})"))
    header.add_row("Overlap", _cell(row.get("overlap")))
    header.add_row("Catch-up window", _cell(format_duration((row.get("catchup_window") or 0) * 1000)))
    header.add_row("Input", _cell(json.dumps(row.get("input"), ensure_ascii=False)))
    header.add_row("Status", Text("paused", style="yellow") if row.get("paused") else Text("active", style="green"))
    if row.get("last_instance_id"):
        last = f"{row['last_instance_id']} ({row.get('last_instance_status') or 'deleted'})"
        header.add_row("Last instance", _cell(last))
    if row.get("buffered"):
        header.add_row("Buffered", _cell(", ".join(format_time(moment) for moment in row["buffered"])))
    stdout().print(header)
    upcoming = row.get("upcoming") or []
    if upcoming:
        stdout().print(Text("Next fire times", style="bold"))
        for moment in upcoming:
            stdout().print(Text(f"  {format_time(moment)}"))
    fires = row.get("fires") or []
    if fires:
        stdout().print(Text("Latest fires", style="bold"))
        table = _table("NOMINAL TIME", "KIND", "OUTCOME", "INSTANCE", "DETAIL")
        for fire in fires:
            when = format_time(fire.get("nominal_at"))
            if (fire.get("fires") or 1) > 1:
                when += f" .. {format_time(fire.get('last_nominal_at'))} ({fire['fires']} times)"
            table.add_row(
                _cell(when),
                _cell(fire.get("kind")),
                _cell(fire.get("outcome")),
                _cell(fire.get("instance_id")),
                _cell(fire.get("detail")),
            )
        stdout().print(table)
