"""The rows a worker writes in one group commit, typed.

Their keys are the columns of the ``commit_steps`` query's record definitions (``queries/instances.sql``);
``tests/unit/test_sql_queries.py`` checks that the two agree.
"""

from __future__ import annotations

from typing import Any, Required, TypedDict


class StepRow(TypedDict, total=False):
    """One attempt of a leaf run (a row of ``steps``, inserted or, for a resumed attempt, updated).

    A key left out is null.
    """

    run_key: Required[str]
    node_id: Required[str]
    attempt: Required[int]
    status: Required[str]
    params: Any
    output: Any
    error: dict[str, Any] | None
    worker_id: str
    started_at: Required[str]
    finished_at: str | None
    due_at: str | None
    resume: dict[str, Any] | None
    wait_event: str | None
    wait_key: str | None
    logs: str | None


class RunRow(TypedDict):
    """A control run's decision, or its completion (a row of ``runs``)."""

    run_key: str
    node_id: str
    decision: Any
    status: str | None
    output: Any


class DeliveryRow(TypedDict):
    """A signal taken by a run."""

    signal_id: int
    run_key: str


class EventRow(TypedDict):
    """An entry of the instance's activity log (a row of ``events``)."""

    kind: str
    node_id: str | None
    data: dict[str, Any]


class RunningRun(TypedDict):
    """A run the lease holder has started and not written an outcome for (charged if the holder dies)."""

    run: str
    node: str
    attempt: int


class CommitItem(TypedDict, total=False):
    """What one write does to one instance, fenced by its lease token.

    A key left out is null (the statement reads the items with ``jsonb_to_recordset``), which keeps the JSON of
    a batch small. With ``log_only`` only ``events`` are written (while the lease holds). Otherwise the instance row
    takes ``status`` and the rest; ``state`` holds the top-level keys of the instance's row to change (its input),
    ``state_parts`` the other top-level keys that changed (each kept as a row of its own); ``keep_lease`` keeps the
    lease (the worker goes on with the instance); ``parent_id`` is the instance's parent, if any (the two never
    share a batch);
    ``run_at`` (an ISO time) or ``run_in`` (seconds from now) says when a released
    instance is due; ``signal_seq`` is the last one the worker has seen, so an instance parked while an event
    arrived is due at once.
    """

    seq: int
    id: Required[str]
    parent_id: str | None
    lease_token: Required[int]
    log_only: bool
    status: str
    state: dict[str, Any] | None
    state_parts: dict[str, Any] | None
    current_node: str | None
    node_type: str | None
    node_types: list[str]
    lanes: list[str]
    attempt: int
    run_at: str | None
    run_in: float | None
    keep_lease: bool
    signal_seq: int
    error: dict[str, Any] | None
    wait_reason: str | None
    steps: list[StepRow]
    runs: list[RunRow]
    deliveries: list[DeliveryRow]
    events: list[EventRow]
    running: list[RunningRun]


class RetryTarget(TypedDict):
    """One instance for the ``retry_instances`` query: the version it runs on and what re-runs.

    ``keys``: runs whose attempts start again; ``nodes``: nodes every run of which re-runs (their control runs are
    decided again); ``ancestors``: control nodes above them, whose runs lose their completion; ``timeout``: the
    version's instance timeout in seconds (None: none); ``data``: what the ``instance_retried`` event records.
    """

    id: str
    version: int
    keys: list[str]
    nodes: list[str]
    ancestors: list[str]
    timeout: float | None
    data: dict[str, Any]
