"""HitEndpoint's allow and deny lists, applied after DNS resolution and on redirects."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from postgit import FatalError, HitEndpoint, Sequence
from postgit.nodes import StepContext
from postgit_builtins.hit_endpoint import HitEndpointParams, close_client, hit_endpoint
from postgit_builtins.network_policy import NetworkPolicy, Rules
from tests.support.engine import in_process_worker, wait_finished

CTX = StepContext("instance", "node", 1, "instance:node", logging.getLogger("test"))


async def call(url: str):
    return await hit_endpoint(CTX, HitEndpointParams(url=url))


@pytest.fixture(autouse=True)
async def clean_policy(monkeypatch):
    monkeypatch.delenv("POSTGIT_HTTP_ALLOW", raising=False)
    monkeypatch.delenv("POSTGIT_HTTP_DENY", raising=False)
    yield
    await close_client()


async def test_cloud_metadata_is_refused_by_default():
    with pytest.raises(FatalError, match=r"169\.254\.169\.254, which POSTGIT_HTTP_DENY denies"):
        await call("http://169.254.169.254/latest/meta-data/")


async def test_a_name_resolving_to_a_denied_network_is_refused(monkeypatch, http_server):
    monkeypatch.setenv("POSTGIT_HTTP_DENY", "127.0.0.0/8,::1")
    port = http_server.url.rsplit(":", 1)[1]
    with pytest.raises(FatalError, match="host localhost resolves to"):
        await call(f"http://localhost:{port}/ok/x")
    assert http_server.requests == []


async def test_an_allow_list_refuses_everything_else(monkeypatch, http_server):
    monkeypatch.setenv("POSTGIT_HTTP_ALLOW", "api.example.com,10.0.0.0/8")
    with pytest.raises(FatalError, match="is not in POSTGIT_HTTP_ALLOW"):
        await call(f"{http_server.url}/ok/x")


async def test_an_allow_list_lets_its_hosts_through(monkeypatch, http_server):
    monkeypatch.setenv("POSTGIT_HTTP_ALLOW", "127.0.0.1")
    assert (await call(f"{http_server.url}/ok/x"))["status"] == 200


async def test_a_redirect_to_a_denied_host_is_refused(monkeypatch, http_server):
    monkeypatch.setenv("POSTGIT_HTTP_DENY", "localhost,169.254.0.0/16")
    port = http_server.url.rsplit(":", 1)[1]
    target = quote(f"http://localhost:{port}/ok/secret", safe="")
    with pytest.raises(FatalError, match="host localhost is denied"):
        await call(f"{http_server.url}/redirect?to={target}")
    assert http_server.hits("/ok/secret") == []


def test_rules_parse_names_wildcards_and_networks():
    rules = Rules.parse(" *.example.com , 10.0.0.0/8,::1 ", "X")
    assert rules.matches_name("api.example.com") and not rules.matches_name("example.org")
    assert rules.matches_address("10.1.2.3") and rules.matches_address("::ffff:10.0.0.1")
    assert not rules.matches_address("11.0.0.1")
    with pytest.raises(ValueError, match="X: 'not a host!' is neither"):
        Rules.parse("not a host!", "X")


def test_deny_wins_over_allow():
    policy = NetworkPolicy(deny=Rules.parse("10.0.0.1", "D"), allow=Rules.parse("10.0.0.0/8", "A"))
    policy.check("ok", ["10.0.0.2"])
    with pytest.raises(Exception, match="denies"):
        policy.check("bad", ["10.0.0.1"])


async def test_a_refused_request_fails_the_step_without_retries(service, store, registry, database_url):
    flow = Sequence(id="root", children=[HitEndpoint(id="metadata", url="http://169.254.169.254/")])
    await service.deploy("ssrf", flow.to_json())
    row, _ = await service.start("ssrf")
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "failed"
    assert instance["error"]["node_id"] == "metadata" and "POSTGIT_HTTP_DENY" in instance["error"]["message"]
    assert len(await store.list_steps(row["id"])) == 1
