"""``pst status ID``: one instance, its state and its steps."""

from __future__ import annotations

from typing import Annotated

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption


def status(
    instance_id: Annotated[str, typer.Argument(metavar="ID", help="The instance id.", show_default=False)],
    json_output: JsonOption = False,
    logs: Annotated[
        bool, typer.Option("--logs", help="Also show what each step attempt's handler logged through ctx.logger.")
    ] = False,
) -> None:
    """Show an instance: status, workflow@version, current node, why it waits, error, state and steps."""
    with Client() as client:
        row = client.get(instance_id, logs=logs)
    if json_output:
        output.print_json(row)
    else:
        output.print_instance(row)
