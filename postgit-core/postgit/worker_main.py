"""``postgit-worker``: run a worker process until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace

from postgit.db import Store, migrate, open_pool
from postgit.engine import Worker
from postgit.errors import PostgitError
from postgit.plugins import load_registry
from postgit.settings import WorkerSettings

log = logging.getLogger("postgit.worker")


async def run_worker(settings: WorkerSettings) -> None:
    """Migrate, load plugins, and run one worker until it is stopped by a signal."""
    registry = load_registry()
    await migrate(settings.database_url)
    pool = await open_pool(settings.database_url, min_size=2, max_size=6, name="postgit-worker")
    try:
        worker = Worker(store=Store(pool), registry=registry, settings=settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``postgit-worker`` console script."""
    parser = argparse.ArgumentParser(prog="postgit-worker", description="Run a Postgit worker.")
    parser.add_argument("--concurrency", type=int, help="instances in flight at once (POSTGIT_WORKER_CONCURRENCY)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the worker's own log
    try:
        settings = WorkerSettings.from_env()
        if args.concurrency:
            settings = replace(settings, concurrency=args.concurrency)
        asyncio.run(run_worker(settings))
    except PostgitError as exc:
        print(f"postgit-worker: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
