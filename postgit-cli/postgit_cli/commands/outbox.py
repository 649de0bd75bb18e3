"""``pst outbox ...``: emails parked because no SMTP server was configured, and sending them once one is."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption
from postgit_cli.errors import UsageError

app = typer.Typer(help="Emails parked in the outbox (no POSTGIT_SMTP_URL on the workers).", no_args_is_help=True)

SEND_PAGE = 100
"""Messages per request of ``pst outbox send --all``."""


@app.command("ls")
def list_outbox(
    all_messages: Annotated[
        bool, typer.Option("--all", help="Also the messages sent since, with when and through which server.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """List the emails in the outbox that are not sent yet, oldest first."""
    with Client() as client:
        rows = client.outbox(status="all" if all_messages else None)
    if json_output:
        output.print_json(rows)
    else:
        output.print_outbox(rows, with_delivery=all_messages)


@app.command("send")
def send(
    message_id: Annotated[
        int | None,
        typer.Argument(
            metavar="[ID]", min=1, help="The message to send (pst outbox ls shows ids).", show_default=False
        ),
    ] = None,
    all_messages: Annotated[bool, typer.Option("--all", help="Send every parked message.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Send parked emails through the server's POSTGIT_SMTP_URL, each once (its Message-ID is its step's key)."""
    if (message_id is None) == (not all_messages):
        raise UsageError("give the ID of one message, or --all: pst outbox send ID | pst outbox send --all")
    with Client() as client:
        if message_id is not None:
            result = client.send_outbox_message(message_id)
            if json_output:
                output.print_json(result)
            else:
                output.print_outbox_sent(result)
            return
        outcome = _send_all(client)
    if json_output:
        output.print_json(outcome)
    else:
        output.print_outbox_batch(outcome)
    if outcome["failed"] or outcome["busy"]:
        raise typer.Exit(1)


def _send_all(client: Client) -> dict[str, Any]:
    """Every parked message sent, a page of :data:`SEND_PAGE` per request; the outcomes together."""
    total: dict[str, Any] = {"sent": 0, "already_sent": 0, "failed": 0, "busy": 0, "results": []}
    after_id: int | None = 0
    while after_id is not None:
        page = client.send_outbox(after_id=after_id, limit=SEND_PAGE)
        for key in ("sent", "already_sent", "failed", "busy"):
            total[key] += page[key]
        total["results"].extend(page["results"])
        after_id = page["next_after_id"]
    return total
