"""The four ways a step ends.

A handler returns a plain JSON value (shorthand for :class:`Completed`) or one of these outcomes, or raises
:class:`RetryableError` / :class:`FatalError`. Any other exception counts as retryable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Completed:
    """The step finished; ``output`` (JSON) is written to the node's ``assignTo`` path, if any."""

    output: Any = None


@dataclass(frozen=True)
class Suspended:
    """The step waits until ``until`` (timezone-aware); the engine then calls the handler again.

    A naive ``until``, or one more than a lease in the past (the step would be woken again at once, for ever),
    fails the step with :class:`FatalError` instead. When woken, ``ctx.suspended_until`` is set: complete once the
    time has passed.

    ``data`` is handed back to the handler on resumption as ``ctx.resume``. The instance is released while it
    waits, so no worker holds it and a restart loses nothing.
    """

    until: datetime
    data: dict[str, Any] = field(default_factory=dict)


class StepFailure(Exception):
    """Base of the two failure outcomes a handler may raise."""

    def __init__(self, message: str, *, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class RetryableError(StepFailure):
    """The step failed but may succeed if tried again (network error, 5xx...)."""


class FatalError(StepFailure):
    """The step failed for good: no retry, the instance fails now."""


Outcome = Completed | Suspended
