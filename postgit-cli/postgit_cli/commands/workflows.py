"""``pst wf ...``: deployed workflows."""

from __future__ import annotations

import typer

from postgit_cli import output
from postgit_cli.client import ApiClient
from postgit_cli.commands.options import JsonOption

app = typer.Typer(help="Deployed workflows.", no_args_is_help=True)


@app.command("ls")
def list_workflows(json_output: JsonOption = False) -> None:
    """List deployed workflows with their latest version."""
    with ApiClient() as api:
        rows = api.get("/workflows")
    if json_output:
        output.print_json(rows)
    else:
        output.print_workflows(rows)
