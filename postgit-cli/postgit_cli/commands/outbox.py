"""``pst outbox ...``: emails parked because no SMTP server is configured."""

from __future__ import annotations

import typer

from postgit_cli import output
from postgit_cli.client import ApiClient
from postgit_cli.commands.options import JsonOption

app = typer.Typer(help="Emails parked in the outbox (no POSTGIT_SMTP_URL on the workers).", no_args_is_help=True)


@app.command("ls")
def list_outbox(json_output: JsonOption = False) -> None:
    """List the emails in the outbox, oldest first."""
    with ApiClient() as api:
        rows = api.get("/outbox")
    if json_output:
        output.print_json(rows)
    else:
        output.print_outbox(rows)
