"""``pst event send``: send an event to an instance, or to every instance waiting on a key."""

from __future__ import annotations

from typing import Annotated

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption
from postgit_cli.commands.run import parse_input
from postgit_cli.errors import UsageError

app = typer.Typer(help="Events for waiting instances (WaitForEvent).", no_args_is_help=True)


@app.command("send")
def send(
    target: Annotated[
        list[str],
        typer.Argument(
            metavar="[INSTANCE_ID] NAME",
            help="The instance and the event's name; with --key, the event's name alone.",
            show_default=False,
        ),
    ],
    key: Annotated[
        str | None,
        typer.Option(
            "--key", metavar="KEY", help="Send to every instance waiting on NAME with this key.", show_default=False
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", metavar="JSON|@FILE", help="The event's data (default null).", show_default=False),
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option(
            "--event-id", metavar="ID", help="Sending the same event id again applies it once.", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Send an event: to INSTANCE_ID, or with --key to every instance waiting on NAME and KEY (now or later)."""
    event_data = parse_input(data, "--data") if data is not None else None
    if key is not None and len(target) != 1:
        raise UsageError("with --key, give the event's NAME only: pst event send --key KEY NAME")
    if key is None and len(target) != 2:
        raise UsageError("give INSTANCE_ID and NAME (or --key KEY and NAME): pst event send INSTANCE_ID NAME")
    with Client() as client:
        if key is not None:
            result = client.send_keyed_event(target[0], key, event_data, event_id=event_id)
        else:
            instance_id, name = target
            result = client.send_event(instance_id, name, event_data, event_id=event_id)
    if json_output:
        output.print_json(result)
    else:
        output.print_event_sent(result, key)
