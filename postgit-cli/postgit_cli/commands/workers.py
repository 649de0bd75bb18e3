"""``pst workers ...``: the live workers, the queues they serve and the node types they have."""

from __future__ import annotations

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption

app = typer.Typer(help="The live workers.", no_args_is_help=True)


@app.command("ls")
def list_workers(json_output: JsonOption = False) -> None:
    """List the live workers: host, the queues each serves, and its node types."""
    with Client() as client:
        rows = client.workers()
    if json_output:
        output.print_json(rows)
    else:
        output.print_workers(rows)
