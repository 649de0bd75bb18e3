"""Settings from the environment. The only module of postgit-core that reads ``os.environ``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from postgit.definition import QUEUE_NAME, QUEUE_NAME_RULE
from postgit.durations import parse_duration
from postgit.errors import PostgitError

POOL_MAX_VARIABLE = "POSTGIT_DB_POOL_MAX"
PREPARED_STATEMENTS_VARIABLE = "POSTGIT_DB_PREPARED_STATEMENTS"
LISTEN_URL_VARIABLE = "POSTGIT_LISTEN_DATABASE_URL"
DEFAULT_WORKER_POOL_MAX = 6
MAX_POOL_SIZE = 1000
"""A sanity bound on ``POSTGIT_DB_POOL_MAX``: PostgreSQL's own default ``max_connections`` is 100."""
METRICS_PORT_VARIABLE = "POSTGIT_METRICS_PORT"
QUEUES_VARIABLE = "POSTGIT_QUEUES"
EVENTS_KEEP_VARIABLE = "POSTGIT_EVENTS_KEEP"
DEFAULT_EVENTS_KEEP = 1000
MIN_EVENTS_KEEP = 10
RETENTION_VARIABLE = "POSTGIT_RETENTION"
DEFAULT_RETENTION_SECONDS = 30 * 86400.0
KEEP_FOREVER = frozenset({"off", "never", "forever"})


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker process runs.

    Attributes:
        database_url: ``DATABASE_URL``.
        concurrency: ``POSTGIT_WORKER_CONCURRENCY``, instances in flight at once (one whose last write is being
            committed no longer counts).
        lease_seconds: ``POSTGIT_LEASE_SECONDS``, how long a claim holds an instance without renewal.
        poll_seconds: ``POSTGIT_POLL_SECONDS``, the fallback poll when no NOTIFY arrives.
        shutdown_grace_seconds: ``POSTGIT_SHUTDOWN_GRACE_SECONDS``, how long SIGTERM waits for running steps.
        pool_max_size: ``POSTGIT_DB_POOL_MAX``, connections the worker's pool opens at most (its LISTEN connection
            is one more).
        retention_seconds: ``POSTGIT_RETENTION``, how long finished instances are kept; None keeps them forever.
        retention_interval_seconds: how often the worker deletes what is past its retention (not an environment
            setting).
        prepared_statements: ``POSTGIT_DB_PREPARED_STATEMENTS``, whether the pool's connections prepare the
            statements they run often (off behind a pooler that cannot keep them).
        listen_database_url: ``POSTGIT_LISTEN_DATABASE_URL``, where the LISTEN connection goes; None for
            ``database_url`` (see :attr:`listen_url`).
        metrics_port: ``POSTGIT_METRICS_PORT``, where the worker serves Prometheus metrics (``/metrics``); None:
            it serves none.
        queues: ``POSTGIT_QUEUES``, the queues whose steps the worker runs (``default`` stands for the steps that
            name no queue); None: every queue.
        events_keep: ``POSTGIT_EVENTS_KEEP``, how many events of an instance are kept at most (its first and its
            latest); the ones between are replaced by one ``events_compacted`` event. None: every event is kept.
    """

    database_url: str
    concurrency: int = 100
    lease_seconds: float = 30.0
    poll_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0
    pool_max_size: int = DEFAULT_WORKER_POOL_MAX
    retention_seconds: float | None = DEFAULT_RETENTION_SECONDS
    retention_interval_seconds: float = 60.0
    prepared_statements: bool = True
    listen_database_url: str | None = None
    metrics_port: int | None = None
    queues: frozenset[str] | None = None
    events_keep: int | None = DEFAULT_EVENTS_KEEP

    @property
    def listen_url(self) -> str:
        """The URL of the LISTEN connection: ``listen_database_url``, else ``database_url``."""
        return self.listen_database_url or self.database_url

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
            retention_seconds=retention_from_env(),
            prepared_statements=prepared_statements_from_env(),
            listen_database_url=os.environ.get(LISTEN_URL_VARIABLE) or None,
            metrics_port=port_from_env(METRICS_PORT_VARIABLE),
            queues=queues_from_env(),
            events_keep=events_keep_from_env(),
        )


def queues_from_env() -> frozenset[str] | None:
    """``POSTGIT_QUEUES``: the comma-separated queues a worker serves; None (every queue) when unset or empty.

    Raises:
        PostgitError: naming the variable when a name is empty or not a valid queue name.
    """
    raw = os.environ.get(QUEUES_VARIABLE)
    if raw is None or raw.strip() == "":
        return None
    names = [part.strip() for part in raw.split(",")]
    for name in names:
        if not name:
            raise PostgitError(f"{QUEUES_VARIABLE}={raw!r} has an empty queue name: list names separated by commas")
        if not QUEUE_NAME.fullmatch(name):
            raise PostgitError(f"{QUEUES_VARIABLE}={raw!r}: invalid queue name {name!r}; use {QUEUE_NAME_RULE}")
    return frozenset(names)


def events_keep_from_env() -> int | None:
    """``POSTGIT_EVENTS_KEEP``: the most events kept per instance (at least 10), or ``off`` to keep them all.

    Raises:
        PostgitError: naming the variable when its value is neither off nor a whole number of at least 10.
    """
    raw = os.environ.get(EVENTS_KEEP_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_EVENTS_KEEP
    if raw.lower() in KEEP_FOREVER:
        return None
    keep = whole_number_from_env(EVENTS_KEEP_VARIABLE, DEFAULT_EVENTS_KEEP)
    if keep < MIN_EVENTS_KEEP:
        raise PostgitError(f"{EVENTS_KEEP_VARIABLE}={raw!r} must be at least {MIN_EVENTS_KEEP} (off keeps every event)")
    return keep


def port_from_env(name: str) -> int | None:
    """The environment variable ``name`` as a TCP port (1 to 65535), or None when unset or empty.

    Raises:
        PostgitError: naming the variable when its value is not such a port.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    port = whole_number_from_env(name, 1)
    if port > 65535:
        raise PostgitError(f"{name}={raw!r} must be a port number, 1 to 65535")
    return port


def retention_from_env() -> float | None:
    """``POSTGIT_RETENTION``: how long finished instances are kept (``30d``, ``12h``; ``off`` keeps them forever).

    Raises:
        PostgitError: naming the variable when its value is not a duration greater than zero.
    """
    raw = os.environ.get(RETENTION_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_RETENTION_SECONDS
    if raw.lower() in KEEP_FOREVER:
        return None
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise PostgitError(f"{RETENTION_VARIABLE}: {exc}, or off") from None
    if seconds <= 0:
        raise PostgitError(f"{RETENTION_VARIABLE}={raw!r} must be greater than zero (off keeps instances forever)")
    return seconds


def optional_database_url_from_env() -> str | None:
    """``DATABASE_URL``, or None when it is not set."""
    return os.environ.get("DATABASE_URL") or None


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


_SWITCH_VALUES = {
    **dict.fromkeys(("on", "true", "yes", "1"), True),
    **dict.fromkeys(("off", "false", "no", "0"), False),
}
"""What a variable that turns something on or off may be set to (case-insensitive)."""


def prepared_statements_from_env() -> bool:
    """``POSTGIT_DB_PREPARED_STATEMENTS``: ``on`` (the default) or ``off``.

    Off when ``DATABASE_URL`` goes through a pooler that hands one client's transactions to different server
    connections without keeping prepared statements (PgBouncer before 1.22 in transaction mode): psycopg then never
    prepares a statement (``prepare_threshold=None``).

    Raises:
        PostgitError: naming the variable when its value is neither on nor off.
    """
    raw = os.environ.get(PREPARED_STATEMENTS_VARIABLE)
    if raw is None or raw.strip() == "":
        return True
    value = _SWITCH_VALUES.get(raw.strip().lower())
    if value is None:
        raise PostgitError(f"{PREPARED_STATEMENTS_VARIABLE}={raw!r} must be on or off")
    return value


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


def traces_exporters_from_env() -> list[str]:
    """The OpenTelemetry span exporters the standard variables ask for; empty when they ask for none.

    ``OTEL_TRACES_EXPORTER`` (comma-separated names, ``none`` for none); unset, ``otlp`` when an OTLP endpoint is
    set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); ``OTEL_SDK_DISABLED=true`` turns
    them all off.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if raw:
        return [name for name in (part.strip() for part in raw.split(",")) if name and name != "none"]
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ["otlp"]
    return []


def otel_service_name(default: str) -> str | None:
    """``default`` as the ``service.name`` of traces, or None when ``OTEL_SERVICE_NAME`` names the service."""
    return None if os.environ.get("OTEL_SERVICE_NAME") else default


SECRET_PREFIX = "POSTGIT_SECRET_"  # noqa: S105 - a variable-name prefix, not a password


def secret_value(name: str) -> str | None:
    """The value of the secret ``name`` (``POSTGIT_SECRET_<name>``), or None when it is not set."""
    return os.environ.get(SECRET_PREFIX + name)
