"""Store: the only code that executes SQL. One short method per named query.

Writes made under a lease carry the lease token they were claimed with and are fenced by it in their ``WHERE``
clause: a worker that lost an instance's lease writes nothing for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, LiteralString

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from postgit.db.changes import ChangeNotifier
from postgit.db.pool import first_line, with_connection_defaults
from postgit.db.queries import load_queries
from postgit.db.records import CommitItem, RetryTarget
from postgit.definition import ANY_QUEUE, lane

if TYPE_CHECKING:
    from postgit.starts import NewInstance

Row = dict[str, Any]

COUNT_CAP = 10_000
"""How far :meth:`Store.find_instances` counts the instances of each status; beyond, it says "more"."""
INSTANCE_STATUSES = ("pending", "running", "waiting", "completed", "failed", "cancelled")


def dumps(value: Any) -> str:
    """JSON text for a jsonb parameter (orjson on the hot path; ``json`` for what orjson refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits, text that is not valid Unicode
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def definition_digest(definition: dict[str, Any]) -> str:
    """A digest of a definition's canonical JSON: equal definitions, equal digests."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


log = logging.getLogger("postgit.db")

ROLLBACK_RETRIES = 5
"""How many times a statement that a deadlock or a serialization failure rolled back is run again."""
ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
"""What PostgreSQL rolls a transaction back with to end a deadlock or a serialization conflict."""


class Written(set[int]):
    """The ``seq`` of each item a group commit wrote; ``paused``: those whose instance is paused."""

    def __init__(self, seqs: Iterable[int] = (), *, paused: Iterable[int] = ()):
        super().__init__(seqs)
        self.paused = set(paused)


class StatusCounts(dict[str, int]):
    """Instances per status (statuses with none left out), counted up to a cap (see :meth:`Store.find_instances`).

    A count above the cap means "more than the cap"; ``partial``: only the newest matching instances were counted,
    so that every count is a lower bound.
    """

    def __init__(self, counts: Mapping[str, int] | None = None, *, partial: bool = False):
        super().__init__(counts or {})
        self.partial = partial


class Store:
    """Every read and write of Postgit's tables, on an async connection pool.

    Each write that changes instances notes them in :attr:`changes` once it has committed, which announces them to
    the console's live views (:mod:`postgit.db.changes`).
    """

    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool
        self._queries = load_queries()
        self.changes = ChangeNotifier(self.notify_changes)

    def _sql(self, name: str) -> LiteralString:
        return self._queries[name]

    async def _fetch_all(self, name: str, params: dict[str, Any], conn: AsyncConnection | None = None) -> list[Row]:
        if conn is not None:
            cursor = await conn.execute(self._sql(name), params)
            return await cursor.fetchall()
        for attempt in range(ROLLBACK_RETRIES + 1):
            try:
                async with self.pool.connection() as pooled:
                    cursor = await pooled.execute(self._sql(name), params)
                    return await cursor.fetchall()
            except ROLLED_BACK as exc:
                # a deadlock or a serialization failure rolled the statement, its own transaction, back whole:
                # running it again is running it once
                if attempt == ROLLBACK_RETRIES:
                    raise
                log.info("statement %s was rolled back (%s): running it again", name, first_line(exc))
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def _fetch_one(self, name: str, params: dict[str, Any], conn: AsyncConnection | None = None) -> Row | None:
        rows = await self._fetch_all(name, params, conn)
        return rows[0] if rows else None

    async def _execute(self, name: str, params: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(self._sql(name), params)

    async def ping(self) -> None:
        """One round trip to the database; raises when it cannot be reached."""
        await self._fetch_one("ping", {})

    async def notify_changes(self, payloads: list[str]) -> None:
        """Send change notifications, in a transaction of their own (see :mod:`postgit.db.changes`)."""
        await self._fetch_one("notify_changes", {"payloads": payloads})

    # -- workflows ---------------------------------------------------------------------------------------------

    async def deploy_workflow(
        self, name: str, definition: dict[str, Any], plugins: Mapping[str, Any] | None = None
    ) -> tuple[Row, bool]:
        """Store ``definition`` as the next version of ``name``; an identical definition returns its version.

        ``plugins``: the package and version of each node type it was validated against. Returns the workflow row
        and whether a new version was created.
        """
        digest = definition_digest(definition)
        params = {
            "name": name,
            "digest": digest,
            "definition": dumps(definition),
            "plugins": dumps(dict(plugins or {})),
        }
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(self._sql("lock_workflow_name"), params)
            existing = await self._fetch_one("get_workflow_by_digest", params, conn)
            if existing is not None:
                return existing, False
            row = await self._fetch_one("insert_workflow_version", params, conn)
            assert row is not None
            return row, True

    async def get_workflow(self, name: str, version: int | None = None) -> Row | None:
        """One version of a workflow (the latest when ``version`` is None), or None."""
        return await self._fetch_one("get_workflow", {"name": name, "version": version})

    async def latest_workflow_plugins(self) -> list[Row]:
        """``{"name", "version", "plugins"}`` of the latest version of every workflow."""
        return await self._fetch_all("latest_workflow_plugins", {})

    async def take_rate_token(self, key: str, per_second: float) -> datetime:
        """Reserve the earliest token of a rate-limit key; when it is due (now, or later when the key is busy)."""
        row = await self._fetch_one("take_rate_token", {"key": key, "per_second": float(per_second)})
        assert row is not None
        return row["due_at"]

    async def purge_rate_limits(self, *, limit: int) -> int:
        """Delete up to ``limit`` rate-limit keys idle for a minute (they behave as new ones); how many."""
        return len(await self._fetch_all("purge_rate_limits", {"limit": limit}))

    async def latest_version(self, name: str) -> int | None:
        """The number of the workflow's latest version; None when it has none."""
        row = await self._fetch_one("latest_version", {"name": name})
        return row["version"] if row else None

    async def list_workflow_versions(self, name: str) -> list[Row]:
        return await self._fetch_all("list_workflow_versions", {"name": name})

    async def list_workflows(self) -> list[Row]:
        return await self._fetch_all("list_workflows", {})

    # -- instances ---------------------------------------------------------------------------------------------

    async def start_instances(self, items: Sequence[NewInstance]) -> list[Row]:
        """Start ``items`` in one statement; one row per outcome, ``{"outcome", "id", "status", "idempotency_key"}``.

        ``outcome`` is ``created`` (an item's id), ``existing`` (the instance that already holds an item's
        idempotency key, with the key), ``stale`` (an item taken as its workflow's latest version, when a newer
        one was deployed) or ``notified`` (the workers were woken; no id).
        """
        rows = await self._fetch_all("start_instances", {"items": "[" + ",".join(i.as_json() for i in items) + "]"})
        self.changes.changed(row["id"] for row in rows if row["outcome"] == "created")
        return rows

    async def instances_by_keys(self, keys: list[str]) -> list[Row]:
        """The instances holding these idempotency keys: ``{"id", "status", "idempotency_key"}`` each."""
        return await self._fetch_all("instances_by_keys", {"keys": keys})

    async def get_instance(self, instance_id: uuid.UUID) -> Row | None:
        return await self._fetch_one("get_instance", {"id": instance_id})

    async def list_instances(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Row]:
        """Instances newest first, filtered by status and workflow."""
        return await self._fetch_all(
            "list_instances", {"status": status, "workflow": workflow, "limit": limit, "offset": offset}
        )

    async def find_instances(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        instance_id: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        after: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
        count_cap: int = COUNT_CAP,
    ) -> tuple[StatusCounts, list[Row]]:
        """A page of instances newest first, after the keyset ``after`` (created_at, id), in one statement.

        Returns the counts per status of the instances every filter but ``status`` matches, and the page. The
        counts' cost stays bounded however many instances match: without ``workflow`` each status is counted up to
        ``count_cap`` + 1 rows (a count above ``count_cap`` means "more"); with it, the statuses of the workflow's
        newest ``count_cap`` + 1 matching instances are counted (``partial`` when it has more).
        """
        rows = await self._fetch_all(
            "find_instances",
            {
                "status": status,
                "workflow": workflow,
                "id": instance_id,
                "idempotency_key": idempotency_key,
                "created_from": created_from,
                "created_to": created_to,
                "after_created_at": after[0] if after else None,
                "after_id": after[1] if after else None,
                "limit": limit,
                "count_cap": count_cap + 1,
                "scan_cap": count_cap + 1,
                "statuses": list(INSTANCE_STATUSES),
            },
        )
        counts = StatusCounts(rows[0]["counts"] or {}, partial=bool(rows[0]["partial"])) if rows else StatusCounts()
        page = [row for row in rows if row["id"] is not None]
        return counts, [{k: v for k, v in row.items() if k not in ("counts", "partial")} for row in page]

    async def list_steps(self, instance_id: uuid.UUID, limit: int | None = None, *, logs: bool = False) -> list[Row]:
        """The latest ``limit`` attempts (all when None) of an instance's steps, in the order they started.

        Each has ``logs``: what its handler logged when ``logs`` is true, else None.
        """
        return await self._fetch_all("list_steps", {"instance_id": instance_id, "limit": limit, "logs": logs})

    async def count_steps(self, instance_id: uuid.UUID) -> int:
        row = await self._fetch_one("count_steps", {"instance_id": instance_id})
        return row["steps"] if row else 0

    async def latest_attempts(self, instance_id: uuid.UUID) -> list[Row]:
        """The latest attempt of each leaf run of an instance."""
        return await self._fetch_all("latest_attempts", {"instance_id": instance_id})

    async def list_interruptions(self, instance_id: uuid.UUID) -> list[Row]:
        """An instance's ``lease_expired`` and ``step_interrupted`` events, oldest first."""
        return await self._fetch_all("list_interruptions", {"instance_id": instance_id})

    async def list_runs(self, instance_id: uuid.UUID) -> list[Row]:
        """The control runs of an instance (decisions and recorded completions)."""
        return await self._fetch_all("list_runs", {"instance_id": instance_id})

    async def latest_finished_instances(self, workflow: str, version: int, limit: int) -> list[Row]:
        """The latest ``limit`` finished instances of one version of a workflow, newest first."""
        return await self._fetch_all(
            "latest_finished_instances", {"workflow": workflow, "version": version, "limit": limit}
        )

    async def recorded_runs(self, instance_id: uuid.UUID) -> list[Row]:
        """The latest attempt of each leaf run of an instance, with ``first_started_at``."""
        return await self._fetch_all("recorded_runs", {"instance_id": instance_id})

    async def list_children(self, instance_id: uuid.UUID) -> list[Row]:
        """The instances this instance started, oldest first."""
        return await self._fetch_all("list_children", {"id": instance_id})

    async def events_since(self, instance_id: uuid.UUID, after: int = 0, limit: int = 500) -> list[Row]:
        """An instance's events with an id above ``after``, oldest first."""
        return await self._fetch_all("events_since", {"instance_id": instance_id, "after": after, "limit": limit})

    async def cancel_instances(
        self, instance_ids: Sequence[uuid.UUID], data: dict[str, Any] | None = None
    ) -> set[uuid.UUID]:
        """Cancel the unfinished instances of ``instance_ids`` and their descendants (unless abandoned).

        Returns the ids it cancelled: the others had finished or do not exist. ``data`` goes with each one's
        ``instance_cancelled`` event.
        """
        params = {"ids": list(instance_ids), "data": dumps(data or {})}
        cancelled = {row["id"] for row in await self._fetch_all("cancel_instances", params)}
        if cancelled:
            self.changes.changed_everything()  # their descendants and parents too
        return cancelled

    async def cancel_instance(self, instance_id: uuid.UUID, data: dict[str, Any] | None = None) -> bool:
        """Cancel an unfinished instance and its descendants (unless abandoned); False when it had finished."""
        return bool(await self.cancel_instances([instance_id], data))

    async def pause_instances(
        self, instance_ids: Sequence[uuid.UUID], reason: str, data: dict[str, Any]
    ) -> dict[uuid.UUID, Row]:
        """Pause the unfinished, unpaused instances of ``instance_ids``; those it paused, by id."""
        params = {"ids": list(instance_ids), "reason": reason, "data": dumps(data)}
        rows = {row["id"]: row for row in await self._fetch_all("pause_instances", params)}
        self.changes.changed(rows)
        return rows

    async def resume_instances(self, instance_ids: Sequence[uuid.UUID], data: dict[str, Any]) -> dict[uuid.UUID, Row]:
        """Resume the paused unfinished instances of ``instance_ids``; those it resumed, by id."""
        params = {"ids": list(instance_ids), "data": dumps(data)}
        rows = {row["id"]: row for row in await self._fetch_all("resume_instances", params)}
        self.changes.changed(rows)
        return rows

    async def retry_instances(self, targets: Sequence[RetryTarget], node_types: Sequence[str]) -> dict[uuid.UUID, Row]:
        """Make the failed or cancelled instances of ``targets`` pending again (see the ``retry_instances`` query).

        Returns those it retried, by id; one that was neither is left as it was.
        """
        params = {"targets": dumps(list(targets)), "node_types": list(node_types)}
        rows = {row["id"]: row for row in await self._fetch_all("retry_instances", params)}
        self.changes.changed(rows)
        return rows

    async def failed_runs(self, instance_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        """The run keys whose latest attempt failed for good, of each instance of ``instance_ids``."""
        found: dict[uuid.UUID, list[str]] = {}
        for row in await self._fetch_all("failed_runs", {"ids": list(instance_ids)}):
            found.setdefault(row["instance_id"], []).append(row["run_key"])
        return found

    async def instance_summaries(self, instance_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Row]:
        """``{id, workflow, version, status, paused_at}`` of the instances of ``instance_ids`` that exist."""
        rows = await self._fetch_all("instance_summaries", {"ids": list(instance_ids)})
        return {row["id"]: row for row in rows}

    async def select_instances(
        self,
        *,
        workflow: str,
        statuses: Sequence[str],
        since: datetime | None,
        paused: bool | None,
        limit: int,
    ) -> list[uuid.UUID]:
        """The ids of ``workflow``'s instances in ``statuses`` (created since ``since``), oldest first."""
        params = {"workflow": workflow, "statuses": list(statuses), "since": since, "paused": paused, "limit": limit}
        return [row["id"] for row in await self._fetch_all("select_instances", params)]

    async def cancel_children(self, instance_id: uuid.UUID) -> list[uuid.UUID]:
        """Cancel the unfinished descendants of a finished instance (unless abandoned); their ids."""
        cancelled = [row["id"] for row in await self._fetch_all("cancel_children", {"id": instance_id})]
        self.changes.changed(cancelled)
        return cancelled

    # -- events sent to instances ------------------------------------------------------------------------------

    async def send_instance_event(
        self, instance_id: uuid.UUID, name: str, data: Any, event_id: str | None
    ) -> Row | None:
        """Store an event for an instance and wake it.

        Returns ``{"status", "signal_id", "woken"}`` (``signal_id`` None when the event id was used before, or
        the instance has finished), or None when there is no such instance.
        """
        params = {"instance_id": instance_id, "name": name, "data": dumps(data), "event_id": event_id}
        row = await self._fetch_one("send_instance_event", params)
        if row is None or row["status"] is None:
            return None
        self.changes.changed([instance_id])
        if row["signal_id"] is None and event_id is not None:
            found = await self._fetch_one("find_instance_event", params)
            row["duplicate_of"] = found["id"] if found else None
        return row

    async def send_keyed_event(self, name: str, key: str, data: Any, event_id: str | None) -> Row:
        """Store an event for every instance waiting on ``name`` and ``key``, then wake those waiting now.

        Returns ``{"signal_id", "woken", "duplicate_of"}``.
        """
        params = {"name": name, "key": key, "data": dumps(data), "event_id": event_id}
        row = await self._fetch_one("send_keyed_event", params)
        if row is None:
            found = await self._fetch_one("find_keyed_event", params) if event_id is not None else None
            return {"signal_id": None, "woken": 0, "duplicate_of": found["id"] if found else None}
        # only once the event has committed: a wait that begins from now on finds it, one that began before is
        # found here (see the engine's recheck after a keyed wait is stored)
        woken = await self._fetch_one("wake_key_waiters", params)
        self.changes.changed_everything()  # the instances waiting on the key, whichever they are
        return {"signal_id": row["id"], "woken": woken["woken"] if woken else 0, "duplicate_of": None}

    async def wake_instances(self, instance_ids: list[uuid.UUID]) -> int:
        """Make instances that wait due now, as an event sent to them does; how many were woken."""
        row = await self._fetch_one("wake_instances", {"ids": instance_ids})
        self.changes.changed(instance_ids)
        return row["woken"] if row else 0

    async def pending_signals(
        self, instance_id: uuid.UUID, names: Iterable[str], keys: Iterable[tuple[str, str]]
    ) -> tuple[int, list[Row]]:
        """The instance's signal_seq and the events it has not taken: sent to it by name, or by (name, key)."""
        params = {
            "instance_id": instance_id,
            "names": sorted(set(names)),
            "keys": dumps([{"name": name, "key": key} for name, key in sorted(set(keys))]),
        }
        row = await self._fetch_one("pending_signals", params)
        assert row is not None
        return row["signal_seq"] or 0, row["signals"] or []

    # -- leases and steps (workers) ----------------------------------------------------------------------------

    async def claim_instances(
        self,
        *,
        worker_id: str,
        node_types: Iterable[str],
        limit: int,
        lease_seconds: float,
        queues: Iterable[str] | None = None,
    ) -> list[Row]:
        """Lease up to ``limit`` due instances whose next node type is in ``node_types``.

        ``queues``: the queues the worker serves (None: every queue); only instances with a run in one of them, of
        one of ``node_types``, are taken.
        """
        params = {
            "worker_id": worker_id,
            "node_types": list(node_types),
            "limit": limit,
            "lease_seconds": lease_seconds,
            "lanes": _claim_lanes(queues, node_types),
        }
        rows = await self._fetch_all("claim_instances", params)
        self.changes.changed(row["id"] for row in rows)
        return rows

    async def commit_steps(self, batch: Sequence[CommitItem], commit_id: int = 0) -> Written:
        """Write many outcomes in one transaction; returns the ``seq`` of each item whose lease still held.

        Each instance row written is marked with ``commit_id``, which :meth:`committed_instances` looks for.
        """
        rows = await self._fetch_all("commit_steps", {"batch": dumps(batch), "commit_id": commit_id})
        # every item of the batch, and the parents its finished children woke: an item whose lease was lost wakes
        # its watchers for nothing, which costs them one look
        self.changes.changed(item["id"] for item in batch)
        self.changes.changed(item["parent_id"] for item in batch if item.get("parent_id"))
        return Written(
            {row["seq"] for row in rows if row["seq"] is not None},
            paused={row["seq"] for row in rows if row["seq"] is not None and row["paused"]},
        )

    async def committed_instances(self, ids: Sequence[str], commit_id: int) -> set[str]:
        """Which of ``ids`` the :meth:`commit_steps` call marked ``commit_id`` wrote (none: it did not commit)."""
        rows = await self._fetch_all("committed_instances", {"ids": list(ids), "commit_id": commit_id})
        return {str(row["id"]) for row in rows}

    async def renew_leases(self, leases: dict[uuid.UUID, int], lease_seconds: float) -> set[uuid.UUID]:
        """Extend the leases in ``leases`` (id -> token); returns the ids still held."""
        rows = await self._fetch_all("renew_leases", {"leases": _leases_json(leases), "lease_seconds": lease_seconds})
        return {row["id"] for row in rows}

    async def release_leases(self, leases: dict[uuid.UUID, int]) -> set[uuid.UUID]:
        """Hand instances back so that any worker can claim them at once."""
        rows = await self._fetch_all("release_leases", {"leases": _leases_json(leases)})
        self.changes.changed(row["id"] for row in rows)
        return {row["id"] for row in rows}

    async def next_run_at(self, node_types: Iterable[str], queues: Iterable[str] | None = None) -> datetime | None:
        """When the earliest instance a worker with ``node_types`` serving ``queues`` could claim is due."""
        params = {"node_types": list(node_types), "lanes": _claim_lanes(queues, node_types)}
        row = await self._fetch_one("next_run_at", params)
        return row["run_at"] if row else None

    # -- workers -----------------------------------------------------------------------------------------------

    async def register_worker(
        self,
        worker_id: str,
        node_types: Iterable[str],
        plugins: Mapping[str, Any] | None = None,
        queues: Iterable[str] | None = None,
    ) -> None:
        """Record a worker with its node types, per node type the package and version it runs, and its queues."""
        await self._execute("register_worker", _worker_params(worker_id, node_types, plugins, queues))

    async def heartbeat_worker(
        self,
        worker_id: str,
        node_types: Iterable[str],
        plugins: Mapping[str, Any] | None = None,
        queues: Iterable[str] | None = None,
    ) -> None:
        await self._execute("heartbeat_worker", _worker_params(worker_id, node_types, plugins, queues))

    async def deregister_worker(self, worker_id: str) -> None:
        await self._execute("deregister_worker", {"id": worker_id})

    async def list_live_workers(self, within_seconds: float) -> list[Row]:
        return await self._fetch_all("list_live_workers", {"within_seconds": within_seconds})

    async def list_live_workers_in_flight(self, within_seconds: float) -> list[Row]:
        """The live workers, each with ``in_flight``: the instances it holds a lease on now."""
        return await self._fetch_all("list_live_workers_in_flight", {"within_seconds": within_seconds})

    # -- metrics -----------------------------------------------------------------------------------------------

    async def metrics_snapshot(self, statuses: Sequence[str], within_seconds: float, timeout_seconds: float) -> Row:
        """Instances per status, the oldest due instance's age and the live workers, in ``timeout_seconds``."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(self._sql("limit_statement_time"), {"ms": max(1, int(timeout_seconds * 1000))})
            row = await self._fetch_one(
                "metrics_snapshot", {"statuses": list(statuses), "within_seconds": within_seconds}, conn
            )
        assert row is not None
        return row

    # -- retention ---------------------------------------------------------------------------------------------

    async def purge_finished(self, *, retention_seconds: float | None, limit: int, lock_id: int) -> int | None:
        """Delete up to ``limit`` instances past their retention; how many, or None when another process purges.

        ``retention_seconds`` applies to workflows without a retention of their own (None: keep those forever).
        """
        row = await self._fetch_one(
            "purge_finished", {"retention_seconds": retention_seconds, "limit": limit, "lock_id": lock_id}
        )
        return row["purged"] if row else None

    async def purge_keyed_signals(self, *, retention_seconds: float, limit: int) -> int:
        """Delete up to ``limit`` events sent by key longer ago than ``retention_seconds``; how many."""
        rows = await self._fetch_all("purge_keyed_signals", {"retention_seconds": retention_seconds, "limit": limit})
        return len(rows)

    async def events_mark(self) -> int:
        """The id of the last event the event-compaction pass has looked at (0: none yet)."""
        row = await self._fetch_one("events_mark", {})
        return int(row["after"]) if row else 0

    async def scan_events(self, *, after: int, window: int, keep: int) -> Row:
        """The next ``window`` events after ``after``.

        Returns ``last_id`` (None: none), how many were read (``scanned``), and the instances among theirs with more
        than ``keep`` events (``over``).
        """
        row = await self._fetch_one("scan_events", {"after": after, "window": window, "keep": keep})
        assert row is not None
        return row

    async def set_events_mark(self, value: int) -> None:
        """Record that the event-compaction pass has looked at every event up to ``value``."""
        await self._execute("set_events_mark", {"value": value})

    async def compact_instance_events(
        self, instance_id: uuid.UUID, *, head: int, tail: int, limit: int, lock_id: int
    ) -> int | None:
        """Replace up to ``limit`` events between the first ``head`` and the latest ``tail`` by one marker event.

        How many were removed, or None when another process holds ``lock_id``.
        """
        params = {"id": instance_id, "head": head, "tail": tail, "limit": limit, "lock_id": lock_id}
        row = await self._fetch_one("compact_instance_events", params)
        return row["removed"] if row else None

    async def delete_instance(self, instance_id: uuid.UUID) -> Row | None:
        """Delete a finished instance and all recorded of it; None when it does not exist or has not finished."""
        row = await self._fetch_one("delete_instance", {"id": instance_id})
        self.changes.changed([instance_id])
        return row

    # -- schedules ---------------------------------------------------------------------------------------------

    async def insert_schedule(self, schedule: dict[str, Any]) -> bool:
        """Create a schedule; False when one of that name exists.

        ``schedule``: ``name``, ``workflow``, ``cron``, ``timezone``, ``input``, ``overlap``, ``catchup_window``,
        ``paused``, ``next_fire_at``.
        """
        params = {**schedule, "input": dumps(schedule["input"])}
        return await self._fetch_one("insert_schedule", params) is not None

    async def get_schedule(self, name: str) -> Row | None:
        return await self._fetch_one("get_schedule", {"name": name})

    async def list_schedules(self) -> list[Row]:
        return await self._fetch_all("list_schedules", {})

    async def list_schedule_fires(self, name: str, limit: int) -> list[Row]:
        """A schedule's latest ``limit`` fire records, newest first."""
        return await self._fetch_all("list_schedule_fires", {"name": name, "limit": limit})

    async def set_schedule_paused(self, name: str, paused: bool, next_fire_at: datetime | None) -> bool:
        """Pause or resume a schedule (resuming sets ``next_fire_at``); False when there is no such schedule."""
        params = {"name": name, "paused": paused, "next_fire_at": next_fire_at}
        return await self._fetch_one("set_schedule_paused", params) is not None

    async def delete_schedule(self, name: str) -> bool:
        return await self._fetch_one("delete_schedule", {"name": name}) is not None

    async def claim_due_schedules(self, limit: int, claim_seconds: float, ahead: float = 0.0) -> list[Row]:
        """Claim for ``claim_seconds`` up to ``limit`` schedules due within ``ahead`` seconds or holding fires to start.

        Rows another process holds or has claimed are skipped. Each row carries the database's time (``now``).
        """
        params = {"limit": limit, "claim_seconds": claim_seconds, "ahead": ahead}
        return await self._fetch_all("claim_due_schedules", params)

    async def database_clock(self) -> tuple[datetime, float]:
        """The database's clock and a ``time.monotonic()`` time no earlier than the moment it was read.

        The clock is read during the round trip; taking its end maps a database time to a monotonic time that is
        late by at most the round trip, never early.
        """
        row = await self._fetch_one("database_clock", {})
        assert row is not None
        return row["now"], time.monotonic()

    async def release_schedule_claims(self, names: list[str]) -> None:
        await self._execute("release_schedule_claims", {"names": names})

    async def get_schedule_now(self, name: str) -> Row | None:
        """One schedule with the database's time (``now``)."""
        return await self._fetch_one("get_schedule_now", {"name": name})

    async def record_schedule_fires(self, schedules: list[dict[str, Any]], fires: list[dict[str, Any]]) -> None:
        """Store schedules' new next times, buffers and last instances (ending a pass's claim), and fire records."""
        params = {"schedules": json.dumps(schedules, default=str), "fires": json.dumps(fires, default=str)}
        await self._fetch_one("record_schedule_fires", params)

    async def next_schedule_wait(self) -> float | None:
        """Seconds until the soonest unpaused schedule is due, by the database's clock; None when there is none."""
        row = await self._fetch_one("next_schedule_wait", {})
        return row["wait"] if row else None

    async def prune_schedule_fires(self, keep: int) -> None:
        """Delete all but each schedule's latest ``keep`` fire records."""
        await self._execute("prune_schedule_fires", {"keep": keep})

    # -- outbox ------------------------------------------------------------------------------------------------

    async def enqueue_mail(self, *, idempotency_key: str, message: dict[str, Any]) -> None:
        """Park ``message`` in the outbox once per idempotency key."""
        await self._execute("enqueue_mail", {"idempotency_key": idempotency_key, "message": dumps(message)})

    # -- console sessions --------------------------------------------------------------------------------------

    async def end_console_session(self, sid: str, *, keep_seconds: float) -> None:
        """Record that console session ``sid`` logged out (kept ``keep_seconds``, as long as its cookie is valid)."""
        await self._execute("end_console_session", {"sid": sid, "keep_seconds": keep_seconds})

    async def console_session_ended(self, sid: str) -> bool:
        """Whether console session ``sid`` logged out."""
        row = await self._fetch_one("console_session_ended", {"sid": sid})
        return bool(row and row["ended"])

    # -- audit log ---------------------------------------------------------------------------------------------

    async def record_audit(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Write entries of the audit log with one statement, in order.

        Each entry has ``actor``, ``role``, ``via``, ``action``, ``target`` (or None), ``detail`` (a JSON object)
        and ``status``.
        """
        await self._execute("record_audit", {"entries": dumps(list(entries))})

    async def list_audit(
        self, *, limit: int, before: int | None = None, actor: str | None = None, action: str | None = None
    ) -> list[Row]:
        """Audit entries newest first, with an id below ``before`` when given, of one actor and action when given."""
        return await self._fetch_all("list_audit", {"limit": limit, "before": before, "actor": actor, "action": action})

    async def purge_audit(self, *, retention_seconds: float, limit: int) -> int:
        """Delete up to ``limit`` audit entries older than ``retention_seconds``; how many."""
        return len(await self._fetch_all("purge_audit", {"retention_seconds": retention_seconds, "limit": limit}))

    async def list_outbox(self, limit: int = 100, which: str = "parked") -> list[Row]:
        """Messages oldest first: ``parked`` (not sent yet), ``sent`` or ``all``."""
        return await self._fetch_all("list_outbox", {"limit": limit, "which": which})

    async def get_outbox_message(self, message_id: int) -> Row | None:
        return await self._fetch_one("get_outbox_message", {"id": message_id})

    async def parked_outbox_ids(self, after_id: int, limit: int) -> list[int]:
        """The ids of up to ``limit`` parked messages after ``after_id``, oldest first."""
        rows = await self._fetch_all("parked_outbox_ids", {"after_id": after_id, "limit": limit})
        return [row["id"] for row in rows]

    async def take_outbox_message(self, message_id: int, stale_seconds: float) -> Row | None:
        """Take a parked message for sending; None when it was sent, is being sent, or does not exist."""
        return await self._fetch_one("take_outbox_message", {"id": message_id, "stale_seconds": stale_seconds})

    async def record_outbox_sent(self, message_id: int, sent_via: str) -> Row | None:
        return await self._fetch_one("record_outbox_sent", {"id": message_id, "sent_via": sent_via})

    async def record_outbox_failure(self, message_id: int, error: str) -> Row | None:
        return await self._fetch_one("record_outbox_failure", {"id": message_id, "error": error})


def renew_leases_blocking(conninfo: str, leases: dict[uuid.UUID, int], lease_seconds: float) -> set[uuid.UUID]:
    """``renew_leases`` on a connection of its own, outside the event loop; returns the ids still held.

    For a thread that keeps leases while the worker's event loop is blocked (see ``postgit.engine.loop_watch``).
    """
    params = {"leases": _leases_json(leases), "lease_seconds": lease_seconds}
    with psycopg.connect(with_connection_defaults(conninfo), autocommit=True) as conn:
        return {row[0] for row in conn.execute(load_queries()["renew_leases"], params).fetchall()}


def _leases_json(leases: dict[uuid.UUID, int]) -> str:
    return dumps([{"id": str(instance_id), "lease_token": token} for instance_id, token in leases.items()])


def _worker_params(
    worker_id: str,
    node_types: Iterable[str],
    plugins: Mapping[str, Any] | None = None,
    queues: Iterable[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": worker_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "node_types": sorted(node_types),
        "plugins": dumps(dict(plugins or {})),
        "queues": None if queues is None else sorted(queues),
    }


def _claim_lanes(queues: Iterable[str] | None, node_types: Iterable[str]) -> list[str] | None:
    """The lanes a claim matches: every served queue with every node type, and any lane; None for every queue."""
    if queues is None:
        return None
    return sorted({lane(queue, node_type) for queue in queues for node_type in node_types} | {ANY_QUEUE})
