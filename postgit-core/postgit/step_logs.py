"""What a handler logs through ``ctx.logger``, kept with its step attempt.

Each line is ``<time> <LEVEL> <message>`` (a traceback follows its message). An attempt keeps at most
:data:`MAX_LOG_BYTES` of them; past that the rest is counted, not kept, and a marker line says how much was left
out. The lines reach the database with the attempt's outcome, in the same group commit.
"""

from __future__ import annotations

import logging
import threading

from postgit.clock import Clock

MAX_LOG_BYTES = 64 * 1024
"""How many bytes of log lines one attempt keeps."""


class StepLogBuffer:
    """The log lines of one step attempt, capped at :data:`MAX_LOG_BYTES` (safe to use from a handler's thread)."""

    __slots__ = ("_clock", "_dropped", "_lines", "_lock", "_size")

    def __init__(self, clock: Clock):
        self._clock = clock
        self._lines: list[str] = []
        self._size = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def add(self, level: int, message: str) -> None:
        """Keep one line, or as much of it as fits; count what does not."""
        line = f"{self._clock.now().isoformat(timespec='milliseconds')} {logging.getLevelName(level)} {message}"
        data = line.encode("utf-8", "replace")
        with self._lock:
            if self._dropped:
                self._dropped += len(data) + 1
                return
            room = MAX_LOG_BYTES - self._size
            if len(data) + 1 <= room:
                self._lines.append(line)
                self._size += len(data) + 1
                return
            kept = data[: max(0, room - 1)].decode("utf-8", "ignore")  # the part of the line that fits
            kept_bytes = len(kept.encode())
            if kept:
                self._lines.append(kept)
                self._size += kept_bytes + 1
            self._dropped += len(data) - kept_bytes

    def text(self) -> str | None:
        """The lines kept, and a marker when some were left out; None when nothing was logged."""
        with self._lock:
            if not self._lines and not self._dropped:
                return None
            text = "\n".join(self._lines)
            if self._dropped:
                text += f"\n[log truncated: {self._dropped} more bytes; an attempt keeps {MAX_LOG_BYTES} bytes of log]"
            return text
