"""LISTEN for new work on a dedicated connection, and wake the worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from psycopg import AsyncConnection

from postgit.engine.channels import WORK_CHANNEL

log = logging.getLogger("postgit.worker")


async def listen_for_work(conninfo: str, node_types: Collection[str], wakeup: asyncio.Event) -> None:
    """Set ``wakeup`` whenever work for one of ``node_types`` is announced; reconnect when the connection drops.

    After every (re)connection ``wakeup`` is set too, since notifications sent while disconnected are lost.
    """
    delay = 0.5
    while True:
        try:
            async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {WORK_CHANNEL}")
                delay = 0.5
                wakeup.set()
                async for notify in conn.notifies():
                    if notify.payload in node_types:
                        wakeup.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
