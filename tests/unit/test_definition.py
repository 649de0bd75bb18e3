import json
import sys
import textwrap

import pytest

from postgit import DefinitionError, HitEndpoint, SendEmail, Sequence, Sleep, load_definition_file, ref
from postgit.definition import WorkflowDefinition
from postgit.validation import validate_definition

SEED_JSON = {
    "id": "root",
    "type": "Sequence",
    "children": [
        {
            "id": "fetch-data",
            "type": "HitEndpoint",
            "params": {"url": "http://localhost:3000/health", "method": "GET"},
            "assignTo": "$.fetchResult",
        },
        {"id": "wait", "type": "Sleep", "params": {"seconds": 10}},
        {
            "id": "notify",
            "type": "SendEmail",
            "params": {
                "to": "user@example.com",
                "subject": "Workflow Complete",
                "body": {"$ref": "$.fetchResult.body.status"},
            },
        },
    ],
}

SEED_MODULE = """
from postgit import Sequence, HitEndpoint, Sleep, SendEmail, ref

def workflow():
    return Sequence(id="root", children=[
        HitEndpoint(id="fetch-data", url="http://localhost:3000/health", assign_to="$.fetchResult"),
        Sleep(id="wait", seconds=10),
        SendEmail(id="notify", to="user@example.com", subject="Workflow Complete",
                  body=ref("$.fetchResult.body.status")),
    ])
"""


def seed_workflow():
    return Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch-data", url="http://localhost:3000/health", assign_to="$.fetchResult"),
            Sleep(id="wait", seconds=10),
            SendEmail(
                id="notify", to="user@example.com", subject="Workflow Complete", body=ref("$.fetchResult.body.status")
            ),
        ],
    )


def test_seed_example_serialises_to_the_documented_json(registry):
    original = seed_workflow().to_json()
    assert original == SEED_JSON
    assert json.loads(json.dumps(original)) == original
    assert validate_definition(original, registry).to_json() == original


def test_validated_definition_round_trips_through_json(registry):
    definition = validate_definition(SEED_JSON, registry)
    again = WorkflowDefinition.from_json(json.loads(json.dumps(definition.to_json())))
    assert again.to_json() == SEED_JSON
    assert again.root == definition.root
    assert list(again.nodes) == ["root", "fetch-data", "wait", "notify"]
    assert again.node_types() == {"HitEndpoint", "Sleep", "SendEmail"}


def test_node_options_round_trip(registry):
    raw = {
        "id": "a",
        "type": "Sleep",
        "params": {"seconds": 1},
        "assignTo": "$['a b'].c",
        "retry": {"maxAttempts": 5, "maxInterval": 2.5},
        "timeout": 30,
    }
    assert validate_definition(raw, registry).to_json() == raw


def test_json_file_loads(tmp_path, registry):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED_JSON, indent=2), encoding="utf-8")
    loaded = load_definition_file(path)
    assert loaded == SEED_JSON
    assert validate_definition(loaded, registry).to_json() == SEED_JSON


def test_python_file_with_workflow_loads(tmp_path, registry):
    path = tmp_path / "seed.py"
    path.write_text(SEED_MODULE, encoding="utf-8")
    before = list(sys.path)
    assert load_definition_file(str(path)) == SEED_JSON
    assert sys.path == before


def test_python_file_may_import_its_neighbours(tmp_path):
    (tmp_path / "steps_helper_for_postgit_test.py").write_text(
        "from postgit import Sleep\n\ndef nap():\n    return Sleep(id='nap', seconds=1)\n", encoding="utf-8"
    )
    path = tmp_path / "flow.py"
    path.write_text(
        "from postgit import Sequence\nfrom steps_helper_for_postgit_test import nap\n\n"
        "def workflow():\n    return Sequence(id='root', children=[nap()])\n",
        encoding="utf-8",
    )
    try:
        assert load_definition_file(path)["children"][0]["id"] == "nap"
    finally:
        sys.modules.pop("steps_helper_for_postgit_test", None)


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("raises.py", "raise RuntimeError('boom at import')\n", "does not import: RuntimeError: boom at import"),
        ("syntax.py", "def workflow(:\n", "does not import: SyntaxError"),
        ("missing_import.py", "import postgit_no_such_module\n", "does not import: ModuleNotFoundError"),
        ("none.py", "X = 1\n", "has no workflow() function"),
        ("not_callable.py", "workflow = {'id': 'a'}\n", "has no workflow() function"),
        (
            "returns_dict.py",
            "def workflow():\n    return {'id': 'a'}\n",
            "workflow() returned dict, not a postgit node",
        ),
        ("returns_none.py", "def workflow():\n    pass\n", "workflow() returned NoneType, not a postgit node"),
        ("call_raises.py", "def workflow():\n    raise ValueError('nope')\n", "workflow() raised ValueError: nope"),
        ("needs_args.py", "def workflow(env):\n    return None\n", "workflow() raised TypeError"),
    ],
)
def test_broken_python_files_name_the_file(tmp_path, name, source, message):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert caught.value.issues[0].node_id is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{not json", "is not valid JSON"),
        ("latin1.json", b"\xff\xfe{", "is not valid JSON"),
        ("flow.yaml", "id: root", "must be a .py module with workflow() or a .json definition"),
        ("noext", "{}", "must be a .py module"),
    ],
)
def test_other_bad_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_definition_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_missing_file_and_directory(tmp_path):
    for path in (tmp_path / "absent.py", tmp_path):
        with pytest.raises(DefinitionError, match="no such file"):
            load_definition_file(path)
