"""HitEndpoint's URL as hostile input: malformed URLs are refused at deploy (a 4xx naming the node and field, never a
5xx), and one that only becomes malformed when its template renders fails its step at once, without retries.

Besides a list of known malformed URLs, Hypothesis draws URLs from pieces that parsers get wrong (bad octets, brackets,
ports, control and non-ASCII characters, empty hosts) and checks two properties: the deploy-time check never fails
with anything but a definition error, and a URL it accepts is one a request can be built from.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgit import HitEndpoint, Sequence
from postgit.errors import DefinitionError
from postgit.validation import validate_definition
from tests.support.engine import in_process_worker, wait_finished
from tests.support.server import api_client, running_server

MALFORMED = [
    "http://256.1.1.1/x",
    "http://[::1/x",
    "http://01.2.3.4/x",
    "http://1.2.3.04/x",
    "http://0177.0.0.1/x",
    "http://[1:2]/x",
    "http://example.com:99999/x",
    "http://example.com:0/x",
    "http://example.com:port/x",
    "http:///x",
    "http://exa mple.com/x",
    "http://example.com/\x00x",
    "http://example.com/\nx",
    "http://-bad-.example.com/x",
    "http://a..b/x",
    "http://xn--/x",
    "ftp://example.com/x",
    "example.com/x",
]


def definition(url: str) -> dict:
    return {
        "id": "root",
        "type": "Sequence",
        "children": [{"id": "call", "type": "HitEndpoint", "params": {"url": url}}],
    }


@pytest.mark.parametrize("url", MALFORMED)
async def test_a_malformed_url_is_refused_at_deploy_with_the_node_and_field(database_url, url):
    async with api_client(database_url) as client:
        response = await client.post("/workflows", json={"name": "bad-url", "definition": definition(url)})
    assert response.status_code == 422, response.text
    [issue] = response.json()["issues"]
    assert (issue["node_id"], issue["field"]) == ("call", "params.url"), issue
    assert "node 'call'" in response.json()["detail"] and "params.url" in response.json()["detail"]


async def test_a_url_that_renders_malformed_fails_its_step_at_once(service, store, registry, database_url):
    flow = Sequence(id="root", children=[HitEndpoint(id="call", url="http://{{ input.host }}/x")])
    await service.deploy("rendered", flow.to_json())
    rows = [(await service.start("rendered", {"host": host}))[0] for host in ("256.1.1.1", "[::1", "127.0.0.1:99999")]
    async with in_process_worker(store, registry, database_url):
        finished = [await wait_finished(store, row["id"]) for row in rows]
    for instance, row in zip(finished, rows, strict=True):
        assert instance["status"] == "failed"
        assert instance["error"]["type"] == "FatalError"
        assert "node 'call'" in instance["error"]["message"] and "params.url" in instance["error"]["message"]
        assert [step["attempt"] for step in await store.list_steps(row["id"])] == [1], "not retried"


OCTET = st.one_of(st.integers(0, 999).map(str), st.sampled_from(["00", "01", "0x7f", "-1", "", "1e3"]))
HOST = st.one_of(
    st.lists(OCTET, min_size=1, max_size=5).map(".".join),
    st.from_regex(r"\[[0-9a-fA-F:.%]{0,45}\]?", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9_.\-]{0,70}", fullmatch=True),
    st.text(max_size=20),
)
PORT = st.one_of(st.just(""), st.integers(-1, 100_000).map(lambda n: f":{n}"), st.text(max_size=6).map(":".__add__))
REST = st.one_of(st.just("/"), st.text(max_size=30).map("/".__add__), st.text(max_size=10).map("?q=".__add__))
URL = st.one_of(
    st.builds(
        lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
        st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
        HOST,
        PORT,
        REST,
    ),
    st.text(max_size=60),
)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(url=URL)
def test_the_deploy_check_of_any_url_refuses_or_accepts_a_sendable_url(registry, url):
    try:
        validate_definition(definition(url), registry)
    except DefinitionError as exc:
        assert any(issue.node_id == "call" for issue in exc.issues), exc.issues
        return
    request = httpx.Request("GET", url)  # an accepted URL is one a request can be built from
    assert request.url.scheme in ("http", "https") and request.url.host


def test_deploy_never_answers_5xx_for_any_url(database_url, tmp_path):
    with running_server(database_url, tmp_path) as (_, server_url):

        @settings(max_examples=150, deadline=None, derandomize=True, database=None)
        @given(url=URL)
        def deploy(url):
            body = {"name": "fuzz-url", "definition": definition(url)}
            response = httpx.post(f"{server_url}/workflows", json=body, timeout=10)
            assert response.status_code < 500, (url, response.status_code, response.text)

        deploy()
