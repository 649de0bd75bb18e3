"""``pst wf ...``: deployed workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption
from postgit_cli.workflow_file import load_workflow_file

app = typer.Typer(help="Deployed workflows.", no_args_is_help=True)


@app.command("ls")
def list_workflows(json_output: JsonOption = False) -> None:
    """List deployed workflows with their latest version."""
    with Client() as client:
        rows = client.workflows()
    if json_output:
        output.print_json(rows)
    else:
        output.print_workflows(rows)


@app.command("check")
def check(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="The new definition: a .py module with workflow(), or a .json file.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The deployed workflow it would replace.", show_default=False)
    ],
    instances: Annotated[
        int, typer.Option("--instances", "-n", min=1, max=1000, help="How many of the latest finished instances.")
    ] = 20,
    json_output: JsonOption = False,
) -> None:
    """Replay FILE over the recorded runs of NAME's latest finished instances; exit 1 when any would diverge.

    For each instance of NAME's latest version, the first node where FILE would act differently: another branch
    or case, a node that was not recorded before a recorded one, a ref that no longer resolves. Nothing is
    deployed.
    """
    definition = load_workflow_file(file)
    with Client() as client:
        report = client.check(definition, name, instances=instances)
    if json_output:
        output.print_json(report)
    else:
        output.print_check(report, file.name)
    if report.get("diverged"):
        raise typer.Exit(1)
