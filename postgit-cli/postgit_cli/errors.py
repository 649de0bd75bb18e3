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


class NotFound(CliError):
    """The workflow, version or instance does not exist (404)."""


class Conflict(CliError):
    """The request does not fit the resource's state, e.g. cancelling a finished instance (409)."""


class InvalidRequest(CliError):
    """The server refused the request as malformed or invalid (400, 413, 422): the message names what and where."""


class InvalidDefinition(InvalidRequest):
    """A definition failed the deploy-time checks.

    Attributes:
        issues: every problem found, each a dict with ``node_id``, ``field`` and ``message``.
    """

    def __init__(self, message: str, issues: list[dict[str, object]], *, http_status: int | None = None):
        super().__init__(message, http_status=http_status)
        self.issues = issues


class Unauthorized(CliError):
    """The token is missing or refused (401), or does not allow this (403, :class:`Forbidden`)."""


class Forbidden(Unauthorized):
    """The token is valid but its role does not allow this (403): the message names the role needed."""


class ServerUnavailable(CliError):
    """The server cannot be reached, or answered that it cannot serve now (503): worth trying again later."""


class InstanceFailed(CliError):
    """The instance ended failed; ``instance`` is its detail, ``error`` its error (node id, type, message)."""

    def __init__(self, message: str, instance: dict[str, object]):
        super().__init__(message)
        self.instance = instance
        self.error = instance.get("error")


class InstanceCancelled(CliError):
    """The instance was cancelled; ``instance`` is its detail."""

    def __init__(self, message: str, instance: dict[str, object]):
        super().__init__(message)
        self.instance = instance


class ResultTimeout(CliError, TimeoutError):
    """The instance did not finish within the time given to wait for it."""
