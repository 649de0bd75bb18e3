"""pst / postgit: Postgit's command line, an HTTP client of the Postgit server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("postgit-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
