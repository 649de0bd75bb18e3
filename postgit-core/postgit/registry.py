"""NodeRegistry: every installed node type, with where it came from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from postgit.errors import PluginError
from postgit.nodes import NodeType


@dataclass(frozen=True)
class Provenance:
    """Which plugin provided a node type: registered plugin name, distribution and its version."""

    plugin: str
    package: str | None
    version: str | None


@dataclass(frozen=True)
class RegisteredNodeType:
    """A node type together with its provenance."""

    node_type: NodeType
    provenance: Provenance

    def describe(self) -> dict[str, str | None]:
        """The listing row shared by the API and the CLI."""
        return {
            "name": self.node_type.name,
            "package": self.provenance.package,
            "version": self.provenance.version,
            "plugin": self.provenance.plugin,
            "description": self.node_type.description,
        }


class NodeRegistry(Mapping[str, RegisteredNodeType]):
    """An immutable mapping from node-type name to the registered node type."""

    def __init__(self, entries: list[RegisteredNodeType]):
        by_name: dict[str, RegisteredNodeType] = {}
        for entry in entries:
            name = entry.node_type.name
            if name in by_name:
                first = by_name[name].provenance
                raise PluginError(
                    f"node type '{name}' is defined twice: by {_where(first)} and by {_where(entry.provenance)}"
                )
            by_name[name] = entry
        self._by_name = dict(sorted(by_name.items()))

    def __getitem__(self, name: str) -> RegisteredNodeType:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def node_type(self, name: str) -> NodeType:
        """The node type called ``name``; KeyError if it is not installed."""
        return self._by_name[name].node_type

    def describe(self) -> list[dict[str, str | None]]:
        """One listing row per node type, sorted by name."""
        return [entry.describe() for entry in self._by_name.values()]


def _where(provenance: Provenance) -> str:
    if provenance.package:
        return f"package {provenance.package} {provenance.version} (plugin {provenance.plugin})"
    return f"plugin {provenance.plugin}"
