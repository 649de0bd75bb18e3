"""Load node-type plugins from the ``postgit`` entry-point group.

Each entry point is loaded on its own and registered under ``"<distribution>:<entry point>"``, so two packages
that happen to use the same entry-point name cannot silently shadow each other (pluggy's own loader skips a name
already registered). A plugin that fails to import, or that provides no hook implementation (a hook function
without ``@postgit.hookimpl``, a misspelt hook name), is reported with its package name and version.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

import pluggy

from postgit import hookspecs
from postgit.errors import PluginError
from postgit.nodes import NodeType
from postgit.registry import NodeRegistry, Provenance, RegisteredNodeType

ENTRY_POINT_GROUP = "postgit"


def load_registry(extra: Iterable[object] = ()) -> NodeRegistry:
    """Load every installed plugin (plus ``extra`` plugin objects) and build the node registry.

    Raises:
        PluginError: a plugin does not import, implements a hook that does not exist, returns something that
            is not a NodeType, or defines a node type another plugin defines too.
    """
    pm = pluggy.PluginManager("postgit")
    pm.add_hookspecs(hookspecs)
    provenance: dict[str, Provenance] = {}
    for ep in sorted(_entry_points(), key=lambda ep: (_dist_name(ep) or "", ep.name)):
        name = f"{_dist_name(ep)}:{ep.name}"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{ep.name}' of package {_dist_name(ep)} {_dist_version(ep)} "
                f"({ep.value}) failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        provenance[name] = Provenance(plugin=name, package=_dist_name(ep), version=_dist_version(ep))
        _register(pm, plugin, provenance[name])
        if not pm.get_hookcallers(plugin):
            raise PluginError(
                f"plugin '{ep.name}' of package {_dist_name(ep)} {_dist_version(ep)} ({ep.value}) "
                f"provides no hook implementation: {_missing_hook_hint(plugin)}"
            )
    for index, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", None) or f"extra-{index}"
        provenance[name] = Provenance(plugin=name, package=None, version=None)
        _register(pm, plugin, provenance[name])
        if not pm.get_hookcallers(plugin):
            raise PluginError(f"plugin {name} provides no hook implementation: {_missing_hook_hint(plugin)}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        origin = provenance.get(pm.get_name(exc.plugin) or "")
        where = _describe(origin) if origin else repr(exc.plugin)
        raise PluginError(f"{where} implements a hook that does not exist: {exc}") from exc
    return NodeRegistry(_collect(pm, provenance))


def _collect(pm: pluggy.PluginManager, provenance: dict[str, Provenance]) -> list[RegisteredNodeType]:
    entries: list[RegisteredNodeType] = []
    for impl in pm.hook.postgit_node_types.get_hookimpls():
        origin = provenance[impl.plugin_name]
        try:
            node_types = list(impl.function())
        except Exception as exc:
            raise PluginError(f"postgit_node_types() of {origin.plugin} raised {type(exc).__name__}: {exc}") from exc
        for node_type in node_types:
            if not isinstance(node_type, NodeType):
                raise PluginError(
                    f"postgit_node_types() of {origin.plugin} returned {node_type!r}, not a postgit.NodeType"
                )
            entries.append(RegisteredNodeType(node_type, origin))
    return entries


def _missing_hook_hint(plugin: object) -> str:
    """What a plugin that registered no hook implementation most likely got wrong."""
    hooks = sorted(name for name in dir(hookspecs) if name.startswith("postgit_"))
    defined = [name for name in dir(plugin) if name.startswith("postgit_") and callable(getattr(plugin, name, None))]
    unmarked = [name for name in defined if name in hooks]
    if unmarked:
        return f"{unmarked[0]}() is not decorated with @postgit.hookimpl"
    expected = " or ".join(f"{hook}()" for hook in hooks)
    if defined:
        return f"{defined[0]}() is not a Postgit hook; did you mean {expected}?"
    return f"define {expected} decorated with @postgit.hookimpl"


def _register(pm: pluggy.PluginManager, plugin: object, origin: Provenance) -> None:
    try:
        pm.register(plugin, name=origin.plugin)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"{_describe(origin)} cannot be registered: {exc}") from exc


def _describe(origin: Provenance) -> str:
    if origin.package:
        return f"plugin {origin.plugin} (package {origin.package} {origin.version})"
    return f"plugin {origin.plugin}"


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _dist_name(ep: EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def _dist_version(ep: EntryPoint) -> str | None:
    return ep.dist.version if ep.dist is not None else None
