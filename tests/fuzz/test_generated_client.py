"""A client generated from the served OpenAPI schema (openapi-python-client) works against a running server.

The client is generated in the test's temporary folder from ``/openapi.json`` (``--fail-on-warning``: every
operation and model must be generated) and used from a separate Python process: it deploys a workflow, starts it
and reads its status until a worker has completed it. With ``POSTGIT_API_TOKEN`` set, the schema declares bearer
security: the generated ``AuthenticatedClient`` gets in and the plain ``Client`` is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.support.processes import running_workers, script
from tests.support.server import running_server

TOKEN = "generated-client-token"
PACKAGE = "postgit_generated_client"

USE_THE_CLIENT = textwrap.dedent(
    """
    import json
    import sys
    import time

    from postgit_generated_client import AuthenticatedClient, Client
    from postgit_generated_client.api.instances import get_instance, start_instance
    from postgit_generated_client.api.workflows import deploy
    from postgit_generated_client.models import (
        DeployRequest,
        DeployRequestWorkflowNode,
        ErrorBody,
        InstanceDetail,
        StartRequest,
        StartResponse,
    )

    url, token = sys.argv[1], sys.argv[2] or None
    client = AuthenticatedClient(url, token=token) if token else Client(url)
    node = DeployRequestWorkflowNode.from_dict({"id": "hi", "type": "Shout", "params": {"text": "generated"}})
    deployed = deploy.sync(client=client, body=DeployRequest(name="generated", definition=node))
    started = start_instance.sync(
        client=client, name="generated", body=StartRequest(input_={"n": 1}), idempotency_key="generated-1"
    )
    assert isinstance(started, StartResponse), started
    deadline = time.monotonic() + 30
    while True:
        detail = get_instance.sync(client=client, instance_id=started.id)
        assert isinstance(detail, InstanceDetail), detail
        if detail.status.value == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    refused = get_instance.sync_detailed(client=Client(url), instance_id=started.id)
    print(json.dumps({
        "version": deployed.version,
        "created": deployed.created,
        "instance": str(started.id),
        "status": detail.status.value,
        "state": detail.state,
        "without_token": [refused.status_code.value, isinstance(refused.parsed, ErrorBody)],
    }))
    """
)


def generate_client(url: str, headers: dict[str, str], folder: Path) -> Path:
    """Generate the client package from the served schema into ``folder``; returns the folder to import it from."""
    schema = httpx.get(f"{url}/openapi.json", headers=headers, timeout=10)
    assert schema.status_code == 200, schema.text
    (folder / "openapi.json").write_text(schema.text)
    # JSON is YAML: the generator reads its settings from YAML; no post hooks (it would run ruff on the code)
    (folder / "config.yaml").write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    generated = subprocess.run(
        [
            script("openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.yaml",
            "--meta",
            "none",
            "--output-path",
            f"site/{PACKAGE}",
            "--fail-on-warning",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return folder / "site"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_a_client_generated_from_the_schema_deploys_starts_and_reads_status(database_url, tmp_path, token):
    env = {"POSTGIT_API_TOKEN": token} if token else {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with running_server(database_url, tmp_path, **env) as (_, url), running_workers(database_url, tmp_path):
        site = generate_client(url, headers, tmp_path)
        used = subprocess.run(
            [sys.executable, "-c", USE_THE_CLIENT, url, token or ""],
            env={**os.environ, "PYTHONPATH": str(site)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert used.returncode == 0, used.stdout + used.stderr
        result = json.loads(used.stdout)
        detail = httpx.get(f"{url}/instances/{result['instance']}", headers=headers).json()
    assert result["version"] == 1 and result["created"] is True
    assert result["status"] == "completed" == detail["status"]
    assert result["state"] == detail["state"]
    assert result["state"]["input"] == {"n": 1}
    assert result["without_token"] == ([401, True] if token else [200, False])
