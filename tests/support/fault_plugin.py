"""The fault tests' plugin (``tests/fixtures/postgit-blocking-plugin``), for worker processes and in-process use."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PLUGIN = Path(__file__).parents[1] / "fixtures" / "postgit-blocking-plugin"


def plugin_path(tmp_path: Path) -> str:
    """A ``PYTHONPATH`` under which the fixture plugin is an installed distribution with a ``postgit`` entry point."""
    dist_info = tmp_path / "site" / "postgit_blocking_plugin-0.1.0.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: postgit-blocking-plugin\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text("[postgit]\nblocks = postgit_blocking_plugin\n")
    return f"{dist_info.parent}:{PLUGIN}"


def load_plugin() -> ModuleType:
    """The plugin's module, for ``load_registry(extra=[...])`` in the test's own process."""
    spec = importlib.util.spec_from_file_location(
        "postgit_blocking_plugin", PLUGIN / "postgit_blocking_plugin" / "__init__.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
