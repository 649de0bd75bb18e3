"""Paths into an instance's state document: ``$``, ``$.a.b``, ``$.items[0]``, ``$['key with spaces']``.

A deliberately small subset of JSONPath: a path names exactly one location, so it can be both read (``ref``)
and written (``assignTo``). Wildcards, filters and slices are refused at deploy time with a clear message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)")
_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")

Segment = str | int


class PathError(ValueError):
    """A path is malformed, or cannot be read or written in a given document."""


@dataclass(frozen=True)
class Path:
    """A parsed path: ``segments`` are object keys (str) and array indexes (int) from the root."""

    text: str
    segments: tuple[Segment, ...]

    def read(self, document: Any) -> Any:
        """The value at this path; PathError naming the missing segment when there is none."""
        value = document
        for depth, segment in enumerate(self.segments):
            if isinstance(segment, int):
                if not isinstance(value, list) or segment >= len(value):
                    raise PathError(f"{self.text}: no item [{segment}] at {self._prefix(depth)}")
            elif not isinstance(value, dict) or segment not in value:
                raise PathError(f"{self.text}: no key '{segment}' at {self._prefix(depth)}")
            value = value[segment]
        return value

    def write(self, document: dict[str, Any], value: Any) -> dict[str, Any]:
        """Return a copy of ``document`` with ``value`` at this path, creating missing objects on the way."""
        if not self.segments:
            raise PathError("cannot assign to the whole state '$'; name a key, e.g. '$.result'")
        return _write(document, self.segments, value, self, 0)

    def _prefix(self, depth: int) -> str:
        return format_path(self.segments[:depth])


def _write(node: Any, segments: tuple[Segment, ...], value: Any, path: Path, depth: int) -> Any:
    if not segments:
        return value
    head, rest = segments[0], segments[1:]
    if isinstance(head, int):
        if not isinstance(node, list) or head > len(node):
            raise PathError(f"{path.text}: cannot write item [{head}] at {path._prefix(depth)}")
        copy = list(node)
        child = copy[head] if head < len(copy) else None
        new_child = _write(child if child is not None else {}, rest, value, path, depth + 1)
        if head == len(copy):
            copy.append(new_child)
        else:
            copy[head] = new_child
        return copy
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise PathError(f"{path.text}: {path._prefix(depth)} is not an object")
    copy = dict(node)
    copy[head] = _write(copy.get(head, {}) if rest else None, rest, value, path, depth + 1)
    return copy


def parse_path(text: str) -> Path:
    """Parse ``text``; PathError explaining the first problem when it is not a valid path."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathError(f"'{text}' is not a path: it must start with '$', e.g. '$.result'")
    segments: list[Segment] = []
    pos = 1
    while pos < len(text):
        for pattern in (_NAME, _INDEX, _QUOTED):
            match = pattern.match(text, pos)
            if match:
                break
        else:
            raise PathError(
                f"'{text}' is not a valid path at position {pos} ('{text[pos : pos + 10]}'): use $.key, "
                "$['key'] or $.list[0]; wildcards, filters and slices are not supported"
            )
        if pattern is _NAME:
            segments.append(match.group(1))
        elif pattern is _INDEX:
            segments.append(int(match.group(1)))
        else:
            quoted = match.group(1) if match.group(1) is not None else match.group(2)
            segments.append(re.sub(r"\\(.)", r"\1", quoted))
        pos = match.end()
    return Path(text, tuple(segments))


def format_path(segments: tuple[Segment, ...]) -> str:
    """The canonical text of a path made of ``segments``."""
    out = "$"
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", segment):
            out += f".{segment}"
        else:
            out += "['" + segment.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out
