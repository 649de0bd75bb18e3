"""The plugin contract between real processes: a worker running another plugin version than the server validated
against is listed, logged and warned about; a plugin package that implements no hook stops the process loading it."""

from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.cli.conftest import Pst, ServerProcess, sequence, shout, write_json
from tests.support.fake_dist import write_distribution
from tests.support.ports import free_port
from tests.support.processes import running_workers, script, worker_env
from tests.support.server import server_env
from tests.support.waiting import wait_for_sync

NEWER = "9.9.9"


def newer_example_plugin(tmp_path: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes the example plugin's installed version read as NEWER."""
    return write_distribution(
        tmp_path / "newer-site", "postgit-example-plugin", NEWER, {"shout": "postgit_example_plugin"}
    )


@pytest.mark.server_process
def test_a_worker_running_another_plugin_version_is_listed_logged_and_warned_about(
    pst: Pst, server: ServerProcess, database_url: str, tmp_path: Path
):
    server_version = version("postgit-example-plugin")
    assert server_version != NEWER
    flow = write_json(tmp_path, "loud.json", sequence(shout("loud", "hi", assignTo="$.out")))
    pst.ok("deploy", str(flow))  # validated against the server's version, before the newer worker exists
    site = newer_example_plugin(tmp_path)
    with running_workers(database_url, tmp_path, PYTHONPATH=str(site)) as [worker]:

        def listed() -> dict | None:
            rows = {row["name"]: row for row in pst.ok("plugins", "ls", "--json").json()}
            return rows["Shout"] if rows["Shout"]["workers"] else None

        shout_row = wait_for_sync(listed, timeout=30, interval=0.2, what="the worker to be listed")
        [worker_id] = shout_row["workers"]
        assert shout_row["version"] == server_version
        assert shout_row["worker_versions"] == {worker_id: {"package": "postgit-example-plugin", "version": NEWER}}
        warning = (
            f"node type Shout: worker {worker_id} runs postgit-example-plugin {NEWER}, "
            f"the server validated against {server_version}"
        )
        assert shout_row["warnings"] == [warning]

        table = pst.ok("plugins", "ls")
        line = next(line for line in table.stdout.splitlines() if line.startswith("Shout "))
        assert f"{server_version} (workers: {NEWER})" in line
        assert f"warning: {warning}" in table.stderr

        redeployed = pst.ok("deploy", str(flow), "--json")
        assert redeployed.json()["warnings"] == [warning]
        assert f"warning: {warning}" in redeployed.stderr
        run = pst("run", "loud", "--watch")
        assert run.returncode == 0, run.describe()
        assert f"warning: {warning}" in run.stderr
        assert "HI!" in run.stdout, "the step still runs: the mismatch is a warning"

        expected_log = (
            f"plugin version mismatch: workflow 'loud' version 1 was validated against postgit-example-plugin "
            f"{server_version} for node type Shout; this worker runs postgit-example-plugin {NEWER}"
        )
        assert expected_log in worker.output()
        at_start = f"plugin version mismatch: node type Shout: this worker runs postgit-example-plugin {NEWER}"
        assert at_start in worker.output(), "a worker warns at start about the workflows already deployed"
    assert server.process is not None
    assert f"plugin version mismatch: {warning}" in server.process.output()


HOOKLESS = {
    "missing-decorator": ("def postgit_node_types():\n    return []\n", "is not decorated with @postgit.hookimpl"),
    "misspelt-hook": ("def postgit_nodetypes():\n    return []\n", "did you mean postgit_node_types()?"),
}


@pytest.mark.parametrize("mistake", sorted(HOOKLESS))
@pytest.mark.parametrize("program", ["postgit-worker", "postgit-server"])
def test_a_plugin_package_without_a_hook_stops_the_process_with_one_line(
    tmp_path: Path, database_url: str, mistake: str, program: str
):
    source, hint = HOOKLESS[mistake]
    site = write_distribution(
        tmp_path / "site", "postgit-hookless", "0.3.0", {"hookless": "postgit_hookless"}, {"postgit_hookless": source}
    )
    env = worker_env(database_url) if program == "postgit-worker" else server_env(database_url, free_port())
    env["PYTHONPATH"] = str(site)
    result = subprocess.run([script(program)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"{program}: plugin 'hookless' of package postgit-hookless 0.3.0 (postgit_hookless) provides no hook "
        "implementation: "
    )
    assert hint in lines[0]
