"""JSON text that PostgreSQL's ``jsonb`` can store: compact, valid UTF-8, without NaN, infinities or NUL characters.

Python's ``json`` writes ``NaN``, ``Infinity`` and a NUL character without complaint, and PostgreSQL refuses each: a
value holding one must be refused where it enters (an instance's input, a step's output) rather than fail the
write that would store it, with everything else in that write.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A ``\\u0000`` escape in JSON text (not an escaped backslash followed by ``u0000``)."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""``json.dumps`` with these options builds an encoder per call, which costs as much as encoding a small value."""


class Unstorable(ValueError):
    """Why a value cannot be stored as ``jsonb``; the message follows the value's name (``input holds NaN ...``)."""


def storable_json(value: Any) -> tuple[str, int]:
    """``value`` as compact JSON text and its size in bytes of UTF-8; Unstorable when ``jsonb`` cannot hold it."""
    try:
        text = _ENCODER.encode(value)
    except ValueError:
        raise Unstorable("holds NaN or an infinite number, which JSON cannot carry") from None
    except RecursionError:
        raise Unstorable("is nested too deeply") from None
    except TypeError as exc:
        raise Unstorable(f"is not JSON-serialisable: {exc}") from None
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            raise Unstorable("holds text that is not valid Unicode (a lone surrogate such as \\ud800)") from None
    if "\\u0000" in text and _NUL.search(text):
        raise Unstorable("holds a NUL character (\\u0000), which PostgreSQL cannot store")
    return text, size
