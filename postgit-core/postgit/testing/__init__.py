"""Postgit's testing kit: run workflows against a real engine in a test, with time that skips ahead.

- :class:`PostgitEnv` (the ``postgit_env`` pytest fixture): a worker in this process on a database of its own;
  ``env.run(workflow, input)`` deploys, starts and runs an instance to the end and returns it. Timers (``Sleep``,
  ``Suspended(until=...)``, retry backoff, ``WaitForEvent`` timeouts, instance timeouts) fire as soon as nothing
  else can happen, on a virtual clock: a workflow that sleeps three days finishes in well under a second.
- ``env.mock("HitEndpoint", node="fetch", returns={...})``: stand in for a node type's handler and record the calls.
- :func:`run_handler`: run one handler with a real ``StepContext``, for plugin authors.

The pytest plugin (``postgit.testing.pytest_plugin``) is registered through the ``pytest11`` entry point of
``postgit-core``, so installing it is all a project needs.
"""

from postgit.testing.clock import VirtualClock
from postgit.testing.database import KitDatabase
from postgit.testing.env import PostgitEnv
from postgit.testing.errors import InstanceStuck, PostgitTestingError, WaitTimeout
from postgit.testing.handlers import HandlerResult, MemoryOutbox, arun_handler, run_handler
from postgit.testing.instances import Instance, Step
from postgit.testing.mocks import Call, Mock

__all__ = [
    "Call",
    "HandlerResult",
    "Instance",
    "InstanceStuck",
    "KitDatabase",
    "MemoryOutbox",
    "Mock",
    "PostgitEnv",
    "PostgitTestingError",
    "Step",
    "VirtualClock",
    "WaitTimeout",
    "arun_handler",
    "run_handler",
]
