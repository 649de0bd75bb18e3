"""load_registry(): entry points with provenance, in-process plugins, and every way a plugin can be broken."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import version

import pytest
from pydantic import BaseModel

import postgit
from postgit.errors import PluginError
from postgit.plugins import load_registry
from postgit.registry import Provenance

NODE_TYPES_MODULE = """
from pydantic import BaseModel

import postgit


class Params(BaseModel):
    text: str = ""


def handler(ctx, params):
    return params.text


@postgit.hookimpl
def postgit_node_types():
    return [postgit.NodeType(name={name!r}, params=Params, handler=handler, description="fake")]
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a fake distribution: ``install(dist, version, {entry point: target}, {module: source})``.

    Each distribution gets a folder of its own, put first on sys.path, which is all importlib.metadata needs to
    find its ``<name>-<version>.dist-info``. Modules imported from it are dropped from sys.modules afterwards.
    """
    modules: list[str] = []

    def install(dist: str, dist_version: str, entry_points: dict[str, str], sources: dict[str, str]) -> None:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-{dist_version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {dist_version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[postgit]\n{lines}")
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        monkeypatch.syspath_prepend(site)

    yield install
    for module in modules:
        sys.modules.pop(module, None)


class EmptyParams(BaseModel):
    pass


def node_types_plugin(*names: str) -> object:
    """An in-process plugin object providing node types called ``names``."""

    class Plugin:
        @staticmethod
        @postgit.hookimpl
        def postgit_node_types():
            return [postgit.NodeType(name=name, params=EmptyParams, handler=print) for name in names]

    return Plugin()


# -- installed plugins -----------------------------------------------------------------------------------------


def test_builtins_and_the_example_plugin_come_from_their_entry_points():
    registry = load_registry()
    builtins_version = version("postgit-builtins")
    example_version = version("postgit-example-plugin")
    expected = {
        "HitEndpoint": Provenance("postgit-builtins:hit_endpoint", "postgit-builtins", builtins_version),
        "Sleep": Provenance("postgit-builtins:sleep", "postgit-builtins", builtins_version),
        "SendEmail": Provenance("postgit-builtins:send_email", "postgit-builtins", builtins_version),
        "Shout": Provenance("postgit-example-plugin:shout", "postgit-example-plugin", example_version),
    }
    for name, provenance in expected.items():
        assert registry[name].provenance == provenance
        node_type = registry.node_type(name)
        assert node_type.name == name
        assert node_type.description
        assert callable(node_type.handler)


def test_listing_rows_are_sorted_and_carry_provenance():
    rows = load_registry().describe()
    assert [row["name"] for row in rows] == sorted(row["name"] for row in rows)
    shout = next(row for row in rows if row["name"] == "Shout")
    assert shout == {
        "name": "Shout",
        "package": "postgit-example-plugin",
        "version": version("postgit-example-plugin"),
        "plugin": "postgit-example-plugin:shout",
        "description": "Upper-case a string",
    }


def test_an_installed_distribution_is_found(install):
    install(
        "postgit-fake-good",
        "1.2.3",
        {"good": "postgit_fake_good"},
        {"postgit_fake_good": NODE_TYPES_MODULE.format(name="FakeGood")},
    )
    registry = load_registry()
    assert registry["FakeGood"].provenance == Provenance("postgit-fake-good:good", "postgit-fake-good", "1.2.3")
    assert {"HitEndpoint", "Sleep", "SendEmail", "Shout"} <= set(registry)


def test_the_same_entry_point_name_in_two_packages_does_not_shadow(install):
    install(
        "postgit-fake-nap",
        "0.1",
        {"sleep": "postgit_fake_nap"},
        {"postgit_fake_nap": NODE_TYPES_MODULE.format(name="Nap")},
    )
    registry = load_registry()
    assert registry["Nap"].provenance.plugin == "postgit-fake-nap:sleep"
    assert registry["Sleep"].provenance.plugin == "postgit-builtins:sleep"


def test_an_entry_point_may_name_an_object_in_a_module(install):
    source = """
        from pydantic import BaseModel

        import postgit


        class Params(BaseModel):
            pass


        class plugin:
            @staticmethod
            @postgit.hookimpl
            def postgit_node_types():
                return [postgit.NodeType(name="Inner", params=Params, handler=print)]
        """
    install("postgit-fake-attr", "2.0", {"inner": "postgit_fake_attr:plugin"}, {"postgit_fake_attr": source})
    assert load_registry()["Inner"].provenance == Provenance("postgit-fake-attr:inner", "postgit-fake-attr", "2.0")


# -- in-process plugins ----------------------------------------------------------------------------------------


def test_extra_plugin_objects_are_added():
    registry = load_registry(extra=[node_types_plugin("InProcess", "AlsoInProcess")])
    assert registry["InProcess"].provenance == Provenance("extra-0", None, None)
    assert registry["AlsoInProcess"].provenance == Provenance("extra-0", None, None)
    assert "Shout" in registry


def test_an_extra_module_is_registered_under_its_name(install):
    install("postgit-fake-unused", "1", {}, {"postgit_fake_inproc": NODE_TYPES_MODULE.format(name="FromModule")})
    import postgit_fake_inproc

    registry = load_registry(extra=[postgit_fake_inproc])
    assert registry["FromModule"].provenance == Provenance("postgit_fake_inproc", None, None)


# -- conflicts -------------------------------------------------------------------------------------------------


def test_two_extra_plugins_defining_one_type():
    with pytest.raises(PluginError) as caught:
        load_registry(extra=[node_types_plugin("Twin"), node_types_plugin("Twin")])
    message = str(caught.value)
    assert "node type 'Twin' is defined twice" in message
    assert "plugin extra-0" in message and "plugin extra-1" in message


def test_an_extra_plugin_redefining_a_builtin():
    with pytest.raises(PluginError) as caught:
        load_registry(extra=[node_types_plugin("Sleep")])
    message = str(caught.value)
    assert "node type 'Sleep' is defined twice" in message
    assert f"package postgit-builtins {version('postgit-builtins')} (plugin postgit-builtins:sleep)" in message
    assert "plugin extra-0" in message


def test_two_installed_packages_defining_one_type(install):
    install(
        "postgit-fake-one",
        "1.0",
        {"same": "postgit_fake_one"},
        {"postgit_fake_one": NODE_TYPES_MODULE.format(name="Same")},
    )
    install(
        "postgit-fake-two",
        "2.0",
        {"same": "postgit_fake_two"},
        {"postgit_fake_two": NODE_TYPES_MODULE.format(name="Same")},
    )
    with pytest.raises(PluginError) as caught:
        load_registry()
    message = str(caught.value)
    assert "node type 'Same' is defined twice" in message
    assert "package postgit-fake-one 1.0 (plugin postgit-fake-one:same)" in message
    assert "package postgit-fake-two 2.0 (plugin postgit-fake-two:same)" in message


def test_one_plugin_defining_a_type_twice():
    with pytest.raises(PluginError, match="node type 'Again' is defined twice"):
        load_registry(extra=[node_types_plugin("Again", "Again")])


# -- broken plugins --------------------------------------------------------------------------------------------


def test_a_misspelled_hook_is_refused():
    class Misspelled:
        @postgit.hookimpl
        def postgit_node_type(self):
            return []

    with pytest.raises(PluginError) as caught:
        load_registry(extra=[Misspelled()])
    assert "plugin extra-0 implements a hook that does not exist" in str(caught.value)
    assert "postgit_node_type" in str(caught.value)


def test_a_misspelled_hook_in_a_package_names_the_package(install):
    source = "import postgit\n\n@postgit.hookimpl\ndef postgit_nodetypes():\n    return []\n"
    install("postgit-fake-typo", "0.3", {"typo": "postgit_fake_typo"}, {"postgit_fake_typo": source})
    with pytest.raises(PluginError) as caught:
        load_registry()
    message = str(caught.value)
    assert (
        "plugin postgit-fake-typo:typo (package postgit-fake-typo 0.3) implements a hook that does not exist" in message
    )
    assert "postgit_nodetypes" in message


def test_a_hookimpl_asking_for_unknown_arguments_is_refused():
    class Greedy:
        @postgit.hookimpl
        def postgit_node_types(self, registry):
            return []

    with pytest.raises(PluginError) as caught:
        load_registry(extra=[Greedy()])
    assert "plugin extra-0 cannot be registered" in str(caught.value)
    assert "registry" in str(caught.value)


def test_the_same_plugin_twice_is_refused():
    plugin = node_types_plugin("Once")
    with pytest.raises(PluginError, match="cannot be registered"):
        load_registry(extra=[plugin, plugin])


@pytest.mark.parametrize(
    ("returned", "shown"),
    [("['Shout']", "'Shout'"), ("[{'name': 'X'}]", "{'name': 'X'}"), ("[None]", "None"), ("[Params]", "Params")],
)
def test_a_hook_returning_something_else_than_node_types(returned, shown):
    namespace: dict = {}
    exec(  # builds a plugin whose hook returns `returned`
        textwrap.dedent(
            f"""
            import postgit
            from pydantic import BaseModel

            class Params(BaseModel):
                pass

            class Plugin:
                @staticmethod
                @postgit.hookimpl
                def postgit_node_types():
                    return {returned}
            """
        ),
        namespace,
    )
    with pytest.raises(PluginError) as caught:
        load_registry(extra=[namespace["Plugin"]])
    message = str(caught.value)
    assert message.startswith("postgit_node_types() of Plugin returned ")
    assert shown in message and "not a postgit.NodeType" in message


@pytest.mark.parametrize("returned", ["None", "postgit.NodeType('Bare', BaseModel, print)", "42"])
def test_a_hook_returning_no_list_is_refused(returned):
    namespace: dict = {}
    exec(
        "import postgit\nfrom pydantic import BaseModel\n\nclass Plugin:\n    @staticmethod\n    @postgit.hookimpl\n"
        f"    def postgit_node_types():\n        return {returned}\n",
        namespace,
    )
    with pytest.raises(PluginError, match="postgit_node_types\\(\\) of Plugin"):
        load_registry(extra=[namespace["Plugin"]])


def test_a_hook_raising_names_the_plugin(install):
    source = "import postgit\n\n@postgit.hookimpl\ndef postgit_node_types():\n    raise KeyError('config')\n"
    install("postgit-fake-raises", "4.5.6", {"raiser": "postgit_fake_raises"}, {"postgit_fake_raises": source})
    with pytest.raises(PluginError) as caught:
        load_registry()
    assert "postgit_node_types() of postgit-fake-raises:raiser raised KeyError: 'config'" in str(caught.value)


def test_an_entry_point_whose_module_raises_on_import(install):
    install(
        "postgit-fake-broken",
        "9.9.9",
        {"broken": "postgit_fake_broken"},
        {"postgit_fake_broken": "raise RuntimeError('cannot start: missing licence file')\n"},
    )
    with pytest.raises(PluginError) as caught:
        load_registry()
    assert str(caught.value) == (
        "plugin 'broken' of package postgit-fake-broken 9.9.9 (postgit_fake_broken) failed to load: "
        "RuntimeError: cannot start: missing licence file"
    )
    assert "postgit_fake_broken" not in sys.modules


@pytest.mark.parametrize(
    ("target", "sources", "error"),
    [
        ("postgit_fake_absent", {}, "ModuleNotFoundError"),
        ("postgit_fake_noattr:plugin", {"postgit_fake_noattr": "x = 1\n"}, "AttributeError"),
        ("postgit_fake_syntax", {"postgit_fake_syntax": "def broken(:\n"}, "SyntaxError"),
    ],
)
def test_entry_points_that_cannot_be_loaded(install, target, sources, error):
    install("postgit-fake-unloadable", "0.0.1", {"unloadable": target}, sources)
    with pytest.raises(PluginError) as caught:
        load_registry()
    message = str(caught.value)
    assert message.startswith(
        f"plugin 'unloadable' of package postgit-fake-unloadable 0.0.1 ({target}) failed to load: "
    )
    assert error in message


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        (
            "def postgit_node_types():\n    return []\n",
            "postgit_node_types() is not decorated with @postgit.hookimpl",
        ),
        (
            "def postgit_nodetypes():\n    return []\n",
            "postgit_nodetypes() is not a Postgit hook; did you mean postgit_node_types()?",
        ),
        ("x = 1\n", "define postgit_node_types() decorated with @postgit.hookimpl"),
    ],
)
def test_a_package_that_implements_no_hook_is_refused_naming_it(install, source, hint):
    install("postgit-fake-hookless", "0.4.2", {"hookless": "postgit_fake_hookless"}, {"postgit_fake_hookless": source})
    with pytest.raises(PluginError) as caught:
        load_registry()
    assert str(caught.value) == (
        "plugin 'hookless' of package postgit-fake-hookless 0.4.2 (postgit_fake_hookless) provides no hook "
        f"implementation: {hint}"
    )


def test_an_extra_plugin_that_implements_no_hook_is_refused():
    class Bare:
        def postgit_node_types(self):
            return []

    with pytest.raises(PluginError, match=r"plugin extra-0 provides no hook implementation: postgit_node_types\(\)"):
        load_registry(extra=[Bare()])
