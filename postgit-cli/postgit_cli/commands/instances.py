"""``pst i ...``: workflow instances."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

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
    if _bulk("cancel", instance_id, workflow, status, since, yes, json_output):
        return
    assert instance_id is not None
    with Client() as client:
        try:
            result = client.cancel(instance_id)
        except Conflict as exc:
            current = client.get(instance_id).get("status")
            raise Conflict(f"instance {instance_id} is already {current}", http_status=exc.http_status) from None
    if json_output:
        output.print_json(result)
    else:
        output.print_cancelled(result)


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
    if _bulk("pause", instance_id, workflow, status, since, yes, json_output):
        return
    assert instance_id is not None
    with Client() as client:
        result = client.pause(instance_id, reason)
    if json_output:
        output.print_json(result)
    else:
        output.print_paused(result)


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
    if _bulk("resume", instance_id, workflow, status, since, yes, json_output):
        return
    assert instance_id is not None
    with Client() as client:
        result = client.resume(instance_id)
    if json_output:
        output.print_json(result)
    else:
        output.print_paused(result)


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
    if _bulk("retry", instance_id, workflow, status, since, yes, json_output, latest=latest):
        return
    assert instance_id is not None
    with Client() as client:
        result = client.retry(instance_id, from_node=from_node, latest=latest)
    if json_output:
        output.print_json(result)
    else:
        output.print_retried(result)


def _bulk(
    action: str,
    instance_id: str | None,
    workflow: str | None,
    status: Status | None,
    since: str | None,
    yes: bool,
    json_output: bool,
    *,
    latest: bool = False,
) -> bool:
    """Do ``action`` to every instance the filter matches, once confirmed; False when one ID was given instead."""
    if instance_id is not None:
        if workflow is not None or status is not None or since is not None:
            raise UsageError("give an instance ID, or --workflow and --status: not both")
        return False
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
            return True
        output.note(
            f"{action} will touch {matched:,} of {scope}" + (" (the first 10,000)" if matched >= 10_000 else "")
        )
        if not yes and not _confirmed(f"{action} {matched:,} instances?"):
            raise CliError("not confirmed: nothing was done (--yes skips the question)")
        result = client.bulk(action, workflow=workflow, status=status.value, since=since_time, latest=latest)
    if json_output:
        output.print_json(result)
    else:
        output.print_bulk(result)
    return True


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
