"""Two checkouts measured in the same run (``bench/compare_starts.py``, ``bench/compare_w1.py``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.database import fresh_database, pg_server
from harness.runner import prepare
from harness.throughput import RunPaths


@contextmanager
def comparison_database() -> Iterator[RunPaths]:
    """A fresh database on ``DATABASE_URL``'s server (else an embedded one), prepared for the workloads."""
    with pg_server() as server, fresh_database(server.admin_url) as url, tempfile.TemporaryDirectory() as logs:
        yield prepare(server.admin_url, url, Path(logs))


def interleaved(rounds: int, names: Sequence[str]) -> Iterator[tuple[int, str]]:
    """``(round, name)`` for each round and each name in turn; which name goes first alternates."""
    for number in range(rounds):
        for name in names if number % 2 == 0 else list(reversed(names)):
            yield number, name


def median(values: Sequence[float]) -> float:
    """The middle value (the lower of the two middle ones)."""
    return sorted(values)[(len(values) - 1) // 2]
