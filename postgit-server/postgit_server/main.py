"""``postgit-server``: serve the API with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys

import psycopg
import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from postgit.db.pool import DatabaseWatch, first_line
from postgit.errors import PostgitError
from postgit.plugins import load_registry
from postgit_server.app import begin_shutdown, create_app
from postgit_server.database import migrate_when_reachable
from postgit_server.settings import ServerSettings

log = logging.getLogger("postgit.server")
_LOG_LEVEL_VARIABLE = "_POSTGIT_SERVER_LOG_LEVEL"
"""How the log level reaches the worker processes of a server with ``POSTGIT_SERVER_WORKERS`` above 1."""


class Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once its socket is bound, and ending event streams on shutdown."""

    def __init__(self, app: FastAPI, config: uvicorn.Config, settings: ServerSettings):
        super().__init__(config)
        self.app = app
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info(
                "postgit-server listening on http://%s:%d (API docs: %s/docs; auth %s)",
                self.settings.host,
                self.settings.port,
                self.settings.url,
                "on" if self.settings.auth_required else "off",
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        begin_shutdown(self.app)
        await super().shutdown(sockets)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``postgit-server`` console script."""
    parser = argparse.ArgumentParser(
        prog="postgit-server",
        description=(
            "Run Postgit's REST API server "
            "(DATABASE_URL, PORT, POSTGIT_HOST, POSTGIT_API_TOKEN, POSTGIT_SERVER_WORKERS)."
        ),
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    level = args.log_level.upper()
    _configure_logging(level)
    try:
        settings = ServerSettings.from_env()
        # Before binding the port: fail with one line when the plugins or the database are not usable, and wait
        # (SIGTERM or Ctrl-C stop the wait) while the database cannot be reached.
        registry = load_registry()
        if not asyncio.run(_wait_for_database(settings)):
            log.info("stopped while waiting for the database")
            return
    except PostgitError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"cannot use the database at DATABASE_URL: {first_line(exc)}")
    except KeyboardInterrupt:
        return
    if settings.workers > 1:
        _serve_with_workers(settings, level, args.access_log)
        return
    app = create_app(settings, registry)
    _freeze_what_lives_for_ever()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
    )
    server = Server(app, config, settings)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it found at
    # start; a no-op handler there lets a clean shutdown end with exit status 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _after_shutdown)
    server.run()
    if not server.started:
        sys.exit(3)


def _serve_with_workers(settings: ServerSettings, level: str, access_log: bool) -> None:
    """Serve with ``settings.workers`` processes sharing one listening socket (uvicorn's supervisor).

    Each worker process builds the application itself (:func:`worker_app`); SIGTERM or Ctrl-C stops them all.
    """
    os.environ[_LOG_LEVEL_VARIABLE] = level  # the worker processes are spawned with this environment
    config = uvicorn.Config(
        "postgit_server.main:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # a worker process must answer the supervisor's health check within this, starting included: on a busy
        # machine importing the application alone can take longer than uvicorn's 5 s
        timeout_worker_healthcheck=30,
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
    sockets = [config.bind_socket()]
    log.info(
        "postgit-server listening on http://%s:%d with %d worker processes (API docs: %s/docs; auth %s)",
        settings.host,
        settings.port,
        settings.workers,
        settings.url,
        "on" if settings.auth_required else "off",
    )
    Multiprocess(config, sockets=sockets).run()


def worker_app() -> FastAPI:
    """The application of one worker process of a server with ``POSTGIT_SERVER_WORKERS`` above 1."""
    _configure_logging(os.environ.get(_LOG_LEVEL_VARIABLE, "INFO"))
    app = create_app(ServerSettings.from_env())
    _freeze_what_lives_for_ever()
    return app


def _freeze_what_lives_for_ever() -> None:
    """Keep what is imported and built so far out of the garbage collector's full collections.

    The modules, plugins, the app and its schemas live as long as the process; a full collection would otherwise
    walk them again and again while requests are served.
    """
    gc.freeze()


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if level != "DEBUG":
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # our own line says where we listen
        # one warning per failed reconnection attempt; the server's DatabaseWatch logs each outage once instead
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


async def _wait_for_database(settings: ServerSettings) -> bool:
    """Migrate the schema once the database can be reached; False when SIGTERM or SIGINT came first."""
    waiting = asyncio.current_task()
    assert waiting is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, waiting.cancel)
    try:
        await migrate_when_reachable(settings, DatabaseWatch(log))
    except asyncio.CancelledError:
        return False
    return True


def _after_shutdown(signum: int, frame: object) -> None:
    """Nothing left to do: uvicorn has already shut down."""


def _fail(message: str) -> None:
    print(f"postgit-server: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
