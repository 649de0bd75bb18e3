"""pst / postgit: Postgit's command line, an HTTP client of the Postgit server, and its Python client."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("postgit-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

from typing import TYPE_CHECKING, Any

from postgit_cli.errors import (
    CliError,
    Conflict,
    Forbidden,
    InstanceCancelled,
    InstanceFailed,
    InvalidDefinition,
    InvalidRequest,
    NotFound,
    ResultTimeout,
    ServerUnavailable,
    Unauthorized,
)

__all__ = [
    "AsyncClient",
    "AsyncInstanceHandle",
    "CliError",
    "Client",
    "Conflict",
    "Forbidden",
    "InstanceCancelled",
    "InstanceFailed",
    "InstanceHandle",
    "InvalidDefinition",
    "InvalidRequest",
    "NotFound",
    "ResultTimeout",
    "ServerUnavailable",
    "Unauthorized",
    "__version__",
]

_CLIENTS = {"AsyncClient", "AsyncInstanceHandle", "Client", "InstanceHandle"}

if TYPE_CHECKING:
    from postgit_cli.api import AsyncClient, AsyncInstanceHandle, Client, InstanceHandle


def __getattr__(name: str) -> Any:
    # The clients bring httpx: imported when first asked for, so that ``pst`` decides what httpx loads (main.py).
    if name in _CLIENTS:
        from postgit_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'postgit_cli' has no attribute {name!r}")
