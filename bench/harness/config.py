"""The sizes of a run: full (the published figures), quick, and smoke (proves the harness works end to end)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkerEnv:
    """The environment every worker process of the run gets (the engine's defaults unless stated)."""

    concurrency: int = 100
    lease_seconds: float = 30.0
    poll_seconds: float = 5.0

    def as_env(self) -> dict[str, str]:
        """The ``POSTGIT_*`` variables a ``postgit-worker`` reads."""
        return {
            "POSTGIT_WORKER_CONCURRENCY": str(self.concurrency),
            "POSTGIT_LEASE_SECONDS": str(self.lease_seconds),
            "POSTGIT_POLL_SECONDS": str(self.poll_seconds),
        }


@dataclass(frozen=True)
class Sizes:
    """How much of each workload a run does.

    Attributes:
        mode: ``full``, ``quick`` or ``smoke``.
        ceiling_seconds: how long each ceiling measurement runs.
        ceiling_connections: the connection counts the ceiling is measured at.
        pgbench: also measure the ceiling with ``pgbench`` (when installed), as PEERS.md did.
        w1_instances: W1's instances (3 steps each).
        w1_workers: the worker-process counts W1 is run with.
        start_concurrency: HTTP requests in flight while W1 starts its instances.
        w2_instances: W2's instances, started one at a time.
        w2_warmup: W2 instances started first and not counted (the worker's caches fill).
        w3_instances: W3's instances, started back to back.
        w3_sleep_seconds: how long each W3 instance sleeps.
        w4_waiting: far-future timers inserted before W4.
        w4_workers: the worker-process counts W4 repeats W1 with.
        profile_instances: the instances of the profiled W1 run (more than W1's, for enough samples).
        f1_items: the items of F1's one ForEach instance (one Noop step each).
        f1_concurrency: F1's ForEach ``concurrency`` (items running at once).
        f2_instances: F2's instances, each a Parallel of ``f2_branches`` Noop branches.
        f2_branches: the branches of F2's Parallel.
        f3_instances: F3's instances, each waiting for an event that is then sent to it, one at a time.
        f3_warmup: F3 instances sent their event first and not counted.
        batch_instances: the instances each round of the batch start rate starts.
        batch_size: instances per batch start request.
        batch_in_flight: batch start requests in flight.
        o1_schedules: O1's schedules, each firing every second.
        o1_seconds: how long O1's schedules fire.
        o2_finished: the finished instances past their retention that O2 purges while W1 runs.
        s2_instances: the instances of each of S2's two workflows (5 MB and 5 KB of state).
        c1_requests: the timed requests of the console's instances page per filter, in C1.
        c1_watchers: the browsers watching one instance's page at once, in C1.
        c1_settle_seconds: how long C1 waits before it counts transactions (PostgreSQL counts an idle backend's
            within 10 s).
        rounds: how many times W1 and W4 are run at each worker count (interleaved), and F1 and F2; the median
            round counts.
        timeout_seconds: the longest any one workload may take before the run fails.
    """

    mode: str
    ceiling_seconds: float
    pgbench: bool
    w1_instances: int
    w2_instances: int
    w3_instances: int
    w4_waiting: int
    w4_workers: tuple[int, ...]
    profile_instances: int
    rounds: int
    ceiling_connections: tuple[int, ...] = (1, 2, 4)
    w1_workers: tuple[int, ...] = (1, 2)
    start_concurrency: int = 16
    w2_warmup: int = 5
    w3_sleep_seconds: float = 2.0
    f1_items: int = 10_000
    f1_concurrency: int = 100
    f2_instances: int = 1_000
    f2_branches: int = 10
    f3_instances: int = 200
    f3_warmup: int = 5
    batch_instances: int = 20_000
    batch_size: int = 1_000
    batch_in_flight: int = 2
    o1_schedules: int = 100
    o1_seconds: int = 60
    o2_finished: int = 1_000_000
    s2_instances: int = 20
    c1_requests: int = 20
    c1_watchers: int = 200
    c1_settle_seconds: float = 11.0
    timeout_seconds: float = 600.0
    worker: WorkerEnv = field(default_factory=WorkerEnv)

    @property
    def w1_steps_per_instance(self) -> int:
        return 3

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    mode="full",
    ceiling_seconds=10.0,
    pgbench=True,
    w1_instances=2000,
    w2_instances=200,
    w3_instances=500,
    w4_waiting=1_000_000,
    w4_workers=(1, 2),
    profile_instances=10_000,
    rounds=3,
)
QUICK = Sizes(
    mode="quick",
    ceiling_seconds=3.0,
    pgbench=False,
    w1_instances=2000,
    w2_instances=200,
    w3_instances=500,
    w4_waiting=100_000,
    w4_workers=(1,),
    profile_instances=4_000,
    rounds=1,
    o1_seconds=20,
    o2_finished=200_000,
)
SMOKE = Sizes(
    mode="smoke",
    ceiling_seconds=0.5,
    pgbench=False,
    w1_instances=50,
    w2_instances=10,
    w3_instances=10,
    w4_waiting=1_000,
    w4_workers=(1,),
    profile_instances=50,
    rounds=1,
    w1_workers=(1,),
    w2_warmup=2,
    w3_sleep_seconds=1.0,
    f1_items=200,
    f2_instances=20,
    f3_instances=10,
    f3_warmup=2,
    batch_instances=2_000,
    o1_schedules=5,
    o1_seconds=3,
    o2_finished=2_000,
    s2_instances=2,
    c1_requests=3,
    c1_watchers=20,
    c1_settle_seconds=0.5,
    timeout_seconds=60.0,
)
MODES = {sizes.mode: sizes for sizes in (FULL, QUICK, SMOKE)}
