"""F1 and F2: steps run by the engine's control-flow nodes, measured like W1 (started, held, released, worked off).

- F1: one instance of a ForEach over ``f1_items`` items (its list is the instance's input, read with a ref),
  whose body is one ``Noop`` step, ``f1_concurrency`` items at once. One instance is held by one worker, so F1
  shows how fast a single loop advances; besides steps/s, how long the instance took from its release to its end.
- F2: ``f2_instances`` instances of a Parallel of ``f2_branches`` branches, each one ``Noop`` step.

Both with one worker process, so that their steps/s compare with W1's at one worker in the same run. The phases,
counters and CPU accounting are :mod:`harness.throughput`'s; the control nodes write no step rows, so the step
window (first ``started_at`` to last ``finished_at``) spans exactly the Noop steps.
"""

from __future__ import annotations

from typing import Any

from harness.config import Sizes
from harness.throughput import RunPaths, start_instances, work_off

WORKERS = 1
"""F1 and F2 run with one worker: F1's one instance is held by one worker at a time, and the targets compare both
with W1 at one worker."""


def for_each_noop(concurrency: int) -> dict[str, Any]:
    """F1's definition: a ForEach over the input's ``xs``, its body one Noop step."""
    return {
        "id": "loop",
        "type": "ForEach",
        "items": {"$ref": "$.input.xs"},
        "body": {"id": "item", "type": "Noop", "params": {}},
        "concurrency": concurrency,
    }


def parallel_noops(branches: int) -> dict[str, Any]:
    """F2's definition: a Parallel of ``branches`` branches, each one Noop step."""
    return {
        "id": "fan",
        "type": "Parallel",
        "branches": {f"b{index}": {"id": f"b{index}", "type": "Noop", "params": {}} for index in range(branches)},
    }


def run_f1(paths: RunPaths, sizes: Sizes, name: str) -> dict[str, Any]:
    """Start F1's one instance (its ``f1_items`` items as input), hold it, release it and work it off."""
    items = list(range(sizes.f1_items))
    definition = for_each_noop(sizes.f1_concurrency)
    start = start_instances(paths, sizes, name, 1, definition=definition, make_input=lambda index: {"xs": items})
    result = work_off(paths, sizes, name, 1, WORKERS)
    _check_steps(name, result, sizes.f1_items)
    return {
        "start": start,
        "items": sizes.f1_items,
        "concurrency": sizes.f1_concurrency,
        **result,
        "instance_seconds": result["release_to_finished_seconds"],
    }


def run_f2(paths: RunPaths, sizes: Sizes, name: str) -> dict[str, Any]:
    """Start F2's ``f2_instances`` instances, hold them, release them at once and work them off."""
    definition = parallel_noops(sizes.f2_branches)
    start = start_instances(paths, sizes, name, sizes.f2_instances, definition=definition)
    result = work_off(paths, sizes, name, sizes.f2_instances, WORKERS)
    _check_steps(name, result, sizes.f2_instances * sizes.f2_branches)
    return {"start": start, "branches": sizes.f2_branches, **result}


def _check_steps(name: str, result: dict[str, Any], expected: int) -> None:
    """Fail when the engine recorded other than one completed step per item or branch (a retry, a missing step)."""
    if result["steps"] != expected or result["steps_not_completed"]:
        raise RuntimeError(
            f"{name}: {result['steps']} steps recorded ({result['steps_not_completed']} not completed), "
            f"expected {expected} completed"
        )
