"""Durations and times as the CLI's options take them: ``90s``, ``10m``, ``2h``, ``7d``; ISO 8601 times."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from postgit_cli.errors import UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(option: str, text: str) -> float:
    """A duration (``90s``, ``10m``, ``2h``, ``7d``, or seconds) in seconds; UsageError naming ``option``."""
    match = _DURATION.fullmatch(text.strip().lower())
    value = float(match.group(1)) * _UNITS[match.group(2) or "s"] if match else math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option}: {text!r} is not a duration greater than zero: write e.g. 90s, 10m, 2h, 7d")
    return value


def moment(option: str, text: str, *, need_offset: bool = False) -> str:
    """An ISO 8601 time as the API takes it, with its offset (UTC when it has none, unless ``need_offset``).

    UsageError naming ``option``.
    """
    example = "e.g. 2026-12-01T09:30:00+01:00 or 2026-12-01T08:30:00Z"
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an ISO 8601 time, {example}") from None
    if parsed.tzinfo is None:
        if need_offset:
            raise UsageError(f"{option}: {text!r} has no UTC offset: give one, {example}")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()
