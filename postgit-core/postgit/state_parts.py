"""An instance's state as it is stored: the input in the instance's row, every other top-level key a row of its own.

A step that writes to the state changes one top-level key (``$.result`` or ``$.order.lines``: the key ``order``);
only that key is written again, so a step's write costs what its own output costs, however large the rest of the
state has grown. Writes never remove a top-level key (a path write only sets), so the keys that changed are those
whose value is not the same object as before: path writes copy along the path and leave the rest shared.
"""

from __future__ import annotations

import json
from typing import Any

INLINE_KEY = "input"
"""The key kept in the instance's row, written by the start (reads of instances without other keys merge nothing)."""


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What a write of ``after`` over ``before`` stores: (the row's keys that changed, the other keys that changed).

    Either is None when nothing of its kind changed.
    """
    inline: dict[str, Any] | None = None
    parts: dict[str, Any] | None = None
    for key, value in after.items():
        if key in before and before[key] is value:
            continue
        if key == INLINE_KEY:
            inline = {key: value}
        else:
            if parts is None:
                parts = {}
            parts[key] = value
    return inline, parts


class StateSize:
    """The size of a state document as ``json.dumps`` writes it, each top-level key encoded again only when changed."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[Any, int]] = {}

    def of(self, state: dict[str, Any]) -> int:
        """``len(json.dumps(state))``."""
        total = 2 + 2 * max(0, len(state) - 1)  # the braces and the ", " between items
        known = self._keys
        for key, value in state.items():
            entry = known.get(key)
            if entry is None or entry[0] is not value:
                entry = known[key] = (value, len(json.dumps(key)) + 2 + len(json.dumps(value)))
            total += entry[1]
        return total
