"""``pst deploy FILE [NAME]``: deploy a workflow definition."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption
from postgit_cli.workflow_file import load_workflow_file


def deploy(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A .py module with workflow(), or a .json definition.", show_default=False),
    ],
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="The workflow's name (default: the file's stem).", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Deploy FILE as a new version of workflow NAME (an unchanged definition keeps its version)."""
    definition = load_workflow_file(file)
    with Client() as client:
        result = client.deploy(definition, name or file.stem)
    output.warn_all(result)
    if json_output:
        keys = ("name", "version", "created", "warnings") if result.get("warnings") else ("name", "version", "created")
        output.print_json({key: result.get(key) for key in keys})
    else:
        output.print_deployed(result)
