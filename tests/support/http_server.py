"""A recording HTTP server on loopback, for HitEndpoint tests.

Routes (any method):
- ``/ok/<name>``: 200 with JSON ``{"status": "ok", "name": name}``.
- ``/status/<code>``: that status, JSON body.
- ``/flaky/<name>/<failures>``: 500 for the first ``failures`` requests of ``name``, then 200.
- ``/unavailable/<name>/<failures>/...``: 503 for the first ``failures`` requests of that path, then 200.
- ``/redirect?to=<url>``: 302 to that URL.
- ``/sleep/<ms>/<name>``: answers 200 after ``ms`` milliseconds (a step that takes a while).
- ``/block/<name>``: holds the first request of ``name`` open until the test releases it (later requests answer
  at once), so a test can kill a worker while a step is in flight.
- ``/echo/<status>/<json|text>/...``: that status, with the request (its line, URL, decoded path and query, headers
  and body) echoed in the body (as JSON, or as JSON text with ``text/plain``) and in ``X-Echo-*`` headers, as
  services that report a bad request do.
Every request is recorded with its path, headers and body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0
    """time.time() when the request arrived."""
    ended_at: float | None = None
    """time.time() when its answer was sent (None: not yet, or the client went away first)."""


@dataclass
class RecordingServer:
    httpd: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    blocked: dict[str, threading.Event] = field(default_factory=dict)
    arrived: dict[str, threading.Event] = field(default_factory=dict)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def hits(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def release(self, name: str) -> None:
        self.blocked.setdefault(name, threading.Event()).set()

    def arrival(self, name: str) -> threading.Event:
        with self.lock:
            return self.arrived.setdefault(name, threading.Event())

    def close(self) -> None:
        for event in self.blocked.values():
            event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def start_recording_server(host: str = "127.0.0.1", port: int = 0) -> RecordingServer:
    """Serve on ``host`` (an IPv4 or IPv6 loopback address) and ``port`` (0: any free one)."""
    server: RecordingServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded = Recorded(self.command, self.path, dict(self.headers), body, time.time())
            with server.lock:
                server.requests.append(recorded)
                server.counts[self.path] += 1
                count = server.counts[self.path]
            parts = urlsplit(self.path).path.strip("/").split("/")
            status, payload = 200, {"status": "ok", "path": self.path}
            if parts[0] == "status":
                status = int(parts[1])
            elif parts[0] == "flaky":
                status = 500 if count <= int(parts[2]) else 200
            elif parts[0] == "unavailable":
                status = 503 if count <= int(parts[2]) else 200
            elif parts[0] == "sleep":
                time.sleep(int(parts[1]) / 1000)
            elif parts[0] == "block":
                server.arrival(parts[1]).set()
                if count == 1:
                    server.blocked.setdefault(parts[1], threading.Event()).wait(60)
            if parts[0] == "echo":
                self._echo(int(parts[1]), parts[2], body)
                return
            data = json.dumps(payload).encode()
            if parts[0] == "redirect":
                target = parse_qs(urlsplit(self.path).query)["to"][0]
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                recorded.ended_at = time.time()
            except OSError:
                pass  # the client (a killed worker) went away

        def _echo(self, status: int, kind: str, body: bytes) -> None:
            target = urlsplit(self.path)
            echoed = {
                "request": self.requestline,
                "url": f"http://{self.headers.get('Host')}{self.path}",
                "path": unquote(target.path),
                "query": parse_qs(target.query),
                "headers": dict(self.headers),
                "body": body.decode("utf-8", "replace"),
            }
            data = json.dumps(echoed).encode()  # non-ASCII as \u escapes
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if kind == "json" else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Echo-Path", self.path)
            for name, value in self.headers.items():
                self.send_header(f"X-Echo-{name}", value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # socketserver's default backlog is 5: workers opening tens of connections at once would have theirs
        # dropped and retried a second or more later, on a loaded machine past a step's request timeout
        request_queue_size = 128

    httpd = Server((host, port), Handler)
    httpd.daemon_threads = True
    server = RecordingServer(httpd)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server
