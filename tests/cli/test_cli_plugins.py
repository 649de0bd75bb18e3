"""``pst plugins ls`` with real workers: the example plugin's ``Shout`` is on the server and on every worker."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Pst
from tests.support.processes import running_workers
from tests.support.waiting import wait_for_sync


def test_shout_is_listed_for_the_server_and_the_workers(pst: Pst, database_url: str, tmp_path: Path):
    with running_workers(database_url, tmp_path, count=2):

        def both_workers() -> list[dict] | None:
            rows = pst.ok("plugins", "ls", "--json").json()
            shout = next(row for row in rows if row["name"] == "Shout")
            return rows if len(shout["workers"]) == 2 else None

        rows = wait_for_sync(both_workers, timeout=30, interval=0.2, what="both workers to be listed")
        assert [row["name"] for row in rows] == sorted(row["name"] for row in rows)
        shout = next(row for row in rows if row["name"] == "Shout")
        assert shout["package"] == "postgit-example-plugin"
        assert shout["version"] == "0.1.0"
        assert shout["description"] == "Upper-case a string"
        assert shout["on_server"] is True
        assert len(set(shout["workers"])) == 2
        builtins = {row["name"]: row for row in rows if row["package"] == "postgit-builtins"}
        assert {"HitEndpoint", "Sleep", "SendEmail"} <= set(builtins)

        lines = pst.ok("plugins", "ls").stdout.splitlines()
        assert lines[0].split() == ["NAME", "PACKAGE", "VERSION", "DESCRIPTION", "WORKERS", "QUEUES"]
        shout_line = next(line for line in lines if line.startswith("Shout "))
        assert shout_line.split()[:3] == ["Shout", "postgit-example-plugin", "0.1.0"]
        assert "Upper-case a string" in shout_line
        assert shout_line.split()[-5:] == ["2", "of", "2", "every", "queue"]
        hit_line = next(line for line in lines if line.startswith("HitEndpoint "))
        assert hit_line.split()[-5:] == ["2", "of", "2", "every", "queue"]
