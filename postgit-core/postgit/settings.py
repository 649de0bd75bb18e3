"""Settings from the environment. The only module of postgit-core that reads ``os.environ``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from postgit.errors import PostgitError

POOL_MAX_VARIABLE = "POSTGIT_DB_POOL_MAX"
DEFAULT_WORKER_POOL_MAX = 6
MAX_POOL_SIZE = 1000
"""A sanity bound on ``POSTGIT_DB_POOL_MAX``: PostgreSQL's own default ``max_connections`` is 100."""


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker process runs.

    Attributes:
        database_url: ``DATABASE_URL``.
        concurrency: ``POSTGIT_WORKER_CONCURRENCY``, instances in flight at once.
        lease_seconds: ``POSTGIT_LEASE_SECONDS``, how long a claim holds an instance without renewal.
        poll_seconds: ``POSTGIT_POLL_SECONDS``, the fallback poll when no NOTIFY arrives.
        shutdown_grace_seconds: ``POSTGIT_SHUTDOWN_GRACE_SECONDS``, how long SIGTERM waits for running steps.
        pool_max_size: ``POSTGIT_DB_POOL_MAX``, connections the worker's pool opens at most (its LISTEN connection
            is one more).
    """

    database_url: str
    concurrency: int = 100
    lease_seconds: float = 30.0
    poll_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0
    pool_max_size: int = DEFAULT_WORKER_POOL_MAX

    @classmethod
    def from_env(cls) -> WorkerSettings:
        """Read the settings; PostgitError naming the variable when one is missing or malformed."""
        return cls(
            database_url=database_url_from_env(),
            concurrency=whole_number_from_env("POSTGIT_WORKER_CONCURRENCY", 100),
            lease_seconds=positive_number_from_env("POSTGIT_LEASE_SECONDS", 30.0),
            poll_seconds=positive_number_from_env("POSTGIT_POLL_SECONDS", 5.0),
            shutdown_grace_seconds=positive_number_from_env("POSTGIT_SHUTDOWN_GRACE_SECONDS", 10.0),
            pool_max_size=pool_max_size_from_env(DEFAULT_WORKER_POOL_MAX),
        )


def database_url_from_env() -> str:
    """``DATABASE_URL``, or a PostgitError saying it must be set."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise PostgitError("DATABASE_URL is not set: point it at PostgreSQL, e.g. postgresql://user@host:5432/db")
    return url


def pool_max_size_from_env(default: int) -> int:
    """``POSTGIT_DB_POOL_MAX``: the most connections a server's or worker's pool opens (1 to 1000).

    Raises:
        PostgitError: naming the variable and saying what a valid value is.
    """
    size = whole_number_from_env(POOL_MAX_VARIABLE, default)
    if size > MAX_POOL_SIZE:
        raise PostgitError(f"{POOL_MAX_VARIABLE}={os.environ[POOL_MAX_VARIABLE]!r} must be at most {MAX_POOL_SIZE}")
    return size


def whole_number_from_env(name: str, default: int) -> int:
    """The environment variable ``name`` as a whole number greater than zero, or ``default`` when unset or empty.

    Raises:
        PostgitError: naming the variable when its value is not such a number.
    """
    value = positive_number_from_env(name, default)
    if value != int(value):
        raise PostgitError(f"{name}={os.environ[name]!r} must be a whole number")
    return int(value)


def positive_number_from_env(name: str, default: float) -> float:
    """The environment variable ``name`` as a finite number greater than zero, or ``default`` when unset or empty.

    Raises:
        PostgitError: naming the variable when its value is not such a number.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise PostgitError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise PostgitError(f"{name}={raw!r} is not a finite number")
    if value <= 0:
        raise PostgitError(f"{name}={raw!r} must be greater than zero")
    return value


SECRET_PREFIX = "POSTGIT_SECRET_"  # noqa: S105 - a variable-name prefix, not a password


def secret_value(name: str) -> str | None:
    """The value of the secret ``name`` (``POSTGIT_SECRET_<name>``), or None when it is not set."""
    return os.environ.get(SECRET_PREFIX + name)
