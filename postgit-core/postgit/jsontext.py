"""JSON text that PostgreSQL's ``jsonb`` can store: compact, valid UTF-8, without NaN, infinities or NUL characters.

Python's ``json`` writes ``NaN``, ``Infinity`` and a NUL character without complaint, and PostgreSQL refuses each: a
value holding one must be refused where it enters (an instance's input, a step's output) rather than fail the
write that would store it, with everything else in that write.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A ``\\u0000`` escape in JSON text (not an escaped backslash followed by ``u0000``)."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""``json.dumps`` with these options builds an encoder per call, which costs as much as encoding a small value."""


FAST_BYTES = 8192
"""Values whose JSON is at most this long are checked by walking them and encoded by orjson: several times
faster than ``json`` for the small values most inputs and outputs are. Longer ones are encoded by ``json``."""


class Unstorable(ValueError):
    """Why a value cannot be stored as ``jsonb``; the message follows the value's name (``input holds NaN ...``)."""


def storable_json(value: Any) -> tuple[str, int]:
    """``value`` as compact JSON text and its size in bytes of UTF-8; Unstorable when ``jsonb`` cannot hold it."""
    try:
        raw = orjson.dumps(value)
    except TypeError:  # what orjson cannot encode; json says why, or encodes it (an integer beyond 64 bits)
        return _json_text(value)
    # orjson writes NaN and infinities as null, and encodes a UUID, a datetime or an enum member, which json
    # refuses: only a small value of JSON's own types, without NUL characters, takes orjson's text
    if len(raw) > FAST_BYTES or b"null" in raw or b"\\u0000" in raw or not _plain(value):
        return _json_text(value)
    return raw.decode(), len(raw)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> bool:
    """Whether ``value`` holds nothing but dicts with str keys, lists, str, int, float, bool and None (exactly)."""
    kind = type(value)
    # loops rather than all() over a generator: this runs for every small input and output, at twice the speed
    if kind is dict:
        for key, item in value.items():  # noqa: SIM110
            if type(key) is not str or not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110
            if not _plain(item):
                return False
        return True
    return kind in _SCALARS


def _json_text(value: Any) -> tuple[str, int]:
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
