"""The ``pst`` / ``postgit`` program: the typer app, and :func:`main`, which turns every error into one line."""

from __future__ import annotations

import os
import sys
from typing import Annotated

# httpx imports its own command-line client on import (click, rich's progress and syntax, pygments): a quarter
# of what starting pst costs. pst never runs it, so the import is refused here, before anything imports httpx; httpx
# then defines a stand-in. Only this program does it: importing postgit_cli as a library leaves httpx whole.
sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]

import typer

from postgit_cli import __version__, output
from postgit_cli.commands import (
    deploy,
    dev,
    events,
    instances,
    outbox,
    plugins,
    processes,
    run,
    schedules,
    status,
    workers,
    workflows,
)
from postgit_cli.errors import CliError

app = typer.Typer(
    name="pst",
    help=(
        "Postgit: durable workflows on PostgreSQL. This is a client of the Postgit server at DC_API_URL "
        "(default http://localhost:3000); set POSTGIT_API_TOKEN when the server requires a token."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"postgit-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Postgit's command line."""


app.command("deploy")(deploy.deploy)
app.command("run")(run.run)
app.command("status")(status.status)
app.add_typer(workflows.app, name="wf")
app.add_typer(instances.app, name="i")
app.add_typer(plugins.app, name="plugins")
app.add_typer(workers.app, name="workers")
app.add_typer(outbox.app, name="outbox")
app.add_typer(events.app, name="event")
app.add_typer(schedules.app, name="schedule")
app.command("server", context_settings=processes.PASSTHROUGH)(processes.server)
app.command("worker", context_settings=processes.PASSTHROUGH)(processes.worker)
app.command("dev")(dev.dev)


def _base_named(name: str) -> type[Exception]:
    """A base class of ``typer.BadParameter``: typer raises click's exception classes (vendored in new versions)."""
    return next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == name)


_CommandLineError = _base_named("ClickException")
_UsageError = _base_named("UsageError")


def main(argv: list[str] | None = None) -> None:
    """Run the program and exit; any error becomes one ``error: ...`` line on stderr and a non-zero exit code."""
    prog_name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pst"
    if prog_name not in ("pst", "postgit"):
        prog_name = "pst"
    try:
        command = typer.main.get_command(app)
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was asked for by giving no arguments
            help_text = exc.format_message()  # type: ignore[attr-defined]
            if help_text:  # without rich the help is the message; with rich it is already printed
                typer.echo(help_text)
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else prog_name
        output.print_error(f"{exc.format_message()} (see '{where} --help')")  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except _CommandLineError as exc:
        output.print_error(exc.format_message())  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except CliError as exc:
        output.print_error(exc.message)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        output.print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, never a traceback
        output.print_error(f"unexpected {type(exc).__name__}: {exc}")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
