"""Settings from the environment. The only module of postgit-core that reads ``os.environ``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from postgit.errors import PostgitError


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker process runs.

    Attributes:
        database_url: ``DATABASE_URL``.
        concurrency: ``POSTGIT_WORKER_CONCURRENCY``, instances in flight at once.
        lease_seconds: ``POSTGIT_LEASE_SECONDS``, how long a claim holds an instance without renewal.
        poll_seconds: ``POSTGIT_POLL_SECONDS``, the fallback poll when no NOTIFY arrives.
        shutdown_grace_seconds: ``POSTGIT_SHUTDOWN_GRACE_SECONDS``, how long SIGTERM waits for running steps.
    """

    database_url: str
    concurrency: int = 100
    lease_seconds: float = 30.0
    poll_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> WorkerSettings:
        """Read the settings; PostgitError naming the variable when one is missing or malformed."""
        return cls(
            database_url=database_url_from_env(),
            concurrency=_whole_number("POSTGIT_WORKER_CONCURRENCY", 100),
            lease_seconds=_number("POSTGIT_LEASE_SECONDS", 30.0),
            poll_seconds=_number("POSTGIT_POLL_SECONDS", 5.0),
            shutdown_grace_seconds=_number("POSTGIT_SHUTDOWN_GRACE_SECONDS", 10.0),
        )


def database_url_from_env() -> str:
    """``DATABASE_URL``, or a PostgitError saying it must be set."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise PostgitError("DATABASE_URL is not set: point it at PostgreSQL, e.g. postgresql://user@host:5432/db")
    return url


def _whole_number(name: str, default: int) -> int:
    value = _number(name, default)
    if value != int(value):
        raise PostgitError(f"{name}={os.environ[name]!r} must be a whole number")
    return int(value)


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise PostgitError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise PostgitError(f"{name}={raw!r} must be greater than zero")
    return value


SECRET_PREFIX = "POSTGIT_SECRET_"  # noqa: S105 - a variable-name prefix, not a password


def secret_value(name: str) -> str | None:
    """The value of the secret ``name`` (``POSTGIT_SECRET_<name>``), or None when it is not set."""
    return os.environ.get(SECRET_PREFIX + name)
