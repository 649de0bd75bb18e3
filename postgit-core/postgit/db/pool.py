"""Connections: the async pool every long-lived process shares, and waiting for a database that is not there yet.

Every wait on the database is bounded, using psycopg's own settings where it has them:

- opening a connection: libpq's ``connect_timeout``, and TCP keepalives so that a connection to a host that
  vanished is noticed even while idle (:data:`CONNECTION_DEFAULTS`, unless the conninfo sets its own);
- borrowing one from the pool: the pool's ``timeout`` (:class:`psycopg_pool.PoolTimeout` past it);
- using one, when the pool is opened with ``hold_timeout``: a connection borrowed for longer is shut at the socket,
  so that a query waiting on a database or a network that stopped answering fails at once with
  :class:`DatabaseTimeout`. libpq has no client-side query timeout; cancelling the task instead would make psycopg
  spend up to ten more seconds trying to cancel the query on a server that does not answer.

Each new connection reports to a :class:`DatabaseWatch`, which logs the database becoming unreachable and reachable
again once each, not once per attempt; :func:`wait_for_database` retries with capped exponential backoff while
the database cannot be reached or refuses connections, and gives up at once on a wrong database name or password.

Behind a pooler in transaction mode (PgBouncer's ``pool_mode = transaction``) each transaction may run on another
server connection, so nothing here leaves state in a session: autocommit is a client-side mode, no ``SET``, no
session-level advisory lock, no temporary table. The one session feature psycopg uses by itself is the prepared
statement, after a statement's ``prepare_threshold`` uses on a connection; :func:`open_pool` with
``prepared_statements=False`` turns that off, for a pooler that cannot keep prepared statements.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

T = TypeVar("T")

CONNECTION_DEFAULTS: dict[str, str] = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
"""libpq options added to a conninfo that does not set them: give up connecting after 5 s, and probe an idle
connection after 10 s of silence, declaring it dead after 3 unanswered probes 5 s apart."""

PREPARE_THRESHOLD = 5
"""psycopg's default: a statement is prepared on a connection after this many uses there."""

RECONNECT_TIMEOUT_SECONDS = 10.0
"""How long the pool retries (with backoff) to replace a lost connection before giving that attempt up; the next
request for a connection starts a fresh attempt, so a database that comes back is used within seconds."""
FIRST_RETRY_DELAY_SECONDS = 0.5
MAX_RETRY_DELAY_SECONDS = 10.0
""":func:`wait_for_database` doubles its delay from the first to this cap."""

_CONFIGURATION_ERRORS = (
    "connection is bad:",  # libpq refused the conninfo before trying the network
    "invalid ",
    "does not exist",
    "authentication failed",
    "no pg_hba.conf entry",
    "not permitted to log in",
    "does not support SSL",
)
"""Connection errors that waiting does not cure: a malformed conninfo, a wrong database, role or password, or TLS
the server lacks (libpq's messages, which carry no SQLSTATE when connecting)."""


class DatabaseTimeout(psycopg.OperationalError):
    """A connection was borrowed from the pool for longer than its ``hold_timeout``, and was shut."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether waiting may cure ``exc``: the database is down, unreachable, starting, or out of connections.

    False for anything but :class:`psycopg.OperationalError`, and for a database, role or password it refuses.
    """
    if not isinstance(exc, psycopg.OperationalError):
        return False
    message = str(exc)
    return not any(fragment in message for fragment in _CONFIGURATION_ERRORS)


def with_connection_defaults(conninfo: str, **defaults: str) -> str:
    """``conninfo`` (a URL or ``key=value`` string) with :data:`CONNECTION_DEFAULTS` and ``defaults`` added.

    Options the conninfo sets itself are kept: an operator's ``connect_timeout=30`` wins.
    """
    params: dict[str, Any] = conninfo_to_dict(conninfo)
    for key, value in {**CONNECTION_DEFAULTS, **defaults}.items():
        params.setdefault(key, value)
    return make_conninfo(**params)


class DatabaseWatch:
    """Whether the database answered the latest connection attempt; logs each change of that once.

    ``database unreachable: <why>; retrying`` when attempts start failing, ``database reachable again`` when one
    succeeds after that: one line per outage, however many attempts it takes.
    """

    def __init__(self, logger: logging.Logger):
        self._log = logger
        self.last_error: str | None = None
        """Why the latest attempt failed (the error's first line); None while the database is reachable."""
        self._succeeded_at = float("-inf")

    @property
    def reachable(self) -> bool:
        """False from a failed attempt until the next successful one."""
        return self.last_error is None

    def failed(self, exc: BaseException, started: float | None = None) -> None:
        """Record a failed attempt; the first after a success is logged.

        Args:
            exc: Why it failed.
            started: When the attempt began (``time.monotonic()``). An attempt that began before the latest success
                (one left hanging by the outage that has since ended) says nothing new and is ignored.
        """
        if started is not None and started < self._succeeded_at:
            return
        if self.last_error is None:
            self._log.warning("database unreachable: %s; retrying", first_line(exc))
        self.last_error = first_line(exc)

    def succeeded(self) -> None:
        """Record a successful attempt; the first after a failure is logged."""
        self._succeeded_at = time.monotonic()
        if self.last_error is not None:
            self.last_error = None
            self._log.info("database reachable again")


async def wait_for_database(
    attempt: Callable[[], Awaitable[T]], watch: DatabaseWatch, *, max_delay: float = MAX_RETRY_DELAY_SECONDS
) -> T:
    """``await attempt()`` until it does not fail for want of the database, and return what it returns.

    A transient failure (see :func:`is_transient`) is reported to ``watch`` and retried after a delay that starts at
    :data:`FIRST_RETRY_DELAY_SECONDS` and doubles up to ``max_delay``, with jitter so that a fleet restarting
    together does not retry in step. Any other exception propagates. Cancel the task to stop waiting.
    """
    delay = FIRST_RETRY_DELAY_SECONDS
    while True:
        try:
            result = await attempt()
        except psycopg.OperationalError as exc:
            if not is_transient(exc):
                raise
            watch.failed(exc)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_delay)
        else:
            watch.succeeded()
            return result


class _Pool(AsyncConnectionPool):
    """psycopg's pool, shutting a connection that stays borrowed longer than ``hold_timeout`` (None: never)."""

    def __init__(self, *args: Any, hold_timeout: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.hold_timeout = hold_timeout

    @asynccontextmanager
    async def connection(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg_pool's signature
    ) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            async with self._held(timeout) as conn:
                yield conn
        except _LOST_PREPARED_STATEMENT as exc:
            _explain_lost_prepared_statement(exc)
            raise

    @asynccontextmanager
    async def _held(self, timeout: float | None) -> AsyncIterator[AsyncConnection[Any]]:  # noqa: ASYNC109
        async with super().connection(timeout) as conn:
            if self.hold_timeout is None:
                yield conn
                return
            expired = False

            def expire() -> None:
                nonlocal expired
                expired = True
                _shut(conn)

            handle = asyncio.get_running_loop().call_later(self.hold_timeout, expire)
            try:
                yield conn
            except psycopg.OperationalError as exc:
                if expired:
                    raise DatabaseTimeout(f"no answer from the database within {self.hold_timeout:g} s") from exc
                raise
            finally:
                handle.cancel()


_LOST_PREPARED_STATEMENT = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.DuplicatePreparedStatement)
"""What a pooler that moves a client between server connections without keeping its prepared statements causes:
``prepared statement "_pg3_0" does not exist`` or ``... already exists``."""
_explained = False


def _explain_lost_prepared_statement(exc: psycopg.Error) -> None:
    """Log, once per process, what to set when a pooler lost track of a prepared statement."""
    global _explained
    if not _explained:
        _explained = True
        logging.getLogger("postgit.db").error(
            "%s: DATABASE_URL goes through a connection pooler that does not keep prepared statements "
            "(PgBouncer before 1.22, or max_prepared_statements = 0, in transaction mode): set "
            "POSTGIT_DB_PREPARED_STATEMENTS=off on every server and worker (README: 'Behind a connection pooler')",
            first_line(exc),
        )


def _shut(conn: AsyncConnection[Any]) -> None:
    """Shut the connection's socket: whatever waits on it sees the connection closed (and the pool discards it)."""
    try:
        fd = conn.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (psycopg.Error, OSError):
        pass  # already closed


def _watched(watch: DatabaseWatch) -> type[AsyncConnection[Any]]:
    """A connection class that reports each attempt to connect to ``watch``."""

    class WatchedConnection(AsyncConnection[Any]):
        reports_to: ClassVar[DatabaseWatch] = watch

        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> WatchedConnection:  # type: ignore[override]
            started = time.monotonic()
            try:
                conn = await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError as exc:
                cls.reports_to.failed(exc, started)
                raise
            cls.reports_to.succeeded()
            return conn

    return WatchedConnection


async def _configure(conn: AsyncConnection) -> None:
    await conn.set_autocommit(True)


async def open_pool(
    conninfo: str,
    *,
    min_size: int = 2,
    max_size: int = 8,
    name: str = "postgit",
    timeout: float = 30.0,  # noqa: ASYNC109 - psycopg_pool's name: the wait for a connection
    hold_timeout: float | None = None,
    watch: DatabaseWatch | None = None,
    prepared_statements: bool = True,
) -> AsyncConnectionPool:
    """Open a pool of autocommit connections returning rows as dicts, once ``min_size`` of them are connected.

    Every statement runs in its own transaction unless a caller opens one with ``conn.transaction()``.

    Args:
        conninfo: the database's URL or ``key=value`` string; :data:`CONNECTION_DEFAULTS` fill in what it omits.
        min_size: connections kept open (capped at ``max_size``).
        max_size: connections opened at most.
        name: the pool's name and the connections' ``application_name`` (unless the conninfo sets one).
        timeout: seconds a caller waits for a connection before :class:`psycopg_pool.PoolTimeout`; also how long
            opening waits for ``min_size`` connections.
        hold_timeout: seconds a caller may keep a connection before it is shut (:class:`DatabaseTimeout`);
            None for no limit.
        watch: where connection attempts are reported; None for a watch logging to ``postgit.db``.
        prepared_statements: False for connections that never prepare a statement (psycopg's
            ``prepare_threshold=None``): for a pooler in transaction mode that cannot keep prepared statements.
            True lets psycopg prepare a statement from its sixth use on a connection (its default threshold).

    Raises:
        psycopg_pool.PoolTimeout: ``min_size`` connections could not be opened within ``timeout``.
    """
    pool = _Pool(
        with_connection_defaults(conninfo, application_name=name),
        connection_class=_watched(watch or DatabaseWatch(logging.getLogger("postgit.db"))),
        min_size=min(min_size, max_size),
        max_size=max_size,
        kwargs={"row_factory": dict_row, "prepare_threshold": PREPARE_THRESHOLD if prepared_statements else None},
        configure=_configure,
        open=False,
        name=name,
        timeout=timeout,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        hold_timeout=hold_timeout,
    )
    await pool.open(wait=True, timeout=timeout)
    return pool
