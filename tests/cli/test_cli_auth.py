"""``POSTGIT_API_TOKEN``: the CLI sends it as a bearer token; a server that requires one refuses the CLI without it."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import TOKEN, Pst, ServerProcess, assert_error, sequence, shout, sleep, write_json

COMMANDS = [
    ["wf", "ls"],
    ["i", "ls", "--json"],
    ["run", "flow"],
    ["run", "flow", "--watch"],
    ["plugins", "ls"],
    ["outbox", "ls"],
    ["status", "00000000-0000-0000-0000-000000000000"],
    ["i", "cancel", "00000000-0000-0000-0000-000000000000"],
]


def test_without_a_token_the_cli_says_to_set_one(auth_server: ServerProcess, tmp_path: Path):
    pst = Pst(auth_server.url)
    for args in COMMANDS:
        assert_error(pst(*args), f"authentication refused by {auth_server.url}: set POSTGIT_API_TOKEN")
    path = write_json(tmp_path, "flow.json", sequence(shout()))
    assert_error(pst("deploy", str(path)), f"authentication refused by {auth_server.url}: set POSTGIT_API_TOKEN")


def test_a_wrong_token_is_refused(auth_server: ServerProcess, tmp_path: Path):
    wrong = Pst(auth_server.url, token="not-the-token")
    assert_error(wrong("wf", "ls"), f"authentication refused by {auth_server.url}", "POSTGIT_API_TOKEN")
    path = write_json(tmp_path, "flow.json", sequence(shout()))
    assert_error(wrong("deploy", str(path)), "authentication refused")


def test_with_the_token_every_command_works(auth_server: ServerProcess, tmp_path: Path, worker):
    pst = Pst(auth_server.url, token=TOKEN)
    path = write_json(tmp_path, "flow.json", sequence(shout("loud", "ok", assignTo="$.out"), sleep("nap", 0.5)))
    assert pst.ok("deploy", str(path), "--json").json()["version"] == 1
    assert [row["name"] for row in pst.ok("wf", "ls", "--json").json()] == ["flow"]
    watched = pst("run", "flow", "--watch", "--json")  # the event stream carries the token too
    assert watched.returncode == 0, watched.describe()
    instance = watched.json()
    assert instance["state"]["out"] == {"text": "OK!"}
    assert pst.ok("status", instance["id"], "--json").json()["status"] == "completed"
    assert len(pst.ok("i", "ls", "--json").json()) == 1
    assert "Shout" in {row["name"] for row in pst.ok("plugins", "ls", "--json").json()}
    assert pst.ok("outbox", "ls", "--json").json() == []
    pst.ok("deploy", str(write_json(tmp_path, "long.json", sequence(sleep("nap", 60)))))
    long = pst.ok("run", "long").stdout.strip()
    assert pst.ok("i", "cancel", long).stdout.strip() == f"Cancelled {long}"


def test_without_auth_on_the_server_a_token_does_no_harm(server: ServerProcess):
    assert Pst(server.url, token="anything").ok("wf", "ls", "--json").json() == []
