"""``pst run WORKFLOW``: start an instance (with ``--watch``, follow it to its end), or one per line of a JSONL file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.batch import is_jsonl, start_from_file
from postgit_cli.commands.options import JsonOption
from postgit_cli.errors import CliError, UsageError
from postgit_cli.events import follow_events
from postgit_cli.times import moment, seconds

SUCCESS_STATUS = "completed"
MIN_PRIORITY, MAX_PRIORITY = 1, 5


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
            help=(
                "The run input: JSON text, or @path of a JSON file (default: {}). @path.jsonl starts one instance "
                "per line, each line a JSON object (up to 1,000 per request)."
            ),
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help=(
                "Start at most one instance per KEY; a repeat returns the first instance. With a .jsonl input, "
                "line N's key is KEY:N."
            ),
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the instance's steps until it ends; exit 1 unless completed.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="Start no earlier than TIME, ISO 8601 with its offset (2026-12-01T09:00:00+01:00).",
            show_default=False,
        ),
    ] = None,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay",
            metavar="DURATION",
            help="Start after DURATION (90s, 10m, 2h, 7d); pending until then.",
            show_default=False,
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            metavar="1-5",
            help="1 is claimed first, 5 last (default 3): workers take due instances by priority, then due time.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Start an instance of WORKFLOW and print its id; with --input @FILE.jsonl, one instance per line."""
    start_at = start_time(at, delay)
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise UsageError(f"--priority: must be a whole number from {MIN_PRIORITY} (first) to {MAX_PRIORITY} (last)")
    if is_jsonl(input_value):
        assert input_value is not None
        if watch:
            raise UsageError("--watch follows one instance; it cannot follow the instances of a JSONL file")
        with Client() as client:
            outcome = start_from_file(client, workflow, input_value, idempotency_key, start_at, priority)
        output.warn_all(outcome.as_json())
        if json_output:
            output.print_json(outcome.as_json())
        else:
            output.print_batch_outcome(outcome.as_json())
        if outcome.count("failed"):
            raise typer.Exit(1)
        return
    run_input = parse_input(input_value)
    with Client() as client:
        handle = client.start(
            workflow, run_input, idempotency_key=idempotency_key, start_at=start_at, priority=priority
        )
        output.warn_all(handle.started or {})
        if not watch:
            started = handle.started or {"id": handle.id}
            if json_output:
                output.print_json(started)
            else:
                output.print_started(started)
            return
        final = watch_instance(client, handle.id, quiet=json_output)
    if json_output:
        output.print_json(final)
    else:
        output.print_outcome(final)
    if final.get("status") != SUCCESS_STATUS:
        raise typer.Exit(1)


def start_time(at: str | None, delay: str | None) -> str | None:
    """The start time ``--at`` or ``--delay`` asks for (ISO 8601, with its offset), or None: at once."""
    if at is not None and delay is not None:
        raise UsageError("--at and --delay both say when to start: give one of them")
    if at is not None:
        return moment("--at", at, need_offset=True)
    if delay is not None:
        return (datetime.now(UTC) + timedelta(seconds=seconds("--delay", delay))).isoformat()
    return None


def watch_instance(client: Client, instance_id: str, *, quiet: bool) -> dict[str, Any]:
    """Print the instance's events as they happen (unless ``quiet``) and return the instance once it has ended."""
    printer = None if quiet else output.EventPrinter()
    if printer is not None:
        output.note(f"watching instance {instance_id} (Ctrl-C stops watching; the instance carries on)")
    try:
        for event in follow_events(client, instance_id, on_reconnect=_reconnecting):
            if printer is not None:
                printer(event)
    except KeyboardInterrupt:
        message = f"stopped watching instance {instance_id}; it carries on (pst status {instance_id})"
        raise CliError(message, exit_code=130) from None
    return client.get(instance_id)


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
