"""``pst i ...``: workflow instances."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from postgit_cli import output
from postgit_cli.client import ApiClient, path_segment
from postgit_cli.commands.options import JsonOption
from postgit_cli.errors import CliError

CONFLICT = 409


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
    with ApiClient() as api:
        query = {"status": status.value if status else None, "workflow": workflow, "limit": limit, "offset": offset}
        page = api.get("/instances", query)
    items = page.get("items", []) if isinstance(page, dict) else page
    if json_output:
        output.print_json(items)
    else:
        output.print_instances(items, page.get("next_offset") if isinstance(page, dict) else None)


@app.command("cancel")
def cancel(
    instance_id: Annotated[str, typer.Argument(metavar="ID", help="The instance id.", show_default=False)],
    json_output: JsonOption = False,
) -> None:
    """Cancel an instance that has not finished."""
    path = f"/instances/{path_segment(instance_id)}"
    with ApiClient() as api:
        try:
            result = api.post(f"{path}/cancel")
        except CliError as exc:
            if exc.http_status != CONFLICT:
                raise
            status = api.get(path).get("status")
            raise CliError(f"instance {instance_id} is already {status}", http_status=CONFLICT) from None
    if json_output:
        output.print_json(result)
    else:
        output.print_cancelled(result)
