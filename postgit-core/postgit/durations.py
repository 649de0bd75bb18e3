"""Durations written the way people write them: ``90s``, ``10m``, ``2h``, ``30d``, or a number of seconds."""

from __future__ import annotations

import math
import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit (s, m, h, d, w), e.g. ``"90s"``, ``"2h"``, ``"30d"``.

    Raises:
        ValueError: saying what a valid duration looks like.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write a number with a unit, e.g. 90s, 10m, 2h, 30d")
    seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is too long a duration")
    return seconds
