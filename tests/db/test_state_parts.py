"""State kept per top-level key: a step writes only the key it changed; reads merge the keys (migration 0015)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from postgit import Node, Sequence, Sleep
from tests.support.engine import in_process_worker, wait_finished

BIG = "x" * 9_000


def query(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


async def test_each_top_level_key_is_its_own_row_written_only_when_it_changes(service, store, registry, database_url):
    flow = Sequence(
        id="root",
        children=[
            Node("Shout", id="big", text="{{ input.big }}", assign_to="$.big"),
            Sleep(id="nap", seconds=0.1),  # its own write, after big's
            Node("Shout", id="small", text="one", assign_to="$.small"),
            Node("Shout", id="again", text="two", assign_to="$.small"),
            Node("Shout", id="deep", text="three", assign_to="$.nested.inner"),
        ],
    )
    await service.deploy("parts", flow.to_json())
    row, _ = await service.start("parts", {"big": BIG})
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])

    assert instance["status"] == "completed", instance["error"]
    assert instance["state"] == {
        "input": {"big": BIG},
        "big": {"text": BIG.upper() + "!"},
        "small": {"text": "TWO!"},
        "nested": {"inner": {"text": "THREE!"}},
    }
    [stored] = query(database_url, "SELECT state, has_state_parts FROM postgit.instances WHERE id = %s", row["id"])
    assert stored == {"state": {"input": {"big": BIG}}, "has_state_parts": True}, "only the input is in the row"
    parts = query(
        database_url,
        "SELECT p.key, p.xmin::text AS written_by, s.xmin::text AS step_written_by FROM postgit.state_parts p"
        " LEFT JOIN postgit.steps s ON s.instance_id = p.instance_id AND s.run_key = 'big'"
        " WHERE p.instance_id = %s ORDER BY p.key",
        row["id"],
    )
    assert [part["key"] for part in parts] == ["big", "nested", "small"]
    big = parts[0]
    # written once, with big's step: the later steps' writes left it alone
    assert big["written_by"] == big["step_written_by"], parts


async def test_a_stored_key_wins_over_a_key_of_the_same_name_in_the_instance_row(service, store, database_url):
    flow = Node("Shout", id="only", text="new", assign_to="$.result")
    await service.deploy("merge", flow.to_json())
    row, _ = await service.start("merge", {"n": 1})
    with psycopg.connect(database_url, autocommit=True) as conn:
        # as an instance started before migration 0015 keeps its keys in its row, until they are written again
        conn.execute(
            'UPDATE postgit.instances SET state = state || \'{"result": "old", "kept": 1}\', has_state_parts = true'
            " WHERE id = %s",
            (row["id"],),
        )
        conn.execute(
            "INSERT INTO postgit.state_parts (instance_id, key, value) VALUES (%s, 'result', '\"new\"')", (row["id"],)
        )
    shown = await store.get_instance(row["id"])
    assert shown is not None
    assert shown["state"] == {"input": {"n": 1}, "result": "new", "kept": 1}


async def test_deleting_an_instance_deletes_its_stored_keys(service, store, registry, database_url):
    await service.deploy("gone", Node("Shout", id="only", text="x", assign_to="$.out").to_json())
    row, _ = await service.start("gone", None)
    async with in_process_worker(store, registry, database_url):
        await wait_finished(store, row["id"])
    assert (
        query(database_url, "SELECT count(*) AS n FROM postgit.state_parts WHERE instance_id = %s", row["id"])[0]["n"]
        == 1
    )
    await service.delete(row["id"])
    assert query(database_url, "SELECT count(*) AS n FROM postgit.state_parts")[0]["n"] == 0
