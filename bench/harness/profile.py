"""A readable summary of a ``py-spy record --idle --format raw`` profile of a worker process.

py-spy's raw format is one collapsed stack per line, ``frame;frame;...;leaf count``, each frame
``function (file:line)``. The summary splits the main thread's samples into its event loop waiting for I/O (idle in
``select``, or in uvloop's C loop) and busy time, and ranks functions and packages by the busy samples.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
IDLE_LEAVES = (
    # uvloop (the server's loop) runs in C: there the innermost Python frame of a waiting loop is Runner.run
    "Runner.run (asyncio/runners.py",
    "select (selectors.py",
    "EpollSelector.select (selectors.py",
    "wait (threading.py",
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "_worker (concurrent/futures/thread.py",
)
THREAD_ROOT = ("Thread._bootstrap (threading.py", "_bootstrap (threading.py")
"""The outermost frame of every thread but the main one."""


@dataclass(frozen=True)
class Frame:
    """One stack frame without its line number."""

    function: str
    file: str

    @property
    def package(self) -> str:
        """The top-level package of the frame's file, or ``stdlib:<module>`` for a top-level module."""
        parts = self.file.split("/")
        if len(parts) == 1:
            return f"stdlib:{parts[0].removesuffix('.py')}"
        if "site-packages" in parts:
            parts = parts[parts.index("site-packages") + 1 :]
        return parts[0]

    def __str__(self) -> str:
        return f"{self.function} ({self.file})"


def parse_frame(text: str) -> Frame:
    """``function (file:line)`` as a Frame."""
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "?")
    return Frame(match.group("function"), match.group("file"))


@dataclass
class Profile:
    """Sample counts of a profile: the main thread's idle and busy samples, other threads' busy ones."""

    main_idle: int = 0
    main_busy: int = 0
    threads_busy: int = 0
    self_time: Counter[Frame] = field(default_factory=Counter)
    inclusive: Counter[Frame] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)

    @property
    def busy(self) -> int:
        return self.main_busy + self.threads_busy


def load(raw: Path) -> Profile:
    """Read a raw py-spy profile.

    py-spy samples every thread at each tick; idle threads of thread pools would swamp the counts, so only the main
    thread's idle samples are kept (its event loop waiting), and every thread's busy ones.
    """
    profile = Profile()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit() or not stack_text.strip():
            continue
        count = int(count_text)
        main_thread = not stack_text.startswith(THREAD_ROOT)
        if stack_text.rsplit(";", 1)[-1].startswith(IDLE_LEAVES):
            if main_thread:
                profile.main_idle += count
            continue
        if main_thread:
            profile.main_busy += count
        else:
            profile.threads_busy += count
        frames = [parse_frame(part) for part in stack_text.split(";")]
        profile.self_time[frames[-1]] += count
        profile.packages[frames[-1].package] += count
        for frame in set(frames):
            profile.inclusive[frame] += count
    return profile


def _table(rows: list[tuple[str, int]], busy: int) -> list[str]:
    return [f"  {100 * count / busy:5.1f}%  {name}" for name, count in rows]


def summarise(raw: Path, header: list[str], top: int = 25) -> str:
    """The text summary: header lines, the split, packages, and the top functions by self and inclusive time."""
    profile = load(raw)
    busy = max(profile.busy, 1)
    main = max(profile.main_idle + profile.main_busy, 1)
    lines = [*header, ""]
    lines.append(f"main thread: {main} samples")
    lines.append(f"  event loop waiting for I/O (idle): {profile.main_idle:6} = {100 * profile.main_idle / main:.1f}%")
    lines.append(f"  busy running Python:               {profile.main_busy:6} = {100 * profile.main_busy / main:.1f}%")
    lines.append(f"other threads, busy samples:         {profile.threads_busy:6}")
    lines += ["", "busy samples by package of the innermost frame (self time):"]
    lines += _table(profile.packages.most_common(15), busy)
    lines += ["", f"top {top} functions by self time (share of busy samples):"]
    lines += _table([(str(frame), count) for frame, count in profile.self_time.most_common(top)], busy)
    lines += ["", f"top {top} postgit functions by inclusive time (share of busy samples):"]
    engine = [
        (str(frame), count) for frame, count in profile.inclusive.most_common() if frame.package.startswith("postgit")
    ]
    lines += _table(engine[:top], busy)
    lines += ["", f"top {top} functions outside asyncio's loop by inclusive time (share of busy samples):"]
    outside = [
        (str(frame), count)
        for frame, count in profile.inclusive.most_common()
        if frame.package not in ("asyncio", "stdlib:runpy")
        and not frame.function.startswith("<module>")
        and frame.function not in ("main", "run")
    ]
    lines += _table(outside[:top], busy)
    return "\n".join(lines) + "\n"
