"""``pst outbox send``: mail parked while no SMTP server was configured, sent once one is, through a real server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Pst, ServerProcess, assert_error, sequence, write_json
from tests.support.ports import free_port
from tests.support.processes import script
from tests.support.server import server_env
from tests.support.waiting import wait_for_sync

MAIL = {
    "id": "mail",
    "type": "SendEmail",
    "params": {
        "to": ["ops@example.com", "cto@example.com"],
        "subject": "Report {{ input.day }}",
        "body": "all good on {{ input.day }}",
        "reply_to": "noreply@example.com",
    },
}


@pytest.fixture
def mail_server(database_url: str, tmp_path: Path, smtp_server) -> Iterator[ServerProcess]:
    """A ``postgit-server`` with ``POSTGIT_SMTP_URL`` set to the loopback SMTP server (the workers have none)."""
    controller, _ = smtp_server
    process = ServerProcess(database_url, tmp_path, POSTGIT_SMTP_URL=f"smtp://127.0.0.1:{controller.port}")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def park(pst: Pst, tmp_path: Path, *days: str) -> list[dict[str, Any]]:
    """Run the mail workflow once per day on a worker without SMTP; the parked messages, oldest first."""
    pst.ok("deploy", str(write_json(tmp_path, "report.json", sequence(MAIL))))
    ids = [pst.ok("run", "report", "--input", f'{{"day": "{day}"}}').stdout.strip() for day in days]

    def parked() -> list[dict[str, Any]] | None:
        rows = pst.ok("outbox", "ls", "--json").json()
        return rows if len(rows) == len(ids) else None

    return wait_for_sync(parked, timeout=30, interval=0.1, what=f"{len(ids)} parked messages")


def test_parked_mail_is_sent_once_when_the_server_has_smtp(
    mail_server: ServerProcess, tmp_path: Path, worker, smtp_server
):
    _, mailbox = smtp_server
    pst = Pst(mail_server.url)
    first, second = park(pst, tmp_path, "monday", "tuesday")
    assert mailbox.messages == []

    sent = pst.ok("outbox", "send", str(first["id"])).stdout.strip()
    assert sent == f"Sent message {first['id']} ({first['message']['message_id']}) through smtp://127.0.0.1:" + str(
        smtp_server[0].port
    )
    [email] = mailbox.messages
    assert email["Message-ID"] == first["message"]["message_id"]
    assert email["X-Postgit-Idempotency-Key"] == first["idempotency_key"]
    assert email["Subject"] == "Report monday"
    assert email["To"] == "ops@example.com, cto@example.com"
    assert email["Reply-To"] == "noreply@example.com"
    assert email.get_payload().strip() == "all good on monday"

    again = pst.ok("outbox", "send", str(first["id"]), "--json").json()
    assert again["status"] == "already_sent"
    assert again["sent_via"] == f"smtp://127.0.0.1:{smtp_server[0].port}"
    assert "not sent again" in pst.ok("outbox", "send", str(first["id"])).stdout
    assert len(mailbox.messages) == 1

    assert [row["id"] for row in pst.ok("outbox", "ls", "--json").json()] == [second["id"]]
    result = pst.ok("outbox", "send", "--all")
    assert result.stdout.strip() == "Sent 1 message, 0 not sent"
    assert [email["Subject"] for email in mailbox.messages] == ["Report monday", "Report tuesday"]
    assert "nothing to send" in pst.ok("outbox", "send", "--all").stderr
    assert len(mailbox.messages) == 2

    assert pst.ok("outbox", "ls", "--json").json() == []
    assert "empty" in pst.ok("outbox", "ls").stderr
    delivered = pst.ok("outbox", "ls", "--all", "--json").json()
    assert [(row["id"], row["attempts"], row["last_error"]) for row in delivered] == [
        (first["id"], 1, None),
        (second["id"], 1, None),
    ]
    assert all(row["sent_at"] and row["sent_via"].startswith("smtp://127.0.0.1:") for row in delivered)
    table = pst.ok("outbox", "ls", "--all").stdout.splitlines()
    assert table[0].split() == ["ID", "TO", "SUBJECT", "INSTANCE", "CREATED", "SENT"]
    assert "via smtp://127.0.0.1:" in table[1]


def test_without_smtp_on_the_server_sending_is_refused_and_nothing_changes(pst: Pst, tmp_path: Path, worker):
    [parked] = park(pst, tmp_path, "friday")
    for args in (["outbox", "send", str(parked["id"])], ["outbox", "send", "--all", "--json"]):
        result = pst(*args)
        assert result.stdout == ""
        assert_error(result, "no SMTP server is configured: set POSTGIT_SMTP_URL", "postgit-server", exit_code=1)
    answer = httpx.post(f"{pst.api_url}/outbox/{parked['id']}/send", timeout=10)
    assert answer.status_code == 409
    assert "POSTGIT_SMTP_URL" in answer.json()["detail"]
    assert pst.ok("outbox", "ls", "--json").json() == [parked]


def test_an_smtp_server_that_cannot_be_reached_leaves_the_mail_parked_with_why(
    database_url: str, tmp_path: Path, worker
):
    dead_port = free_port()
    server = ServerProcess(database_url, tmp_path, POSTGIT_SMTP_URL=f"smtp://127.0.0.1:{dead_port}")
    server.start()
    try:
        pst = Pst(server.url)
        [parked] = park(pst, tmp_path, "sunday")
        assert_error(
            pst("outbox", "send", str(parked["id"])),
            f"outbox message {parked['id']} was not sent: SMTP delivery to 127.0.0.1:{dead_port} failed",
            exit_code=1,
        )
        result = pst("outbox", "send", "--all")
        assert result.returncode == 1
        assert result.stdout.strip() == "Sent 0 messages, 1 not sent"
        assert f"message {parked['id']}: SMTP delivery to 127.0.0.1:{dead_port} failed" in result.stderr
        [row] = pst.ok("outbox", "ls", "--json").json()
        assert row["sent_at"] is None
        assert row["attempts"] == 2
        assert "SMTP delivery to" in row["last_error"]
        assert_error(pst("outbox", "send", "999999"), "outbox message 999999 does not exist", exit_code=1)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["outbox", "send"], ["give the ID of one message, or --all"]),
        (["outbox", "send", "1", "--all"], ["give the ID of one message, or --all"]),
        (["outbox", "send", "one"], ["'one' is not a valid int"]),
        (["outbox", "send", "0"], ["0"]),
    ],
)
def test_send_usage_errors(args: list[str], fragments: list[str]):
    offline = Pst(f"http://127.0.0.1:{free_port()}")
    assert_error(offline(*args), *fragments, exit_code=2)


def test_a_malformed_smtp_url_stops_the_server_with_one_line(database_url: str):
    env = server_env(database_url, free_port(), POSTGIT_SMTP_URL="http://mail.example.com")
    result = subprocess.run([script("postgit-server")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "POSTGIT_SMTP_URL must look like smtp://" in result.stderr
    assert "Traceback" not in result.stderr
