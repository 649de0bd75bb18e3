"""Server settings, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from postgit.errors import PostgitError
from postgit.mail import SmtpConfig, SmtpUrlError
from postgit.settings import (
    LISTEN_URL_VARIABLE,
    database_url_from_env,
    pool_max_size_from_env,
    positive_number_from_env,
    prepared_statements_from_env,
    whole_number_from_env,
)
from postgit_server.roles import ApiToken, all_tokens, named_tokens_from_env

DEFAULT_PORT = 3000
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a server is meant to be reachable; POSTGIT_HOST narrows it
DEFAULT_POOL_MAX = 10
DEFAULT_DB_TIMEOUT_SECONDS = 5.0
MAX_WORKERS = 64
WORKERS_VARIABLE = "POSTGIT_SERVER_WORKERS"


@dataclass(frozen=True)
class ServerSettings:
    """How the API server runs.

    Attributes:
        database_url: ``DATABASE_URL``.
        api_token: ``POSTGIT_API_TOKEN``; when set, every route but ``/health`` needs ``Authorization: Bearer``.
        api_tokens: named tokens with roles, from ``POSTGIT_API_TOKENS`` and ``POSTGIT_API_TOKENS_FILE``
            (see :mod:`postgit_server.roles`); with any token set, every route but ``/health`` needs one.
        host: ``POSTGIT_HOST``, the address to listen on.
        port: ``PORT``, the port to listen on.
        events_poll_seconds: how often an event stream looks for new events.
        pool_min_size: connections the pool keeps open (at most ``pool_max_size``).
        pool_max_size: ``POSTGIT_DB_POOL_MAX``, connections the pool opens at most.
        db_timeout_seconds: ``POSTGIT_DB_TIMEOUT_SECONDS``, how long a request waits for a connection, and then
            for the database's answer, before the server answers 503.
        prepared_statements: ``POSTGIT_DB_PREPARED_STATEMENTS``, whether the pool's connections prepare the
            statements they run often (off behind a pooler that cannot keep them).
        workers: ``POSTGIT_SERVER_WORKERS``, the processes that serve requests on the one port (each with its own
            pool).
        smtp: ``POSTGIT_SMTP_URL``, the SMTP server that mail parked in the outbox is sent through
            (``POST /outbox/send``); None: it stays parked.
        listen_database_url: ``POSTGIT_LISTEN_DATABASE_URL``, where the connection that listens for changes (the
            console's live views) goes; None for ``database_url`` (see :attr:`listen_url`).
    """

    database_url: str
    api_token: str | None = None
    api_tokens: tuple[ApiToken, ...] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    events_poll_seconds: float = 0.15
    pool_min_size: int = 2
    pool_max_size: int = DEFAULT_POOL_MAX
    db_timeout_seconds: float = DEFAULT_DB_TIMEOUT_SECONDS
    prepared_statements: bool = True
    workers: int = 1
    smtp: SmtpConfig | None = None
    listen_database_url: str | None = None

    @classmethod
    def from_env(cls) -> ServerSettings:
        """Read the settings; PostgitError naming the variable when one is missing or malformed."""
        return cls(
            database_url=database_url_from_env(),
            api_token=os.environ.get("POSTGIT_API_TOKEN") or None,
            api_tokens=named_tokens_from_env(),
            host=os.environ.get("POSTGIT_HOST") or DEFAULT_HOST,
            port=_port(os.environ.get("PORT")),
            pool_max_size=pool_max_size_from_env(DEFAULT_POOL_MAX),
            db_timeout_seconds=positive_number_from_env("POSTGIT_DB_TIMEOUT_SECONDS", DEFAULT_DB_TIMEOUT_SECONDS),
            prepared_statements=prepared_statements_from_env(),
            workers=_workers(),
            smtp=_smtp(),
            listen_database_url=os.environ.get(LISTEN_URL_VARIABLE) or None,
        )

    @property
    def listen_url(self) -> str:
        """The URL of the LISTEN connection: ``listen_database_url``, else ``database_url``."""
        return self.listen_database_url or self.database_url

    @property
    def tokens(self) -> tuple[ApiToken, ...]:
        """Every token the server accepts: ``POSTGIT_API_TOKEN`` (an admin's) and the named ones."""
        return all_tokens(self.api_token, self.api_tokens)

    @property
    def auth_required(self) -> bool:
        """Whether requests need a token (the server has at least one)."""
        return bool(self.api_token or self.api_tokens)

    @property
    def url(self) -> str:
        """The base URL the server answers on, as a client on this machine would reach it."""
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def _port(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise PostgitError(f"PORT={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise PostgitError(f"PORT={raw!r} must be between 1 and 65535")
    return port


def _smtp() -> SmtpConfig | None:
    try:
        return SmtpConfig.from_env()
    except SmtpUrlError as exc:
        raise PostgitError(str(exc)) from None


def _workers() -> int:
    workers = whole_number_from_env(WORKERS_VARIABLE, 1)
    if workers > MAX_WORKERS:
        raise PostgitError(f"{WORKERS_VARIABLE}={os.environ[WORKERS_VARIABLE]!r} must be at most {MAX_WORKERS}")
    return workers
