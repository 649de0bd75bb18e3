"""``pst schedule ...``: start a workflow on a cron spec."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from postgit_cli import output
from postgit_cli.api import Client
from postgit_cli.commands.options import JsonOption
from postgit_cli.commands.run import parse_input
from postgit_cli.times import moment, seconds

app = typer.Typer(help="Schedules: start a workflow at the times a cron expression matches.", no_args_is_help=True)


class Overlap(StrEnum):
    """What a fire does while the schedule's previous instance is still running."""

    skip = "skip"
    buffer_one = "buffer_one"
    buffer_all = "buffer_all"
    cancel_other = "cancel_other"
    terminate_other = "terminate_other"
    allow_all = "allow_all"


NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.", show_default=False)]


@app.command("create")
def create(
    name: NameArgument,
    workflow: Annotated[
        str, typer.Option("--workflow", metavar="W", help="The workflow to start.", show_default=False)
    ],
    cron: Annotated[
        str,
        typer.Option(
            "--cron",
            metavar="EXPR",
            help="5 fields (minute hour day month weekday), or 6 with seconds last; @hourly, @daily...",
            show_default=False,
        ),
    ],
    timezone: Annotated[
        str, typer.Option("--timezone", metavar="TZ", help="The IANA time zone the expression is read in.")
    ] = "UTC",
    input_value: Annotated[
        str | None,
        typer.Option("--input", metavar="JSON", help="Each instance's input: JSON text, or @path of a JSON file."),
    ] = None,
    overlap: Annotated[
        Overlap, typer.Option("--overlap", help="What a fire does while the previous instance still runs.")
    ] = Overlap.skip,
    catchup_window: Annotated[
        str,
        typer.Option(
            "--catchup-window",
            metavar="DURATION",
            help="Fires older than this when handled (after an outage) are missed: 90s, 10m, 2h, 7d.",
        ),
    ] = "1h",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Create a schedule; it fires from the first time its expression matches after now."""
    body: dict[str, Any] = {
        "name": name,
        "workflow": workflow,
        "cron": cron,
        "timezone": timezone,
        "input": parse_input(input_value),
        "overlap": overlap.value,
        "catchup_window": seconds("--catchup-window", catchup_window),
        "paused": paused,
    }
    with Client() as client:
        row = client.create_schedule(body)
    _show(row, json_output, f"Created schedule {name}")


@app.command("ls")
def list_schedules(json_output: JsonOption = False) -> None:
    """List schedules with their next fire times."""
    with Client() as client:
        rows = client.schedules()
    if json_output:
        output.print_json(rows)
    else:
        output.print_schedules(rows)


@app.command("show")
def show(name: NameArgument, json_output: JsonOption = False) -> None:
    """A schedule, its next fire times and its latest fires."""
    with Client() as client:
        row = client.schedule(name)
    _show(row, json_output)


@app.command("pause")
def pause(name: NameArgument, json_output: JsonOption = False) -> None:
    """Stop firing (trigger and backfill still work)."""
    with Client() as client:
        row = client.pause_schedule(name)
    _show(row, json_output, f"Paused schedule {name}")


@app.command("resume")
def resume(name: NameArgument, json_output: JsonOption = False) -> None:
    """Fire again from the next time after now (the times passed while paused are not fired)."""
    with Client() as client:
        row = client.resume_schedule(name)
    _show(row, json_output, f"Resumed schedule {name}")


@app.command("trigger")
def trigger(name: NameArgument, json_output: JsonOption = False) -> None:
    """Start an instance now, whatever the overlap policy; prints its id."""
    with Client() as client:
        result = client.trigger_schedule(name)
    if json_output:
        output.print_json(result)
    else:
        output.print_started(result)


@app.command("backfill")
def backfill(
    name: NameArgument,
    start: Annotated[
        str,
        typer.Option(
            "--from", metavar="T", help="The first time (ISO 8601; UTC unless it has an offset).", show_default=False
        ),
    ],
    end: Annotated[
        str,
        typer.Option("--to", metavar="T", help="The last time, included; not in the future.", show_default=False),
    ],
    json_output: JsonOption = False,
) -> None:
    """Start one instance per time the expression matches from --from to --to (at most 1,000)."""
    with Client() as client:
        result = client.backfill_schedule(name, moment("--from", start), moment("--to", end))
    if json_output:
        output.print_json(result)
        return
    output.say(
        f"Backfilled schedule {name}: {result['fires']} fire time(s), {result['started']} started, "
        f"{result['existing']} fired before, {result['failed']} failed"
    )
    for error in result.get("errors") or []:
        output.print_error(error)
    if result["failed"]:
        raise typer.Exit(1)


@app.command("rm")
def remove(name: NameArgument) -> None:
    """Delete a schedule and its fire records (the instances it started stay)."""
    with Client() as client:
        client.delete_schedule(name)
    output.say(f"Deleted schedule {name}")


def _show(row: dict[str, Any], json_output: bool, done: str | None = None) -> None:
    if json_output:
        output.print_json(row)
        return
    if done:
        output.say(done)
    output.print_schedule(row)
