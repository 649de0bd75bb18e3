"""Starting many instances from a JSONL file (one instance's input per line) through the batch start endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postgit_cli.api import Client
from postgit_cli.errors import CliError, UsageError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
"""An ``--input @FILE`` with one of these suffixes holds one input per line, each started as its own instance."""
BATCH_SIZE = 1_000
"""Instances per request at most: the server's limit for one batch."""
BATCH_BYTES = 16_000_000
"""Bytes of input lines per request at most: half the server's limit on a batch's inputs together (32 MB)."""
MAX_KEY_LENGTH = 200
SHOWN_BAD_LINES = 10


@dataclass
class BatchOutcome:
    """What became of the lines of a file: one result per line sent, with its line number."""

    workflow: str
    file: str
    results: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """The server's warnings (a worker running another plugin version), each once."""

    def count(self, what: str) -> int:
        """How many lines ``started`` (created now), were ``existing`` (key used before) or ``failed``."""
        if what == "failed":
            return sum(1 for result in self.results if result["error"] is not None)
        created = what == "started"
        return sum(1 for result in self.results if result["error"] is None and result["created"] is created)

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "file": self.file,
            "started": self.count("started"),
            "existing": self.count("existing"),
            "failed": self.count("failed"),
            "results": self.results,
            **({"warnings": self.warnings} if self.warnings else {}),
        }


def is_jsonl(value: str | None) -> bool:
    """Whether ``--input`` names a JSONL file (``@path.jsonl``)."""
    return value is not None and value.startswith("@") and Path(value[1:]).suffix.lower() in JSONL_SUFFIXES


def read_inputs(value: str) -> list[tuple[int, int, dict[str, Any]]]:
    """The inputs of ``@path``, each with its line number and size in bytes; blank lines are skipped.

    Raises:
        UsageError: the file cannot be read, holds no input, or has lines that are not JSON objects (each named by
            its line number, up to :data:`SHOWN_BAD_LINES` of them): nothing is started then.
    """
    source = f"--input {value}"
    try:
        text = Path(value[1:]).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source}: cannot be read: {exc}") from None
    inputs: list[tuple[int, int, dict[str, Any]]] = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(parsed, dict):
            bad.append(f"line {number}: not a JSON object (an instance's input is one object per line)")
            continue
        inputs.append((number, len(line.encode()), parsed))
    if bad:
        shown = "; ".join(bad[:SHOWN_BAD_LINES])
        more = f"; and {len(bad) - SHOWN_BAD_LINES} more" if len(bad) > SHOWN_BAD_LINES else ""
        plural = "s" if len(bad) > 1 else ""
        raise UsageError(f"{source}: {len(bad)} bad line{plural}, nothing was started: {shown}{more}")
    if not inputs:
        raise UsageError(f"{source}: no inputs in it (one JSON object per line)")
    return inputs


def start_from_file(
    client: Client,
    workflow: str,
    value: str,
    idempotency_key: str | None,
    start_at: str | None = None,
    priority: int | None = None,
) -> BatchOutcome:
    """Start one instance of ``workflow`` per line of the JSONL file ``@path``, :data:`BATCH_SIZE` per request.

    With ``idempotency_key``, line N is started with the key ``<key>:N``: running the same file again starts
    nothing twice.
    """
    inputs = read_inputs(value)
    if idempotency_key is not None:
        longest = len(f"{idempotency_key}:{inputs[-1][0]}")
        if not idempotency_key or longest > MAX_KEY_LENGTH:
            raise UsageError(
                f"--idempotency-key: with a JSONL file, line N's key is KEY:N, at most {MAX_KEY_LENGTH} characters"
            )
    outcome = BatchOutcome(workflow, value[1:])
    for chunk in _chunks(inputs):
        items = []
        for number, _, run_input in chunk:
            item: dict[str, Any] = {"input": run_input}
            if idempotency_key is not None:
                item["idempotency_key"] = f"{idempotency_key}:{number}"
            items.append(item)
        try:
            answer = client.start_batch(workflow, items, start_at=start_at, priority=priority)
        except CliError as exc:
            if not outcome.results:
                raise
            sent = outcome.results[-1]["line"]
            raise CliError(
                f"{exc.message} (lines 1-{sent} were sent first: {outcome.count('started')} started, "
                f"{outcome.count('failed')} failed; the lines after {sent} were not started)",
                http_status=exc.http_status,
            ) from None
        for warning in answer.get("warnings") or []:
            if warning not in outcome.warnings:
                outcome.warnings.append(warning)
        for (number, _, _), result in zip(chunk, answer["results"], strict=True):
            outcome.results.append({"line": number, **{key: result.get(key) for key in _RESULT_KEYS}})
    return outcome


def _chunks(inputs: list[tuple[int, int, dict[str, Any]]]) -> list[list[tuple[int, int, dict[str, Any]]]]:
    """``inputs`` in order, in chunks of at most :data:`BATCH_SIZE` lines and :data:`BATCH_BYTES` bytes."""
    chunks: list[list[tuple[int, int, dict[str, Any]]]] = [[]]
    size = 0
    for line in inputs:
        if chunks[-1] and (len(chunks[-1]) == BATCH_SIZE or size + line[1] > BATCH_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += line[1]
    return chunks


_RESULT_KEYS = ("id", "status", "created", "error")
