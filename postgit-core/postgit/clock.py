"""Where the engine reads the time: a :class:`Clock`, the system's unless a test hands it another.

The engine's Python asks its clock (``clock.now()``); its SQL asks PostgreSQL (``now()``). A test kit that skips time
(:mod:`postgit.testing`) moves both together: its clock runs ahead of the system's by an offset, and its database's
``now()`` by the same offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""


class SystemClock:
    """The system's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()
