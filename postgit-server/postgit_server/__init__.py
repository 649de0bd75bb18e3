"""Postgit's REST API server: FastAPI on uvicorn, on top of :class:`postgit.service.WorkflowService`."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("postgit-server")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
