"""Preparing starts without a database: encoding an input once, the checks on it, and the statement's items."""

from __future__ import annotations

import collections
import enum
import json
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from postgit.db.ids import uuid7
from postgit.jsontext import FAST_BYTES
from postgit.starts import (
    MAX_INPUT_BYTES,
    Deployed,
    ItemError,
    StartItem,
    check_idempotency_key,
    encode_input,
    prepare,
)
from postgit_cli.batch import BATCH_BYTES, BATCH_SIZE, _chunks, read_inputs
from postgit_cli.errors import UsageError

ROW = {
    "name": "orders",
    "version": 3,
    "definition": {
        "root": {
            "id": "root",
            "type": "Parallel",
            "branches": {
                "a": {"id": "a", "type": "Shout", "params": {"text": "x"}},
                "b": {"id": "b", "type": "Noop", "params": {}},
            },
        },
        "timeout": 60,
        "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    },
}


@pytest.mark.parametrize(
    "value,text",
    [
        (None, "null"),
        ({"a": [1, 2.5, "é"]}, '{"a":[1,2.5,"é"]}'),
        ("back\\u0000slash", '"back\\\\u0000slash"'),  # a backslash then "u0000": text PostgreSQL stores
    ],
)
def test_an_input_is_encoded_once_as_compact_json(value, text):
    assert encode_input(value) == (text, len(text.encode()))


@pytest.mark.parametrize(
    "value,problem",
    [
        (math.nan, "holds NaN"),
        ({"x": [math.inf]}, "holds NaN or an infinite number"),
        ({"x": "a\x00b"}, "holds a NUL character"),
        ({"x": "\\\x00"}, "holds a NUL character"),
        ({"x": "\udfff"}, "not valid Unicode"),
        ("é" * (MAX_INPUT_BYTES // 2 + 1), f"is {MAX_INPUT_BYTES + 4} bytes of JSON; the limit is {MAX_INPUT_BYTES}"),
        ({1j: 1}, "is not JSON"),
    ],
)
def test_an_input_that_cannot_be_stored_is_refused_naming_why(value, problem):
    error = encode_input(value)
    assert isinstance(error, ItemError) and error.field == "input"
    assert problem in error.problem


def test_deeply_nested_input_is_refused():
    value: list = []
    for _ in range(100_000):
        value = [value]
    error = encode_input(value)
    assert isinstance(error, ItemError) and error.problem == "is nested too deeply"


@pytest.mark.parametrize("key", ["", "k" * 201, "a\x00"])
def test_malformed_idempotency_keys(key):
    error = check_idempotency_key(key)
    assert isinstance(error, ItemError) and error.field == "idempotency_key"
    assert check_idempotency_key("k" * 200) is None and check_idempotency_key(None) is None


def test_a_prepared_start_carries_its_first_runs_and_becomes_one_recordset_item():
    deployed = Deployed.from_row(ROW)
    parent = uuid.uuid4()
    prepared = prepare(deployed, StartItem({"n": 1}, "key-1", (parent, "sub[2]", False)), True, datetime.now(UTC))
    assert not isinstance(prepared, ItemError)
    item = json.loads(prepared.as_json())
    assert item == {
        "id": str(prepared.id),
        "workflow": "orders",
        "version": 3,
        "latest": True,
        "current_node": "a",
        "node_types": ["Noop", "Shout"],
        "lanes": ["default:Noop", "default:Shout"],
        "idempotency_key": "key-1",
        "timeout": 60,
        "parent_id": str(parent),
        "parent_run_key": "sub[2]",
        "cancel_with_parent": False,
        "state": {"input": {"n": 1}},
    }
    refused = prepare(deployed, StartItem({"n": "one"}), True, datetime.now(UTC))
    assert str(refused) == "input.n: 'one' is not of type 'integer' (the workflow's input schema)"


def test_jsonl_lines_are_sent_in_chunks_of_at_most_1000_lines_and_16_mb():
    lines = [(number, 10, {}) for number in range(1, 2_502)]
    assert [len(chunk) for chunk in _chunks(lines)] == [BATCH_SIZE, BATCH_SIZE, 501]
    big = [(number, BATCH_BYTES // 3, {}) for number in range(1, 8)]
    chunks = _chunks(big)
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert [line[0] for chunk in chunks for line in chunk] == list(range(1, 8))


def test_jsonl_bad_lines_are_each_named(tmp_path: Path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n"text"\n{broken\n' + "[]\n" * 12, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_inputs(f"@{path}")
    message = caught.value.message
    assert "14 bad lines, nothing was started" in message
    assert "line 3: not a JSON object" in message and "line 4: not valid JSON" in message
    assert message.endswith("and 4 more")
    path.write_text('{"a": 1}\n\n{"b": 2}', encoding="utf-8")
    assert read_inputs(f"@{path}") == [(1, 8, {"a": 1}), (3, 8, {"b": 2})]


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize("value", [uuid.uuid4(), Colour.RED, datetime.now(UTC), {"at": datetime.now(UTC)}])
def test_an_input_of_values_json_cannot_write_is_refused_although_orjson_could(value):
    error = encode_input(value)
    assert isinstance(error, ItemError) and "is not JSON-serialisable" in error.problem


@pytest.mark.parametrize(
    "value",
    [
        {"n": 1, "ok": True, "xs": [1.5, -0.0, "é"], "nested": {"deep": [[{}]]}},
        {"nothing": None},
        {"big": 2**70},
        {"text": "x" * (FAST_BYTES + 10)},
        [True, False, 0, 1e16, 2.5e-10],
        collections.OrderedDict(a=1),
        {"count": enum.IntEnum("Count", "ONE").ONE},
    ],
)
def test_an_input_is_read_back_as_the_value_it_was(value):
    encoded = encode_input(value)
    assert not isinstance(encoded, ItemError)
    text, size = encoded
    assert json.loads(text) == json.loads(json.dumps(value)) and size == len(text.encode())


def test_instance_ids_are_version_7_in_time_order():
    ids = [uuid7() for _ in range(1000)]
    assert all(ident.version == 7 and ident.variant == uuid.RFC_4122 for ident in ids)
    assert all(uuid.UUID(str(ident)) == ident and hash(uuid.UUID(str(ident))) == hash(ident) for ident in ids)
    millis = [ident.int >> 80 for ident in ids]
    assert millis == sorted(millis) and abs(millis[-1] - datetime.now(UTC).timestamp() * 1000) < 60_000
    assert len(set(ids)) == 1000
