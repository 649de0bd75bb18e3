"""Which package and version provides each node type, and where a worker's differ from those a deploy checked.

A server validates a definition against the node types it has installed; the worker that runs the steps may have
another version of the same plugin, whose params or behaviour differ. Both record what they have, as
``{node type: {"package", "version"}}``: a worker in its ``workers`` row, a deploy in its ``workflows`` row. Comparing
them is what ``pst plugins ls``, deploys, starts and the worker's log warn with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from postgit.registry import NodeRegistry

PluginVersions = dict[str, dict[str, str]]
"""``{node type: {"package": distribution, "version": its version}}``, for node types from installed packages."""


def registry_versions(registry: NodeRegistry, node_types: Collection[str] | None = None) -> PluginVersions:
    """The package and version of each node type of ``registry`` (only those in ``node_types`` when given).

    Node types registered in-process, without a package, have no version and are left out.
    """
    versions: PluginVersions = {}
    for name, entry in registry.items():
        package, version = entry.provenance.package, entry.provenance.version
        if package and version and (node_types is None or name in node_types):
            versions[name] = {"package": package, "version": version}
    return versions


@dataclass(frozen=True)
class VersionMismatch:
    """A worker that runs another package or version of a node type than the one a definition was checked with."""

    node_type: str
    worker: str
    package: str
    version: str
    expected_package: str
    expected_version: str

    def message(self, against: str = "the server validated against") -> str:
        """One line: which node type, which worker runs what, and what was expected."""
        expected = (
            self.expected_version
            if self.package == self.expected_package
            else f"{self.expected_package} {self.expected_version}"
        )
        return (
            f"node type {self.node_type}: worker {self.worker} runs {self.package} {self.version}, {against} {expected}"
        )


def mismatches(
    expected: Mapping[str, Mapping[str, str]],
    workers: Iterable[Mapping[str, Any]],
    node_types: Collection[str] | None = None,
) -> list[VersionMismatch]:
    """Each live worker's node type (of ``node_types``, or all) whose package or version differs from ``expected``.

    ``workers`` are rows of the workers table (``id`` and ``plugins``); a worker of an earlier release, which
    records no versions, is not compared.
    """
    found = []
    for worker in workers:
        running = worker.get("plugins") or {}
        for node_type in sorted(expected):
            if node_type_differs(expected.get(node_type), running.get(node_type)) and (
                node_types is None or node_type in node_types
            ):
                want, have = expected[node_type], running[node_type]
                found.append(
                    VersionMismatch(
                        node_type=node_type,
                        worker=str(worker["id"]),
                        package=str(have.get("package")),
                        version=str(have.get("version")),
                        expected_package=str(want.get("package")),
                        expected_version=str(want.get("version")),
                    )
                )
    return found


def node_type_differs(expected: Mapping[str, str] | None, running: Mapping[str, str] | None) -> bool:
    """Whether both are known and name another package or version."""
    if not expected or not running:
        return False
    return (expected.get("package"), expected.get("version")) != (running.get("package"), running.get("version"))
