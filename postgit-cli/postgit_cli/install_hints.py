"""How to install what a command needs, as the README's "Installing from a checkout" says.

Postgit's packages are installed from a clone of its repository, from the package folders or from the workspace's
wheels built into one folder: a bare ``pip install postgit-core`` finds nothing. Each hint names both lines, which
the README lists and the tests install.
"""

from __future__ import annotations

BUILD_WHEELS = "uv build --all-packages --wheel --out-dir dist"
"""Builds every workspace package's wheel into ``dist/`` (run at the top of a Postgit checkout)."""


def install_hint(requirement: str, folders: str) -> str:
    """One line: install ``requirement`` from a checkout's ``folders``, or from the wheels built into ``dist``."""
    return (
        f"pip install {folders} in a Postgit checkout, or pip install --find-links dist {requirement} "
        f"with the wheels built there by {BUILD_WHEELS}"
    )


SDK = install_hint("'postgit-cli[sdk]'", "'./postgit-cli[sdk]' ./postgit-core")
"""The client and the SDK (``postgit-core``), to deploy workflows written in Python."""
WORKER = install_hint("postgit-builtins", "./postgit-core ./plugins/postgit-builtins")
"""``postgit-worker`` and the built-in node types."""
SERVER = install_hint("postgit-server", "./postgit-server ./postgit-core ./plugins/postgit-builtins")
"""``postgit-server``, with the engine and the built-in node types."""
DEV = install_hint(
    "'postgit-cli[dev]'", "'./postgit-cli[dev]' ./postgit-server ./postgit-core ./plugins/postgit-builtins"
)
"""All that ``pst dev`` needs: the server, a worker and an embedded PostgreSQL."""
