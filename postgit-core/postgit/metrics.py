"""Prometheus metrics of the engine, on ``prometheus_client``'s default registry.

Workers count step attempts, claims, group commits and delivered events here; the server's ``/metrics`` adds
what only the database knows (the server package's ``metrics`` module). No metric carries an instance id: labels are a
workflow's name and a node type, both few.

The per-step path counts into plain numbers kept per (workflow, node type) (:func:`step_series`), turned into
metrics when scraped: counting a step is an increment, not a label lookup or a lock.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

STEP_LABELS = ("workflow", "node_type")
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

CLAIM_LAG = Histogram(
    "postgit_claim_lag_seconds",
    "Time from an instance being due to a worker claiming it",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
COMMIT_BATCH_SIZE = Histogram(
    "postgit_group_commit_batch_size",
    "Items (one per instance) written by one group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
COMMIT_LATENCY = Histogram(
    "postgit_group_commit_seconds",
    "How long one group commit took to write, retries included",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENTS_DELIVERED = Counter("postgit_events_delivered", "Events taken by a waiting run", ["workflow"])


class StepSeries:
    """What one (workflow, node type)'s steps add up to: plain numbers, read by :class:`StepCollector` on scrape.

    Counting a step is an increment of an attribute, without the lock a ``prometheus_client`` child takes: steps
    are counted on the worker's event loop only, and a scrape (another thread) reads whole numbers.
    """

    __slots__ = ("buckets", "completed", "duration_sum", "failed", "retried", "started")

    def __init__(self) -> None:
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        """Attempts per duration bucket (not cumulative), the last one past the largest bound."""
        self.duration_sum = 0.0

    def finished(self, status: str, retrying: bool, started_at: datetime, finished_at: datetime | None) -> None:
        """Count an attempt's outcome: ``completed`` or ``failed`` (``retrying`` when another attempt follows)."""
        if status == "completed":
            self.completed += 1
        elif status == "failed":
            if retrying:
                self.retried += 1
            else:
                self.failed += 1
        else:
            return  # suspended: it has not finished
        if finished_at is not None:
            seconds = max(0.0, (finished_at - started_at).total_seconds())
            self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            self.duration_sum += seconds


_series: dict[tuple[str, str], StepSeries] = {}


def step_series(workflow: str, node_type: str) -> StepSeries:
    """The numbers of ``(workflow, node_type)``, created on first use and kept."""
    series = _series.get((workflow, node_type))
    if series is None:
        series = _series[(workflow, node_type)] = StepSeries()
    return series


class StepCollector(Collector):
    """The step counters and the step duration histogram, built from every :class:`StepSeries` on scrape."""

    def collect(self) -> Iterator[Metric]:
        started = CounterMetricFamily("postgit_steps_started", "Step attempts started", labels=STEP_LABELS)
        completed = CounterMetricFamily("postgit_steps_completed", "Step attempts that completed", labels=STEP_LABELS)
        failed = CounterMetricFamily(
            "postgit_steps_failed", "Step attempts that failed for good (no retry left)", labels=STEP_LABELS
        )
        retried = CounterMetricFamily(
            "postgit_steps_retried", "Step attempts that failed and will be retried", labels=STEP_LABELS
        )
        duration = HistogramMetricFamily(
            "postgit_step_duration_seconds",
            "How long a step attempt ran, from its start to its outcome (completed or failed)",
            labels=STEP_LABELS,
        )
        bounds = [*(floatToGoString(bound) for bound in DURATION_BUCKETS), "+Inf"]
        for labels, series in list(_series.items()):
            started.add_metric(labels, series.started)
            completed.add_metric(labels, series.completed)
            failed.add_metric(labels, series.failed)
            retried.add_metric(labels, series.retried)
            cumulative = list(zip(bounds, itertools.accumulate(series.buckets), strict=True))
            duration.add_metric(labels, cumulative, sum_value=series.duration_sum)
        yield from (started, completed, failed, retried, duration)


REGISTRY.register(StepCollector())
