"""Store: the only code that executes SQL. One short method per named query.

Writes made under a lease carry the lease token they were claimed with and are fenced by it in their ``WHERE``
clause: a worker that lost an instance's lease writes nothing for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from postgit.db.ids import uuid7
from postgit.db.queries import load_queries
from postgit.db.records import CommitItem

Row = dict[str, Any]


def dumps(value: Any) -> str:
    """JSON text for a jsonb parameter."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def definition_digest(definition: dict[str, Any]) -> str:
    """A digest of a definition's canonical JSON: equal definitions, equal digests."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Store:
    """Every read and write of Postgit's tables, on an async connection pool."""

    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool
        self._queries = load_queries()

    def _sql(self, name: str) -> LiteralString:
        return self._queries[name]

    async def _fetch_all(self, name: str, params: dict[str, Any], conn: AsyncConnection | None = None) -> list[Row]:
        if conn is not None:
            cursor = await conn.execute(self._sql(name), params)
            return await cursor.fetchall()
        async with self.pool.connection() as pooled:
            cursor = await pooled.execute(self._sql(name), params)
            return await cursor.fetchall()

    async def _fetch_one(self, name: str, params: dict[str, Any], conn: AsyncConnection | None = None) -> Row | None:
        rows = await self._fetch_all(name, params, conn)
        return rows[0] if rows else None

    async def _execute(self, name: str, params: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(self._sql(name), params)

    async def ping(self) -> None:
        """One round trip to the database; raises when it cannot be reached."""
        await self._fetch_one("ping", {})

    # -- workflows ---------------------------------------------------------------------------------------------

    async def deploy_workflow(self, name: str, definition: dict[str, Any]) -> tuple[Row, bool]:
        """Store ``definition`` as the next version of ``name``; an identical definition returns its version.

        Returns the workflow row and whether a new version was created.
        """
        digest = definition_digest(definition)
        params = {"name": name, "digest": digest, "definition": dumps(definition)}
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

    async def list_workflow_versions(self, name: str) -> list[Row]:
        return await self._fetch_all("list_workflow_versions", {"name": name})

    async def list_workflows(self) -> list[Row]:
        return await self._fetch_all("list_workflows", {})

    # -- instances ---------------------------------------------------------------------------------------------

    async def create_instance(
        self,
        *,
        workflow: str,
        version: int,
        state: dict[str, Any],
        current_node: str | None,
        node_types: list[str],
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        parent_id: uuid.UUID | None = None,
        parent_run_key: str | None = None,
        cancel_with_parent: bool = True,
    ) -> tuple[Row, bool]:
        """Start an instance, or return the one started earlier with ``idempotency_key``.

        ``node_types``: the node types of the runs it starts with (a worker with one of them claims it);
        ``timeout_seconds``: until its deadline. Returns ``{"id", "status"}`` and whether it was created now.
        """
        params = {
            "id": uuid7(),
            "workflow": workflow,
            "version": version,
            "state": dumps(state),
            "current_node": current_node,
            "node_type": node_types[0] if node_types else None,
            "node_types": node_types,
            "idempotency_key": idempotency_key,
            "timeout": timeout_seconds,
            "parent_id": parent_id,
            "parent_run_key": parent_run_key,
            "cancel_with_parent": cancel_with_parent,
        }
        row = await self._fetch_one("create_instance", params)
        if row is not None:
            return {"id": row["id"], "status": row["status"]}, True
        existing = await self._fetch_one("get_instance_by_key", params)
        if existing is None:  # the conflicting row was deleted in between; try once more
            return await self.create_instance(
                workflow=workflow,
                version=version,
                state=state,
                current_node=current_node,
                node_types=node_types,
                idempotency_key=idempotency_key,
                timeout_seconds=timeout_seconds,
                parent_id=parent_id,
                parent_run_key=parent_run_key,
                cancel_with_parent=cancel_with_parent,
            )
        return existing, False

    async def get_instance(self, instance_id: uuid.UUID) -> Row | None:
        return await self._fetch_one("get_instance", {"id": instance_id})

    async def list_instances(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Row]:
        """Instances newest first, filtered by status and workflow."""
        return await self._fetch_all(
            "list_instances", {"status": status, "workflow": workflow, "limit": limit, "offset": offset}
        )

    async def list_steps(self, instance_id: uuid.UUID, limit: int | None = None) -> list[Row]:
        """The latest ``limit`` attempts (all when None) of an instance's steps, in the order they started."""
        return await self._fetch_all("list_steps", {"instance_id": instance_id, "limit": limit})

    async def count_steps(self, instance_id: uuid.UUID) -> int:
        row = await self._fetch_one("count_steps", {"instance_id": instance_id})
        return row["steps"] if row else 0

    async def latest_attempts(self, instance_id: uuid.UUID) -> list[Row]:
        """The latest attempt of each leaf run of an instance."""
        return await self._fetch_all("latest_attempts", {"instance_id": instance_id})

    async def list_runs(self, instance_id: uuid.UUID) -> list[Row]:
        """The control runs of an instance (decisions and recorded completions)."""
        return await self._fetch_all("list_runs", {"instance_id": instance_id})

    async def list_children(self, instance_id: uuid.UUID) -> list[Row]:
        """The instances this instance started, oldest first."""
        return await self._fetch_all("list_children", {"id": instance_id})

    async def events_since(self, instance_id: uuid.UUID, after: int = 0, limit: int = 500) -> list[Row]:
        """An instance's events with an id above ``after``, oldest first."""
        return await self._fetch_all("events_since", {"instance_id": instance_id, "after": after, "limit": limit})

    async def cancel_instance(self, instance_id: uuid.UUID) -> bool:
        """Cancel an unfinished instance and its descendants (unless abandoned); False when it had finished."""
        return await self._fetch_one("cancel_instance", {"id": instance_id}) is not None

    async def cancel_children(self, instance_id: uuid.UUID) -> list[uuid.UUID]:
        """Cancel the unfinished descendants of a finished instance (unless abandoned); their ids."""
        return [row["id"] for row in await self._fetch_all("cancel_children", {"id": instance_id})]

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
        return {"signal_id": row["id"], "woken": woken["woken"] if woken else 0, "duplicate_of": None}

    async def wake_instances(self, instance_ids: list[uuid.UUID]) -> int:
        """Make instances that wait due now, as an event sent to them does; how many were woken."""
        row = await self._fetch_one("wake_instances", {"ids": instance_ids})
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
        self, *, worker_id: str, node_types: Iterable[str], limit: int, lease_seconds: float
    ) -> list[Row]:
        """Lease up to ``limit`` due instances whose next node type is in ``node_types``."""
        return await self._fetch_all(
            "claim_instances",
            {"worker_id": worker_id, "node_types": list(node_types), "limit": limit, "lease_seconds": lease_seconds},
        )

    async def commit_steps(self, batch: Sequence[CommitItem]) -> set[int]:
        """Write many outcomes in one transaction; returns the ``seq`` of each item whose lease still held."""
        rows = await self._fetch_all("commit_steps", {"batch": dumps(batch)})
        return {row["seq"] for row in rows if row["seq"] is not None}

    async def renew_leases(self, leases: dict[uuid.UUID, int], lease_seconds: float) -> set[uuid.UUID]:
        """Extend the leases in ``leases`` (id -> token); returns the ids still held."""
        rows = await self._fetch_all("renew_leases", {"leases": _leases_json(leases), "lease_seconds": lease_seconds})
        return {row["id"] for row in rows}

    async def release_leases(self, leases: dict[uuid.UUID, int]) -> set[uuid.UUID]:
        """Hand instances back so that any worker can claim them at once."""
        rows = await self._fetch_all("release_leases", {"leases": _leases_json(leases)})
        return {row["id"] for row in rows}

    async def next_run_at(self, node_types: Iterable[str]) -> datetime | None:
        row = await self._fetch_one("next_run_at", {"node_types": list(node_types)})
        return row["run_at"] if row else None

    # -- workers -----------------------------------------------------------------------------------------------

    async def register_worker(self, worker_id: str, node_types: Iterable[str]) -> None:
        await self._execute("register_worker", _worker_params(worker_id, node_types))

    async def heartbeat_worker(self, worker_id: str, node_types: Iterable[str]) -> None:
        await self._execute("heartbeat_worker", _worker_params(worker_id, node_types))

    async def deregister_worker(self, worker_id: str) -> None:
        await self._execute("deregister_worker", {"id": worker_id})

    async def list_live_workers(self, within_seconds: float) -> list[Row]:
        return await self._fetch_all("list_live_workers", {"within_seconds": within_seconds})

    # -- outbox ------------------------------------------------------------------------------------------------

    async def enqueue_mail(self, *, idempotency_key: str, message: dict[str, Any]) -> None:
        """Park ``message`` in the outbox once per idempotency key."""
        await self._execute("enqueue_mail", {"idempotency_key": idempotency_key, "message": dumps(message)})

    async def list_outbox(self, limit: int = 100) -> list[Row]:
        return await self._fetch_all("list_outbox", {"limit": limit})


def _leases_json(leases: dict[uuid.UUID, int]) -> str:
    return dumps([{"id": str(instance_id), "lease_token": token} for instance_id, token in leases.items()])


def _worker_params(worker_id: str, node_types: Iterable[str]) -> dict[str, Any]:
    return {"id": worker_id, "host": socket.gethostname(), "pid": os.getpid(), "node_types": sorted(node_types)}
