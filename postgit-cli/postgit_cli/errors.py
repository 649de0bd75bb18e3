"""The one exception the CLI raises on purpose: a message for the user and an exit code."""

from __future__ import annotations


class CliError(Exception):
    """An error to show as one ``error: ...`` line on stderr, exiting with ``exit_code``.

    Attributes:
        message: what went wrong and, where it helps, what to do about it.
        exit_code: 1 for failures, 2 for bad usage or input.
        http_status: the server's HTTP status when the error is its answer, else None.
    """

    def __init__(self, message: str, exit_code: int = 1, *, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.http_status = http_status


class UsageError(CliError):
    """Bad command-line input (exit code 2)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)
