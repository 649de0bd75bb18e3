"""Every workspace member carries one version, and every pin of one member on another accepts it.

The members are the folders listed in the root ``pyproject.toml``. Workspace packages pin each other exactly
(``postgit-core==0.1.0``); the example plugin and the test suite's third-party plugin fixture pin a range, as a
third-party plugin would (``postgit-core>=0.1,<0.2``), which must still contain the current version. ``uv.lock``
records the members' versions too, and goes stale when a version is bumped without ``uv lock``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FIXTURES = ROOT / "tests" / "fixtures"


@dataclass(frozen=True)
class Project:
    """One ``pyproject.toml``: its distribution name, version and every requirement it declares."""

    path: Path
    name: str
    version: Version
    requirements: list[Requirement]


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def read_project(path: Path) -> Project:
    project = read_toml(path)["project"]
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared.extend(extra)
    return Project(
        path=path.relative_to(ROOT),
        name=canonicalize_name(project["name"]),
        version=Version(project["version"]),
        requirements=[Requirement(line) for line in declared],
    )


def members() -> list[Project]:
    folders = read_toml(ROOT / "pyproject.toml")["tool"]["uv"]["workspace"]["members"]
    paths = sorted({pyproject for folder in folders for pyproject in ROOT.glob(f"{folder}/pyproject.toml")})
    return [read_project(path) for path in paths]


def test_the_workspace_has_the_members_it_ships():
    names = {member.name for member in members()}
    assert {"postgit-core", "postgit-server", "postgit-cli", "postgit-builtins"} <= names


def test_every_member_has_the_same_version():
    versions = {str(member.path): str(member.version) for member in members()}
    assert len(set(versions.values())) == 1, f"workspace members disagree on the version: {versions}"


def test_every_pin_on_a_member_accepts_the_members_version():
    workspace = members()
    version = {member.name: member.version for member in workspace}
    fixtures = [read_project(path) for path in sorted(PLUGIN_FIXTURES.glob("*/pyproject.toml"))]
    pins = [
        (project, requirement, version[canonicalize_name(requirement.name)])
        for project in [*workspace, *fixtures]
        for requirement in project.requirements
        if canonicalize_name(requirement.name) in version
    ]
    assert pins, "no member depends on another: the check below would prove nothing"
    wrong = [
        f"{project.path}: {requirement} does not accept {requirement.name} {pinned}"
        for project, requirement, pinned in pins
        if not requirement.specifier.contains(pinned, prereleases=True)
    ]
    assert not wrong, "\n".join(wrong)


def test_workspace_pins_are_exact():
    """Inside the workspace a member pins its siblings to the one version they are released with."""
    workspace = members()
    names = {member.name for member in workspace}
    loose = [
        f"{member.path}: {requirement}"
        for member in workspace
        if member.name != "postgit-example-plugin"  # written as a third-party plugin would be: a range
        for requirement in member.requirements
        if canonicalize_name(requirement.name) in names and [spec.operator for spec in requirement.specifier] != ["=="]
    ]
    assert not loose, "pin workspace siblings exactly (==), as the others do:\n" + "\n".join(loose)


def test_the_lock_file_records_the_members_versions():
    locked = {
        canonicalize_name(package["name"]): package.get("version")
        for package in read_toml(ROOT / "uv.lock")["package"]
        if "editable" in package.get("source", {})
    }
    stale = {
        member.name: (locked.get(member.name), str(member.version))
        for member in members()
        if locked.get(member.name) != str(member.version)
    }
    assert not stale, f"uv.lock is stale, run `uv lock` (locked, declared): {stale}"
