"""A TCP proxy on a loopback port, in a thread of its own, that can cut a process off from its database.

Point a process's ``DATABASE_URL`` at :attr:`TcpProxy.port` instead of PostgreSQL's, then switch modes:

- ``forward``: bytes go both ways, as if there were no proxy;
- ``blackhole``: connections stay open and new ones are accepted, but whatever arrives is dropped and nothing is
  answered: a database, or a network, that stopped answering without saying so;
- ``reject``: existing connections are closed, and new ones are accepted and closed at once (each one counted in
  :attr:`TcpProxy.attempts`): a server that drops every client;
- ``refuse``: existing connections are closed and nothing listens any more: "connection refused".

Switching back to ``forward`` after ``blackhole`` leaves the connections the proxy dropped bytes of unusable; the
client notices when it next uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.ports import free_port

Mode = Literal["forward", "blackhole", "reject", "refuse"]
CHUNK = 65536


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``target_host``:``target_port``; see the module docstring for the modes."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode: Mode = "forward"
        self.attempts = 0
        """Connections accepted so far (in every mode but ``refuse``, where none is)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tcp-proxy-{self.port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch modes; returns once the switch is done (connections closed, listener closed or reopened)."""
        self._call(self._switch(mode))

    def close(self) -> None:
        self._call(self._switch("refuse"))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url_for(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the proxy's."""
        return make_conninfo(database_url, host="127.0.0.1", port=str(self.port))

    # -- in the proxy's thread -------------------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _switch(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if mode in ("reject", "refuse"):
            for writer in list(self._writers):
                writer.close()
        if mode == "refuse" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if previous == "refuse" and mode != "refuse":
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        if self.mode == "reject":
            writer.close()
            return
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.mode == "forward":
                upstream = await asyncio.open_connection(*self.target)
                self._writers.add(upstream[1])
                self._spawn(self._pump(upstream[0], writer))
            await self._pump(reader, upstream[1] if upstream else None)
        except OSError:
            pass
        finally:
            for side in (writer, upstream[1] if upstream else None):
                if side is not None:
                    self._writers.discard(side)
                    side.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None) -> None:
        """Copy ``reader`` to ``writer`` while forwarding; drop what arrives otherwise. Ends at EOF."""
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                if self.mode == "forward" and writer is not None and not writer.is_closing():
                    writer.write(data)
                    await writer.drain()
        if writer is not None:
            writer.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@contextmanager
def tcp_proxy(database_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of ``database_url``'s server, closed afterwards."""
    params = conninfo_to_dict(database_url)
    proxy = TcpProxy(str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))).start()
    try:
        yield proxy
    finally:
        proxy.close()
