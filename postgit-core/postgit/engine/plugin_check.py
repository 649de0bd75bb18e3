"""A worker's warnings about workflow versions that were validated against other plugin versions than it runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from postgit.db.store import Store
from postgit.plugin_versions import node_type_differs, registry_versions
from postgit.registry import NodeRegistry

log = logging.getLogger("postgit.worker")


class PluginVersionCheck:
    """Compares the plugin versions a deploy recorded with those this worker runs, and logs each difference."""

    def __init__(self, registry: NodeRegistry):
        self.versions = registry_versions(registry)
        """What this worker runs: ``{node type: {"package", "version"}}``."""

    def check_workflow(self, row: Mapping[str, Any]) -> None:
        """Warn about each node type of a workflow version (a ``workflows`` row) deployed against another version."""
        for node_type, expected in sorted((row.get("plugins") or {}).items()):
            running = self.versions.get(node_type)
            if node_type_differs(expected, running):
                assert running is not None
                log.warning(
                    "plugin version mismatch: workflow '%s' version %s was validated against %s %s for node type %s; "
                    "this worker runs %s %s",
                    row["name"],
                    row["version"],
                    expected.get("package"),
                    expected.get("version"),
                    node_type,
                    running["package"],
                    running["version"],
                )

    async def check_deployed(self, store: Store) -> None:
        """At start: one warning per node type whose latest deployed workflow versions expect another version."""
        expected_by: dict[tuple[str, str, str], list[str]] = {}
        for row in await store.latest_workflow_plugins():
            for node_type, expected in (row["plugins"] or {}).items():
                if node_type_differs(expected, self.versions.get(node_type)):
                    key = (node_type, str(expected.get("package")), str(expected.get("version")))
                    expected_by.setdefault(key, []).append(f"'{row['name']}' version {row['version']}")
        for (node_type, package, version), workflows in sorted(expected_by.items()):
            running = self.versions[node_type]
            more = f" and {len(workflows) - 1} more" if len(workflows) > 1 else ""
            log.warning(
                "plugin version mismatch: node type %s: this worker runs %s %s, but workflow %s%s was validated "
                "against %s %s",
                node_type,
                running["package"],
                running["version"],
                workflows[0],
                more,
                package,
                version,
            )
