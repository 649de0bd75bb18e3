"""``pst i ...``: workflow instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption
from postgit_cli.errors import CliError, Conflict, UsageError
from postgit_cli.times import moment


class Status(StrEnum):
    """Instance statuses (the contract's names)."""

    pending = "pending"
    running = "running"
    waiting = "waiting"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


app = typer.Typer(help="Workflow instances.", no_args_is_help=True)


@app.command("ls")
def list_instances(
    status: Annotated[
        Status | None, typer.Option("--status", help="Only instances with this status.", show_default=False)
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", metavar="NAME", help="Only instances of this workflow.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many instances.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many (for paging).")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List instances, newest first."""
    with Client() as client:
        page = client.list_page(status=status.value if status else None, workflow=workflow, limit=limit, offset=offset)
    if json_output:
        output.print_json(page["items"])
    else:
        output.print_instances(page["items"], page.get("next_offset"))


IdArgument = Annotated[
    str | None,
    typer.Argument(metavar="ID", help="The instance id (or --workflow and --status for many).", show_default=False),
]
WorkflowFilterOption = Annotated[
    str | None,
    typer.Option("--workflow", metavar="W", help="Act on every instance of W in --status.", show_default=False),
]
StatusFilterOption = Annotated[
    Status | None, typer.Option("--status", help="With --workflow: the instances' status.", show_default=False)
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="T",
        help="With --workflow: only instances created at or after T (ISO 8601).",
        show_default=False,
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="With --workflow: do not ask for confirmation.")]


@app.command("cancel")
def cancel(
    instance_id: IdArgument = None,
    workflow: WorkflowFilterOption = None,
    status: StatusFilterOption = None,
    since: SinceOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Cancel an instance that has not finished (or, with --workflow and --status, every such instance)."""

    def cancel_one(client: Client, instance_id: str) -> dict[str, Any]:
        try:
            return client.cancel(instance_id)
        except Conflict as exc:
            current = client.get(instance_id).get("status")
            raise Conflict(f"instance {instance_id} is already {current}", http_status=exc.http_status) from None

    _act("cancel", instance_id, Filter(workflow, status, since, yes), json_output, cancel_one, output.print_cancelled)


@app.command("pause")
def pause(
    instance_id: IdArgument = None,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why, shown while it is paused.", show_default=False)
    ] = None,
    workflow: WorkflowFilterOption = None,
    status: StatusFilterOption = None,
    since: SinceOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Pause an unfinished instance: no worker takes it until it is resumed; a step running now finishes."""
    _act(
        "pause",
        instance_id,
        Filter(workflow, status, since, yes),
        json_output,
        lambda client, instance_id: client.pause(instance_id, reason),
        output.print_paused,
    )


@app.command("resume")
def resume(
    instance_id: IdArgument = None,
    workflow: WorkflowFilterOption = None,
    status: StatusFilterOption = None,
    since: SinceOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Resume a paused instance: it runs again as soon as it is due."""
    _act("resume", instance_id, Filter(workflow, status, since, yes), json_output, Client.resume, output.print_paused)


@app.command("retry")
def retry(
    instance_id: IdArgument = None,
    from_node: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="NODE",
            help="Re-run from NODE (it and what comes after it); default: where it failed.",
            show_default=False,
        ),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Run on the workflow's latest version (default: its own).")
    ] = False,
    workflow: WorkflowFilterOption = None,
    status: StatusFilterOption = None,
    since: SinceOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Run a failed or cancelled instance again from where it failed; the steps completed before are kept."""
    if workflow is not None and from_node is not None:
        raise UsageError("--from names a node of one instance: it cannot go with --workflow")
    _act(
        "retry",
        instance_id,
        Filter(workflow, status, since, yes),
        json_output,
        lambda client, instance_id: client.retry(instance_id, from_node=from_node, latest=latest),
        output.print_retried,
        latest=latest,
    )


@dataclass(frozen=True)
class Filter:
    """The options that pick many instances instead of one ID: --workflow, --status, --since, --yes."""

    workflow: str | None
    status: Status | None
    since: str | None
    yes: bool


def _act(
    action: str,
    instance_id: str | None,
    many: Filter,
    json_output: bool,
    act_on_one: Callable[[Client, str], dict[str, Any]],
    print_one: Callable[[dict[str, Any]], None],
    *,
    latest: bool = False,
) -> None:
    """Do ``action`` to the instance ``instance_id``, or to every instance ``many`` picks once confirmed."""
    if instance_id is None:
        _bulk(action, many, json_output, latest=latest)
        return
    if many.workflow is not None or many.status is not None or many.since is not None:
        raise UsageError("give an instance ID, or --workflow and --status: not both")
    with Client() as client:
        result = act_on_one(client, instance_id)
    if json_output:
        output.print_json(result)
    else:
        print_one(result)


def _bulk(action: str, many: Filter, json_output: bool, *, latest: bool) -> None:
    """Do ``action`` to every instance the filter matches, once confirmed."""
    workflow, status, since = many.workflow, many.status, many.since
    if workflow is None or status is None:
        raise UsageError("give an instance ID, or --workflow W and --status S to act on many")
    since_time = moment("--since", since) if since is not None else None
    with Client() as client:
        counted = client.bulk(action, workflow=workflow, status=status.value, since=since_time, dry_run=True)
        matched = counted["matched"]
        scope = f"{workflow}'s {status.value} instances" + (f" created since {since_time}" if since_time else "")
        if matched == 0:
            output.note(f"no instances to {action}: none of {scope}")
            if json_output:
                output.print_json(counted)
            return
        output.note(
            f"{action} will touch {matched:,} of {scope}" + (" (the first 10,000)" if matched >= 10_000 else "")
        )
        if not many.yes and not _confirmed(f"{action} {matched:,} instances?"):
            raise CliError("not confirmed: nothing was done (--yes skips the question)")
        result = client.bulk(action, workflow=workflow, status=status.value, since=since_time, latest=latest)
    if json_output:
        output.print_json(result)
    else:
        output.print_bulk(result)


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # no answer (stdin closed)
        return False


@app.command("rm")
def remove(
    instance_id: Annotated[str, typer.Argument(metavar="ID", help="The instance id.", show_default=False)],
) -> None:
    """Delete a finished instance with its steps and events."""
    with Client() as client:
        client.delete(instance_id)
    output.print_deleted(instance_id)
