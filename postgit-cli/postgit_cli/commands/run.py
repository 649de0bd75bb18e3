"""``pst run WORKFLOW``: start an instance, and with ``--watch`` follow it to its end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from postgit_cli import output
from postgit_cli.client import ApiClient, path_segment
from postgit_cli.commands.options import JsonOption
from postgit_cli.errors import CliError, UsageError
from postgit_cli.events import follow_events

SUCCESS_STATUS = "completed"


def run(
    workflow: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="The deployed workflow's name.", show_default=False)
    ],
    input_value: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON|@FILE",
            help="The run input: JSON text, or @path of a JSON file (default: {}).",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Start at most one instance per KEY; a repeat returns the first instance.",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the instance's steps until it ends; exit 1 unless completed.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Start an instance of WORKFLOW and print its id."""
    run_input = parse_input(input_value)
    body: dict[str, Any] = {"input": run_input}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    with ApiClient() as api:
        started = api.post(f"/workflows/{path_segment(workflow)}/instances", body)
        if not watch:
            if json_output:
                output.print_json(started)
            else:
                output.print_started(started)
            return
        instance_id = str(started["id"])
        final = watch_instance(api, instance_id, quiet=json_output)
    if json_output:
        output.print_json(final)
    else:
        output.print_outcome(final)
    if final.get("status") != SUCCESS_STATUS:
        raise typer.Exit(1)


def watch_instance(api: ApiClient, instance_id: str, *, quiet: bool) -> dict[str, Any]:
    """Print the instance's events as they happen (unless ``quiet``) and return the instance once it has ended."""
    printer = None if quiet else output.EventPrinter()
    if printer is not None:
        output.note(f"watching instance {instance_id} (Ctrl-C stops watching; the instance carries on)")
    try:
        for event in follow_events(api, instance_id, on_reconnect=_reconnecting):
            if printer is not None:
                printer(event)
    except KeyboardInterrupt:
        message = f"stopped watching instance {instance_id}; it carries on (pst status {instance_id})"
        raise CliError(message, exit_code=130) from None
    return api.get(f"/instances/{path_segment(instance_id)}")


def _reconnecting(reason: str) -> None:
    output.note(f"event stream interrupted ({reason}); reconnecting")


def parse_input(value: str | None, option: str = "--input") -> Any:
    """JSON from an option such as ``--input``: JSON text, or ``@path`` of a JSON file; ``{}`` when not given.

    Raises:
        UsageError: the file cannot be read or the text is not valid JSON (exit code 2).
    """
    if value is None:
        return {}
    source = option
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        source = f"{option} {value}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{source}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{source}: cannot be read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
