"""HitEndpoint's allow and deny lists, applied before and after DNS resolution and on redirects, to every spelling
of an address.

No test here sends a packet off this machine: the private-network spellings go to a network backend that connects
nowhere, and every service reached is the test's own, on loopback.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpcore
import pytest

from postgit import FatalError, ForEach, HitEndpoint, Sequence
from postgit.nodes import StepContext
from postgit_builtins.hit_endpoint import HitEndpointParams, _client, close_client, hit_endpoint
from postgit_builtins.network_policy import (
    BlockedHost,
    GuardedBackend,
    NetworkPolicy,
    Rules,
    destinations,
    ip_literal,
)
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
    assert Rules.parse("Metadata.Internal.", "X").matches_name("METADATA.internal.."), "no case, no trailing dots"
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


# -- addresses in disguise -----------------------------------------------------------------------------------------

LOOPBACK_DENIED = "127.0.0.0/8,::1/128"
LOOPBACK_HOSTS = [
    "0.0.0.0",
    "0",
    "[::]",
    "[::ffff:0.0.0.0]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:0:0:1]",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "127.0.0.1.",
    "0.0.0.0.",
    "LocalHost",
]
"""Spellings of the local host that an HTTP client accepts, each reaching a service listening on loopback."""
PRIVATE_HOSTS = [
    "167772161",
    "012.0.0.1",
    "0xa.1",
    "0xa000001",
    "10.1",
    "10.0.0.1.",
    "::ffff:10.0.0.1",
    "::ffff:a00:1",
    "::10.0.0.1",
    "64:ff9b::a00:1",
    "2002:a00:1::",
]
"""Spellings of 10.0.0.1: IPv4 shorthand, decimal, octal, hexadecimal, mapped, compatible, NAT64, 6to4."""
MORE_LOOPBACK_HOSTS = ["0177.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "0.1.2.3"]
"""Spellings an HTTP client refuses or that do not reach loopback on this machine, checked without connecting."""


@pytest.fixture
def loopback_service():
    """A recording service on 127.0.0.1 and on [::1], on the same port."""
    from tests.support.http_server import start_recording_server

    for _ in range(20):
        v4 = start_recording_server("127.0.0.1")
        try:
            v6 = start_recording_server("::1", v4.port)
        except OSError:  # the port is taken on ::1: another one
            v4.close()
            continue
        try:
            yield v4, v6
        finally:
            v4.close()
            v6.close()
        return
    pytest.fail("no port free on both 127.0.0.1 and ::1")


def spelled(host: str, port: int, path: str) -> str:
    return f"http://{host}:{port}{path}"


async def test_every_spelling_of_the_local_host_reaches_it_when_loopback_is_allowed(loopback_service):
    v4, v6 = loopback_service
    for host in LOOPBACK_HOSTS:
        assert (await call(spelled(host, v4.port, "/ok/allowed")))["status"] == 200, host
    assert len(v4.hits("/ok/allowed")) + len(v6.hits("/ok/allowed")) == len(LOOPBACK_HOSTS)


async def test_no_spelling_of_the_local_host_gets_past_a_loopback_deny(monkeypatch, loopback_service):
    monkeypatch.setenv("POSTGIT_HTTP_DENY", LOOPBACK_DENIED)
    v4, v6 = loopback_service
    for host in LOOPBACK_HOSTS:
        with pytest.raises(FatalError, match="POSTGIT_HTTP_DENY"):
            await call(spelled(host, v4.port, "/ok/denied"))
    assert v4.requests == [] and v6.requests == []


async def test_a_redirect_to_a_disguised_local_host_is_refused(monkeypatch, loopback_service):
    monkeypatch.setenv("POSTGIT_HTTP_DENY", "127.0.0.0/8")  # [::1] is allowed, 0 reaches 127.0.0.1 too
    v4, v6 = loopback_service
    target = quote(spelled("0", v4.port, "/ok/redirected"), safe="")
    with pytest.raises(FatalError, match=r"0\.0\.0\.0 \(which reaches 127\.0\.0\.1, ::1\), which POSTGIT_HTTP_DENY"):
        await call(f"{v6.url}/redirect?to={target}")
    assert len(v6.requests) == 1 and v4.requests == []


class NoConnections(httpcore.AsyncNetworkBackend):
    """A network backend that records where it was asked to connect and connects nowhere."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.asked.append(host)
        raise httpcore.ConnectError("not connecting in this test")


@pytest.mark.parametrize(
    ("deny", "hosts"),
    [(LOOPBACK_DENIED, LOOPBACK_HOSTS + MORE_LOOPBACK_HOSTS), ("10.0.0.0/8", PRIVATE_HOSTS)],
    ids=["loopback", "private network"],
)
async def test_the_guard_refuses_every_spelling_before_connecting(deny, hosts):
    backend = GuardedBackend(NetworkPolicy(deny=Rules.parse(deny, "POSTGIT_HTTP_DENY")))
    backend.inner = NoConnections()
    for host in hosts:
        with pytest.raises(BlockedHost, match="POSTGIT_HTTP_DENY"):
            await backend.connect_tcp(host.strip("[]"), 80)
    assert backend.inner.asked == []


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
async def test_a_private_network_spelled_in_a_url_is_refused_without_connecting(monkeypatch, host):
    monkeypatch.setenv("POSTGIT_HTTP_DENY", "10.0.0.0/8")
    url = spelled(f"[{host}]" if ":" in host else host, 80, "/x")
    try:
        HitEndpointParams(url=url)
    except ValueError:
        return  # refused as malformed before any request (a leading-zero octet)
    client = await _client()
    client._transport._pool._network_backend.inner = NoConnections()
    with pytest.raises(FatalError, match="POSTGIT_HTTP_DENY"):
        await call(url)


def test_addresses_count_as_every_place_they_reach():
    assert [str(ip) for ip in destinations("0.0.0.0")] == ["0.0.0.0", "127.0.0.1", "::1"]
    assert [str(ip) for ip in destinations("::")] == ["::", "127.0.0.1", "::1"]
    assert [str(ip) for ip in destinations("::ffff:10.0.0.1")] == ["10.0.0.1"]
    assert [str(ip) for ip in destinations("64:ff9b::a00:1")] == ["64:ff9b::a00:1", "10.0.0.1"]
    assert [str(ip) for ip in destinations("2002:a00:1::")] == ["2002:a00:1::", "10.0.0.1"]
    assert [str(ip) for ip in destinations("::1")] == ["::1"]
    assert ip_literal("0x7f.1") == "127.0.0.1" and ip_literal("0177.0.0.1") == "127.0.0.1"
    assert ip_literal("2130706433") == "127.0.0.1" and ip_literal("127.1.") == "127.0.0.1"
    assert ip_literal("example.com") is None and ip_literal("1.2.3.4.5") is None
    policy = NetworkPolicy(deny=Rules(), allow=Rules.parse("127.0.0.1", "A"))
    with pytest.raises(BlockedHost, match="is not in POSTGIT_HTTP_ALLOW"):
        policy.check("0", ["0.0.0.0"])  # it may reach ::1 too, which the allow list does not name


async def test_disguised_addresses_fail_their_steps_in_a_worker(
    service, store, registry, database_url, monkeypatch, loopback_service
):
    monkeypatch.setenv("POSTGIT_HTTP_DENY", LOOPBACK_DENIED)
    v4, v6 = loopback_service
    urls = [spelled(host, v4.port, "/ok/worker") for host in LOOPBACK_HOSTS]
    flow = ForEach(
        id="each",
        items=urls,
        body=HitEndpoint(id="hit", url="{{ item }}"),
        tolerated_failures="100%",
        assign_to="$.out",
    )
    await service.deploy("disguised", flow.to_json())
    row, _ = await service.start("disguised")
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert v4.requests == [] and v6.requests == []
    errors = instance["state"]["out"]["errors"]
    assert len(errors) == len(urls)
    assert all("POSTGIT_HTTP_DENY" in error["error"]["message"] for error in errors), errors
    assert all(step["attempt"] == 1 for step in await store.list_steps(row["id"])), "refusals are not retried"
