"""A minimal HTTP/1.1 client for the start path: JSON POSTs over keep-alive connections, nothing else.

On 2 cores the load generator competes with the server and PostgreSQL for the CPU: httpx spent about 2 ms of CPU
per request here, enough to make the client, not the server, the limit of the start rate. This client does the
least a keep-alive JSON POST needs (no redirects, no chunked bodies, no TLS), the way load generators such as wrk do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    """The server's answer could not be read as an HTTP/1.1 response with a Content-Length."""


class Connection:
    """One keep-alive HTTP/1.1 connection to ``base_url``; use as ``async with Connection(url) as conn``."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"{base_url!r}: only http://host:port URLs are supported")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        """POST ``body`` as JSON to ``path``; the status code and the decoded JSON answer."""
        assert self._reader is not None and self._writer is not None, "use the connection as a context manager"
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode("ascii") + payload)
        status_line = await self._reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP/1.1 status line: {status_line[:100]!r}")
        length = None
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            raise HttpError(f"POST {path}: the answer has no Content-Length")
        content = await self._reader.readexactly(length)
        return int(parts[1]), json.loads(content) if content else None
