"""A distribution written straight into a folder, as an installer would lay it out, for plugin tests.

A folder holding ``<name>-<version>.dist-info`` (its ``METADATA`` and ``entry_points.txt``) and the modules is all
``importlib.metadata`` needs: put it first on ``PYTHONPATH`` (or ``sys.path``) and the distribution is installed for
that process, shadowing one of the same name installed elsewhere.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_distribution(
    site: Path, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
) -> Path:
    """Write distribution ``name`` at ``version`` into ``site``, with ``postgit`` entry points and module sources."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{entry} = {target}\n" for entry, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[postgit]\n{lines}")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site
