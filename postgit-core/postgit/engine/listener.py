"""LISTEN for new work on a dedicated connection, and wake the worker.

LISTEN is session state: it must stay on one server session for as long as the worker runs, which a pooler in
transaction mode does not give. The worker opens this connection to ``POSTGIT_LISTEN_DATABASE_URL`` (a direct URL
to PostgreSQL, or a pooler in session mode) when it is set, and to ``DATABASE_URL`` otherwise. Notifications
themselves are sent with ``pg_notify`` inside the transactions that make work due, which any connection may run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Collection

from psycopg import AsyncConnection

from postgit.engine.channels import SIGNAL_CHANNEL, WORK_CHANNEL

log = logging.getLogger("postgit.worker")


async def listen_for_work(
    conninfo: str,
    node_types: Collection[str],
    wakeup: asyncio.Event,
    on_signal: Callable[[uuid.UUID], None] | None = None,
) -> None:
    """Set ``wakeup`` whenever work for one of ``node_types`` is announced; reconnect when the connection drops.

    The payload of a work notification is a comma-separated list of node types, any one of which can run it.
    ``on_signal`` gets the id of an instance a worker holds to which an event was sent. After every
    (re)connection ``wakeup`` is set too, since notifications sent while disconnected are lost.
    """
    delay = 0.5
    while True:
        try:
            async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {WORK_CHANNEL}")
                await conn.execute(f"LISTEN {SIGNAL_CHANNEL}")
                delay = 0.5
                wakeup.set()
                async for notify in conn.notifies():
                    if notify.channel == SIGNAL_CHANNEL:
                        if on_signal is not None:
                            on_signal(uuid.UUID(notify.payload))
                    elif any(node_type in node_types for node_type in notify.payload.split(",")):
                        wakeup.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
