"""Secrets that a service echoes back, in every form, reach no table, no log line and no answer of the API or CLI.

A ``postgit-worker`` and a ``postgit-server`` process, ``pst`` against them, and a loopback service that echoes each
request (its line, URL, decoded path and query, headers) in its body and its headers. The secrets sit in a URL's
path segment, its query, its password (sent as basic auth) and a header; they hold characters that URL encoding,
JSON escaping and base64 change.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from psycopg import sql

from tests.cli.conftest import Pst, write_json
from tests.support.ports import free_port
from tests.support.processes import running_workers
from tests.support.waiting import wait_for_sync

PATH_TOKEN = "p4th T0ken-é/x"
QUERY_TOKEN = "qu3ry+T0ken é&="
PASSWORD = "pa55:W0rd é!"
API_KEY = "k3y/+=Tok%en~9"
USER = "svc-user"
RETRY = {"maxAttempts": 2, "initialInterval": 0.2}


def secret_url(base: str, kind: str) -> str:
    """A URL holding the secrets in its password, a path segment and the query (encoded as a user would)."""
    host = base.removeprefix("http://")
    return (
        f"http://{USER}:{quote(PASSWORD, safe='')}@{host}/echo/{kind}/{quote(PATH_TOKEN, safe='')}"
        f"?key={quote_plus(QUERY_TOKEN)}&n=1"
    )


def forms(value: str) -> set[str]:
    """The forms in which ``value`` can come back from a service (what must never be stored or shown)."""
    found = {
        value,
        quote(value),
        quote(value, safe=""),
        quote_plus(value),
        quote(value, safe="").lower(),
        json.dumps(value)[1:-1],
        value.encode().decode("latin-1"),
    }
    return {form for form in found if len(form) >= 4}


def dump_database(database_url: str) -> str:
    """Every row of every table of the test's database, as text."""
    lines = []
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(sql.Identifier(schema), sql.Identifier(table))
            lines.extend(row[0] for row in conn.execute(query))
    return "\n".join(lines)


@pytest.mark.server_process
def test_secrets_echoed_back_in_every_form_are_never_stored_logged_or_shown(
    database_url, server, pst: Pst, http_server, tmp_path: Path
):
    closed = f"http://127.0.0.1:{free_port()}"
    urls = {
        "ECHO_JSON_URL": secret_url(http_server.url, "200/json"),
        "ECHO_TEXT_URL": secret_url(http_server.url, "500/text"),
        "DOWN_URL": secret_url(closed, "200/json"),
    }
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    leaks = {"basic auth": {basic}}
    for name, value in {"path": PATH_TOKEN, "query": QUERY_TOKEN, "password": PASSWORD, "api key": API_KEY}.items():
        leaks[name] = forms(value)
    for name, value in urls.items():
        leaks[name] = forms(value)

    def hit(node_id: str, url_secret: str, **extra):
        params = {"url": {"$secret": url_secret}, "headers": {"X-Api-Key": {"$secret": "API_KEY"}}}
        return {"id": node_id, "type": "HitEndpoint", "params": params, "retry": RETRY, **extra}

    flow = {
        "id": "root",
        "type": "Parallel",
        "onFailure": "wait_all",
        "branches": {
            "json": hit("echo-json", "ECHO_JSON_URL", assignTo="$.echoed"),
            "text": hit("echo-text", "ECHO_TEXT_URL"),
            "down": hit("down", "DOWN_URL"),
        },
    }
    secrets_env = {f"POSTGIT_SECRET_{name}": value for name, value in urls.items()} | {
        "POSTGIT_SECRET_API_KEY": API_KEY
    }
    with running_workers(database_url, tmp_path, **secrets_env) as workers:
        pst.ok("deploy", str(write_json(tmp_path, "echo.json", flow)), "echo")
        instance_id = pst.ok("run", "echo", "--json").json()["id"]

        def finished():
            status = pst.ok("status", instance_id, "--json").json()
            return status if status["status"] in ("completed", "failed") else None

        status = wait_for_sync(finished, timeout=60, interval=0.3, what="the instance to finish")
        answers = {
            "pst status --json": pst.ok("status", instance_id, "--json").stdout,
            "pst status": pst.ok("status", instance_id).stdout,
            "pst i ls --json": pst.ok("i", "ls", "--json").stdout,
        }
    assert status["status"] == "failed"

    # the service got the real values, and echoed each of them back in forms that differ from the raw value
    [echo] = http_server.hits(next(r.path for r in http_server.requests if r.path.startswith("/echo/200/json")))
    assert echo.headers["X-Api-Key"] == API_KEY
    assert echo.headers["Authorization"] == f"Basic {basic}"
    assert quote(PATH_TOKEN, safe="") in echo.path and quote_plus(QUERY_TOKEN) in echo.path
    assert len(http_server.hits(next(r.path for r in http_server.requests if "/500/" in r.path))) == 2

    places = {"database": dump_database(database_url), **answers}
    places.update({f"worker log {i}": worker.log_path.read_text() for i, worker in enumerate(workers)})
    places["server log"] = server.process.output()
    assert "***" in places["database"] and "***" in answers["pst status --json"]
    for place, text in places.items():
        for secret, spellings in leaks.items():
            for spelling in spellings:
                assert spelling not in text, f"the {secret} secret shows as {spelling!r} in the {place}"
    echoed = status["state"]["echoed"]
    assert echoed["status"] == 200 and echoed["body"]["headers"]["X-Api-Key"] == "***"
