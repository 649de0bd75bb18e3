"""The plugin contract: the hooks a Postgit plugin may implement.

A plugin is a module (or object) registered through the ``postgit`` entry-point group. It implements hooks by
defining functions of the same name decorated with ``@postgit.hookimpl``. A plugin that implements none of them
(the decorator forgotten, a hook's name misspelt) stops the server or worker loading it, naming its package.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from postgit.nodes import NodeType

hookspec = pluggy.HookspecMarker("postgit")
hookimpl = pluggy.HookimplMarker("postgit")


@hookspec
def postgit_node_types() -> Sequence[NodeType]:  # type: ignore[empty-body]
    """Return the node types this plugin provides.

    Called once when a server or worker starts and loads its plugins. Results of all plugins are combined; two
    node types with the same name, from any two plugins, stop the start-up with an error naming both packages.
    An exception raised here is reported with the plugin's package name and version.
    """
