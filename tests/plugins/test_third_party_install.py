"""A third-party plugin package, installed the ordinary way, is picked up by validation and workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from postgit import Node, Sequence
from postgit.db import Store
from postgit.errors import DefinitionError
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import wait_finished
from tests.support.processes import running_workers

PLUGIN_SOURCE = Path(__file__).parents[1] / "fixtures" / "postgit-reverse-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin installed (without dependencies) into a folder of its own, as pip would into site-packages."""
    target = tmp_path_factory.mktemp("site")
    uv = Path(sys.executable).parent / "uv"
    installer = (
        [str(uv), "pip", "install", "--python", sys.executable] if uv.exists() else [sys.executable, "-m", "pip"]
    )
    if not uv.exists():
        installer.append("install")
    subprocess.run([*installer, "--quiet", "--no-deps", "--target", str(target), str(PLUGIN_SOURCE)], check=True)
    return target


async def test_an_installed_plugin_adds_a_node_type_for_validation_and_workers(
    plugin_site, monkeypatch, store: Store, database_url, tmp_path
):
    flow = Sequence(id="root", children=[Node("Reverse", id="rev", text="{{ input.word }}", assign_to="$.reversed")])
    assert "Reverse" not in load_registry()
    with pytest.raises(DefinitionError, match="unknown node type 'Reverse'"):
        await WorkflowService(store, load_registry()).deploy("rev", flow.to_json())

    monkeypatch.syspath_prepend(str(plugin_site))
    registry = load_registry()
    entry = registry["Reverse"]
    assert (entry.provenance.package, entry.provenance.version) == ("postgit-reverse-plugin", "1.2.3")

    service = WorkflowService(store, registry)
    await service.deploy("rev", flow.to_json())
    row, _ = await service.start("rev", {"word": "stressed"})
    with running_workers(database_url, tmp_path, PYTHONPATH=str(plugin_site)):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"]["reversed"] == "desserts"
    workers = {s["worker_id"] for s in await store.list_steps(row["id"])}
    assert len(workers) == 1
