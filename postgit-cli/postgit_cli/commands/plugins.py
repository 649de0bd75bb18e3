"""``pst plugins ...``: installed node types, on the server and on the live workers."""

from __future__ import annotations

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption

app = typer.Typer(help="Node types and the plugins providing them.", no_args_is_help=True)


@app.command("ls")
def list_plugins(json_output: JsonOption = False) -> None:
    """List node types: the package and version providing each, and how many live workers have it."""
    with Client() as client:
        rows = client.plugins()
    if json_output:
        output.print_json(rows)
    else:
        output.print_plugins(rows)
