import ast
import inspect
import re
from importlib.resources import files

import pytest

from postgit.db import records
from postgit.db import store as store_module
from postgit.db.queries import load_queries, parse_queries

QUERY_HELPERS = {"_sql", "_fetch_one", "_fetch_all", "_execute"}


def test_parse_queries():
    text = (
        "-- A file comment before the first query is ignored.\n"
        "\n"
        "-- name: get_thing\n"
        "-- Fetch one thing.\n"
        "SELECT *\n"
        "FROM things WHERE id = %(id)s;\n"
        "\n"
        "-- name: delete_thing\n"
        "-- Remove a thing.\n"
        "DELETE FROM things WHERE id = %(id)s\n"
    )
    assert parse_queries(text, "things.sql") == {
        "get_thing": "SELECT *\nFROM things WHERE id = %(id)s;",
        "delete_thing": "DELETE FROM things WHERE id = %(id)s",
    }


def test_only_the_first_comment_line_is_the_description():
    text = "-- name: q\n-- Describe.\n-- an inline note kept with the SQL\nSELECT 1;\n"
    assert parse_queries(text, "x.sql") == {"q": "-- an inline note kept with the SQL\nSELECT 1;"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1;\n", "x.sql: no '-- name: ...' header"),
        ("", "x.sql: no '-- name: ...' header"),
        ("-- name: q\nSELECT 1;\n", "x.sql: query 'q' needs a '-- ' description line"),
        ("-- name: q\n--no space\nSELECT 1;\n", "x.sql: query 'q' needs a '-- ' description line"),
        ("-- name: q\n", "x.sql: query 'q' needs a '-- ' description line"),
        ("-- name: q\n-- Describe.\n\n", "x.sql: query 'q' is empty"),
        ("-- name: q\n-- Describe.\n-- name: r\n-- Other.\nSELECT 2;", "x.sql: query 'q' is empty"),
        (
            "-- name: q\n-- One.\nSELECT 1;\n-- name: q\n-- Two.\nSELECT 2;\n",
            "x.sql: query 'q' is defined twice",
        ),
    ],
)
def test_malformed_files_are_refused(text, message):
    with pytest.raises(ValueError) as caught:
        parse_queries(text, "x.sql")
    assert str(caught.value) == message


@pytest.mark.parametrize("header", ["-- name: Bad-Name", "-- name: 1st", "-- name:missing_space", "-- name: a b"])
def test_malformed_names_are_not_headers(header):
    with pytest.raises(ValueError, match=r"no '-- name: \.\.\.' header"):
        parse_queries(f"{header}\n-- Describe.\nSELECT 1;\n", "x.sql")


def test_every_packaged_file_parses_and_names_are_unique_across_files():
    seen: dict[str, str] = {}
    for resource in files("postgit.db").joinpath("queries").iterdir():
        if resource.name.endswith(".sql"):
            for name in parse_queries(resource.read_text(encoding="utf-8"), resource.name):
                assert name not in seen, f"{name} is in {seen.get(name)} and {resource.name}"
                seen[name] = resource.name
    assert set(seen) == set(load_queries())


def test_packaged_queries_use_named_placeholders_only():
    for name, sql in load_queries().items():
        assert "%s" not in sql, f"{name} uses a positional placeholder"


def _store_query_calls() -> list[ast.Call]:
    tree = ast.parse(inspect.getsource(store_module))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_HELPERS
    ]


def _names_used_by_store() -> set[str]:
    return {
        call.args[0].value
        for call in _store_query_calls()
        if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    }


def test_store_names_its_queries_literally():
    """Otherwise the two checks below could not see every query the Store runs."""
    dynamic = [
        ast.unparse(call)
        for call in _store_query_calls()
        if not (call.args and isinstance(call.args[0], ast.Constant))
        and not (call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == "name")
    ]
    assert dynamic == []
    assert len(_names_used_by_store()) > 10


def test_every_query_the_store_uses_exists():
    missing = _names_used_by_store() - set(load_queries())
    assert missing == set(), f"store.py runs queries no .sql file defines: {sorted(missing)}"


def test_every_query_is_used_by_the_store():
    unused = set(load_queries()) - _names_used_by_store()
    assert unused == set(), f"queries no Store method runs: {sorted(unused)}"


def _record_columns(sql: str, source: str) -> set[str]:
    """The column names of ``jsonb_to_recordset(<source>) AS <alias>(name type, ...)`` in ``sql``."""
    match = re.search(rf"jsonb_to_recordset\({re.escape(source)}\)\s+AS\s+\w+\((.*?)\)\s*(?:\n|WHERE|$)", sql, re.S)
    assert match, f"no record definition of {source}"
    return {column.split()[0] for column in match.group(1).split(",")}


@pytest.mark.parametrize(
    ("source", "record"),
    [
        ("%(batch)s::jsonb", records.CommitItem),
        ("w.steps", records.StepRow),
        ("w.runs", records.RunRow),
        ("w.deliveries", records.DeliveryRow),
        ("w.events", records.EventRow),
    ],
)
def test_the_group_commit_rows_have_the_columns_commit_steps_reads(source, record):
    sql = load_queries()["commit_steps"]
    assert _record_columns(sql, source) == set(record.__annotations__)


def test_a_retry_target_has_the_columns_retry_instances_reads():
    sql = load_queries()["retry_instances"]
    assert _record_columns(sql, "%(targets)s::jsonb") == set(records.RetryTarget.__annotations__)
