"""One throwaway embedded PostgreSQL per test session, for runs without ``DATABASE_URL``.

The server itself is ``pst dev``'s :class:`~postgit_cli.embedded_pg.EmbeddedPostgres`; what lives here is only what
the test suite needs around it: one server per pytest process, its data deleted when the session ends, and the
servers of sessions that were killed before they could clean up stopped and removed.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import threading
from pathlib import Path

from postgit_cli.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError

logger = logging.getLogger(__name__)

_sessions: dict[Path, EmbeddedPostgres] = {}
_sessions_lock = threading.Lock()


def session_server(base_dir: Path, **options: object) -> EmbeddedPostgres:
    """A throwaway server for this process (a test session): started on first call, the same one after.

    Its data lives in ``base_dir/session-<pid>`` and is deleted by :func:`stop_session_servers` (registered to run at
    exit), so concurrent sessions never share a server. Servers of sessions that died without cleaning up (their
    process is gone) are stopped and their directories removed first.

    Args:
        base_dir: The folder holding every session's data directory, e.g. ``.postgit/test-pg``.
        **options: Keyword arguments of :class:`EmbeddedPostgres`, used when the server is started.

    Returns:
        The running server; :attr:`EmbeddedPostgres.admin_url` is the URL to create test databases with.
    """
    base = Path(base_dir).expanduser().resolve()
    with _sessions_lock:
        server = _sessions.get(base)
        if server is not None and server.running:
            return server
        if not _sessions:
            atexit.register(stop_session_servers)
        base.mkdir(parents=True, exist_ok=True)
        _reap_dead_sessions(base, own=server is not None)
        server = EmbeddedPostgres(base / f"session-{os.getpid()}", **options)  # type: ignore[arg-type]
        _sessions[base] = server
        return server.start()


def stop_session_servers(base_dir: Path | None = None) -> None:
    """Stop the servers :func:`session_server` started in this process and delete their data.

    Args:
        base_dir: Only the server under this folder; None for all of them.
    """
    with _sessions_lock:
        for base in list(_sessions):
            if base_dir is None or base == Path(base_dir).expanduser().resolve():
                server = _sessions.pop(base)
                server.stop()
                shutil.rmtree(server.data_dir, ignore_errors=True)


def _reap_dead_sessions(base: Path, own: bool) -> None:
    """Remove the data of sessions whose process is gone; ``own``: this process started the one of its pid.

    A directory named after this process that it did not start is a dead session's whose pid was reused.
    """
    for data_dir in base.glob("session-*"):
        owner = data_dir.name.removeprefix("session-")
        if not owner.isdigit():
            continue
        pid = int(owner)
        if own if pid == os.getpid() else _pid_alive(pid):
            continue
        if (data_dir / "pgdata" / "postmaster.pid").exists():
            stray = EmbeddedPostgres(data_dir)
            try:
                stray.start()  # adopts the orphaned server (or recovers a killed one) so that it can be stopped
                stray.stop()
            except EmbeddedPostgresError as exc:
                logger.warning("could not stop the server of a dead test session in %s: %s", data_dir, exc)
                continue
        shutil.rmtree(data_dir, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
