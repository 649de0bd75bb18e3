"""PostgitEnv on its own: its database, what it deploys, and the errors a new user meets."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from postgit import DefinitionError, Node, Sleep
from postgit.testing import PostgitEnv, PostgitTestingError
from tests.conftest import admin_url

ROOT = Path(__file__).resolve().parents[2]


def databases() -> set[str]:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_an_env_of_its_own_creates_its_database_and_drops_it_on_exit():
    with PostgitEnv(admin_url()) as env:
        assert env.run(Node("Shout", id="shout", text="hi", assign_to="$.out")).state["out"] == {"text": "HI!"}
        name = env.database.name
        assert name in databases()
        with psycopg.connect(env.database.url, autocommit=True) as conn:
            before = conn.execute("SELECT now()").fetchone()[0]
        env.advance(86_400)
        with psycopg.connect(env.database.url, autocommit=True) as conn:
            after = conn.execute("SELECT now()").fetchone()[0]
        assert (after - before).total_seconds() >= 86_400  # the database's now() is the env's clock
    assert name not in databases()
    with pytest.raises(PostgitTestingError, match="the env is not open"):
        env.instance("00000000-0000-0000-0000-000000000000")


def test_a_server_that_cannot_be_reached_is_one_line_naming_it():
    with pytest.raises(PostgitTestingError, match=r"cannot create the test database .* on 127\.0\.0\.1:1: ") as error:
        PostgitEnv("postgresql://postgres@127.0.0.1:1/postgres").open()
    assert "\n" not in str(error.value)


def test_workflow_files_and_modules_deploy_under_their_names(postgit_env: PostgitEnv, tmp_path: Path):
    postgit_env.mock("HitEndpoint", returns={"status": 200, "body": {"status": "ok"}})
    instance = postgit_env.run(str(ROOT / "examples" / "demo.py"))
    assert (instance.workflow, instance.status) == ("demo", "completed")
    assert instance.output("notify")["delivery"] in ("outbox", "smtp")
    definition = tmp_path / "nap.json"
    definition.write_text('{"id": "nap", "type": "Sleep", "params": {"seconds": 60}}', encoding="utf-8")
    assert postgit_env.run(definition).workflow == "nap"
    assert postgit_env.run(Sleep(id="nap", seconds=1)).workflow == "workflow"


def test_an_invalid_definition_is_refused_with_node_and_field(postgit_env: PostgitEnv):
    with pytest.raises(DefinitionError, match=r"node 'shout', field 'params\.text'"):
        postgit_env.run(Node("Shout", id="shout"))
    with pytest.raises(PostgitTestingError, match="cannot deploy int"):
        postgit_env.run(42)
    with pytest.raises(PostgitTestingError, match="instance 00000000-0000-0000-0000-000000000000 does not exist"):
        postgit_env.wait("00000000-0000-0000-0000-000000000000")
    instance = postgit_env.run(Sleep(id="nap", seconds=1))
    with pytest.raises(PostgitTestingError, match="has no step 'napp' \\(its steps: nap\\)"):
        instance.step("napp")
