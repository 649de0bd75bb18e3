"""``postgit-worker``: run a worker process until SIGTERM or Ctrl-C.

A worker that cannot reach its database when it starts, or is refused a connection ("too many connections"), waits
for it: it retries with capped exponential backoff, logging ``database unreachable: ...; retrying`` once and
``database reachable again`` once, and SIGTERM or Ctrl-C end the wait at once. Connections it opens at most: its
pool's ``POSTGIT_DB_POOL_MAX`` plus one for LISTEN (to ``POSTGIT_LISTEN_DATABASE_URL`` when set, which bypasses a
pooler in transaction mode), and while starting, one for the migration (closed before the pool opens).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool

from postgit import tracing
from postgit.db import Store, migrate
from postgit.db.pool import DatabaseWatch, first_line, open_pool, wait_for_database, with_connection_defaults
from postgit.engine import Worker
from postgit.errors import PostgitError
from postgit.plugins import load_registry
from postgit.redaction import install_log_redaction, secrets_in_environment
from postgit.settings import (
    METRICS_PORT_VARIABLE,
    SECRET_PREFIX,
    WorkerSettings,
    otel_service_name,
    traces_exporters_from_env,
)

log = logging.getLogger("postgit.worker")

T = TypeVar("T")

APPLICATION_NAME = "postgit-worker"
"""Every connection of a worker shows under this name in ``pg_stat_activity`` (unless DATABASE_URL names one)."""
POOL_MIN_SIZE = 2
RESTART_DELAY_SECONDS = 1.0
"""The pause before starting again when the database went away between opening the pool and registering."""


class _Stop:
    """SIGTERM and SIGINT: end the wait for the database, or stop the running worker gracefully."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.worker: Worker | None = None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled)

    def _signalled(self) -> None:
        self.requested.set()
        if self.worker is not None:
            self.worker.stop()

    async def unless_requested(self, awaitable: Awaitable[T]) -> T | None:
        """Await ``awaitable``, or cancel it and return None as soon as a stop is requested."""
        task = asyncio.ensure_future(awaitable)
        stopped = asyncio.create_task(self.requested.wait())
        try:
            await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return None if task.cancelled() else task.result()


async def run_worker(settings: WorkerSettings) -> None:
    """Migrate, load plugins, and run one worker until it is stopped by a signal, waiting for the database."""
    registry = load_registry()
    # Everything imported and loaded so far lives as long as the process: keep it out of the garbage collector's
    # full collections, which would otherwise walk it again and again while the worker runs steps.
    gc.freeze()
    # the LISTEN connection the engine opens gets the same connect timeout, keepalives and application name
    settings = replace(
        settings,
        database_url=with_connection_defaults(settings.database_url, application_name=APPLICATION_NAME),
        listen_database_url=with_connection_defaults(settings.listen_url, application_name=APPLICATION_NAME),
    )
    stop = _Stop()
    watch = DatabaseWatch(log)
    while not stop.requested.is_set():
        pool = await stop.unless_requested(wait_for_database(lambda: _connect(settings, watch), watch))
        if pool is None:
            break
        try:
            if await _run(Worker(store=Store(pool), registry=registry, settings=settings), stop, watch):
                return
        finally:
            await pool.close()
        await stop.unless_requested(asyncio.sleep(RESTART_DELAY_SECONDS))
    log.info("stopped while waiting for the database")


async def _connect(settings: WorkerSettings, watch: DatabaseWatch) -> AsyncConnectionPool:
    """One attempt: bring the schema up to date, then open the pool (``psycopg.OperationalError`` when it fails).

    Every use of the pool is bounded: half a lease waiting for a connection, two thirds of a lease for the database's
    answer, so that a worker cut off from its database finds out while it still holds its leases.
    """
    await migrate(settings.database_url)
    return await open_pool(
        settings.database_url,
        min_size=POOL_MIN_SIZE,
        max_size=settings.pool_max_size,
        name=APPLICATION_NAME,
        timeout=settings.lease_seconds / 2,
        hold_timeout=settings.lease_seconds * 2 / 3,
        watch=watch,
        prepared_statements=settings.prepared_statements,
    )


async def _run(worker: Worker, stop: _Stop, watch: DatabaseWatch) -> bool:
    """Run ``worker`` until it stops: True; False when the database went away before it could register."""
    stop.worker = worker
    if stop.requested.is_set():
        worker.stop()
    try:
        await worker.run()
    except psycopg.OperationalError as exc:
        if worker.started.is_set():
            raise
        watch.failed(exc)
        return False
    finally:
        stop.worker = None
    return True


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``postgit-worker`` console script."""
    parser = argparse.ArgumentParser(prog="postgit-worker", description="Run a Postgit worker.")
    parser.add_argument("--concurrency", type=int, help="instances in flight at once (POSTGIT_WORKER_CONCURRENCY)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    args = parser.parse_args(argv)
    level = args.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the worker's own log
    install_log_redaction(secrets_in_environment(SECRET_PREFIX))
    if level != "DEBUG":
        # one warning per failed reconnection attempt; the worker's DatabaseWatch logs each outage once instead
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        settings = WorkerSettings.from_env()
        if args.concurrency:
            settings = replace(settings, concurrency=args.concurrency)
        if settings.metrics_port is not None:
            serve_metrics(settings.metrics_port)
        provider = configure_tracing()
        try:
            asyncio.run(run_worker(settings))
        finally:
            if provider is not None:
                provider.shutdown()  # exports the spans still buffered
    except PostgitError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"cannot use the database at DATABASE_URL: {first_line(exc)}")
    except KeyboardInterrupt:
        pass


def configure_tracing() -> Any:
    """Trace steps when the OTEL_* variables ask for an exporter; the tracer provider, or None.

    Without the ``postgit-core[otel]`` extra that is a warning, not a failure: the worker runs untraced.
    """
    exporters = traces_exporters_from_env()
    if not exporters:
        return None
    if tracing.engine_tracer() is not None:
        return None  # already set up (opentelemetry-instrument): steps use that provider
    if not tracing.available():
        log.warning(
            "OTEL_* variables ask for traces, but OpenTelemetry is not installed: pip install 'postgit-core[otel]'"
        )
        return None
    provider = tracing.configure(exporters, otel_service_name(APPLICATION_NAME))
    log.info("tracing steps, exporting to %s", ", ".join(exporters))
    return provider


def serve_metrics(port: int) -> None:
    """Serve Prometheus metrics at ``http://0.0.0.0:<port>/metrics`` from a thread of this process.

    Raises:
        PostgitError: the port cannot be listened on (taken, or not allowed).
    """
    try:
        start_http_server(port)
    except OSError as exc:
        raise PostgitError(f"{METRICS_PORT_VARIABLE}={port}: cannot serve metrics: {exc.strerror or exc}") from None
    log.info("serving metrics at :%d/metrics", port)


def _fail(message: str) -> None:
    print(f"postgit-worker: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
