"""The web console in-process: pages, filters and keyset pages, actions with confirmation, login, CSRF, /docs."""

from __future__ import annotations

import html
import re
import uuid

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgit_server.console import timeline
from postgit_server.console.access import COOKIE
from postgit_server.console.actions import INSTANCE_ACTIONS
from tests.server.conftest import TOKEN, deploy, sequence, shout, start
from tests.support.engine import in_process_worker, wait_finished
from tests.support.server import api_client

ORIGIN = {"Origin": "http://postgit.test"}
WAITS = sequence(
    {"id": "approval", "type": "WaitForEvent", "params": {"event": "approve"}, "assignTo": "$.approval"},
    shout("after", text="done"),
)
CONTROL = {
    "root": {
        "id": "root",
        "type": "Sequence",
        "children": [
            {"id": "fan", "type": "Parallel", "branches": {"left": shout("l"), "right": shout("r")}},
            {"id": "each", "type": "ForEach", "items": {"$ref": "$.input.items"}, "body": shout("item")},
            {"id": "check", "type": "If", "condition": "{{ input.flag }}", "then": shout("yes"), "else": shout("no")},
        ],
    },
    "inputSchema": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "description": "things to shout"},
            "flag": {"type": "boolean"},
            "count": {"type": "integer"},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
        },
        "required": ["items"],
    },
}


def text(page: httpx.Response) -> str:
    return html.unescape(page.text)


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def test_root_leads_to_the_console_and_the_pages_render(client):
    await deploy(client, "shouter")
    started = await start(client, "shouter")
    home = await client.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/ui/instances"
    for path, expected in [
        ("/ui/instances", started["id"]),
        ("/ui/workflows", "shouter"),
        ("/ui/workflows/shouter", "Start an instance"),
        (f"/ui/instances/{started['id']}", "Timeline"),
        ("/ui/workers", "Workers"),
        ("/ui/plugins", "Shout"),
        ("/ui/outbox", "Outbox"),
    ]:
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert expected in page.text, path
        assert page.headers["content-type"].startswith("text/html")
    css = await client.get("/ui/static/console.css")
    assert css.status_code == 200
    assert (await client.get("/ui/static/htmx.min.js")).status_code == 200


async def test_the_console_is_not_part_of_the_api_schema(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith("/ui")]


async def test_a_workflow_page_draws_the_tree_and_a_form_from_the_input_schema(client):
    await deploy(client, "flow", CONTROL)
    page = await client.get("/ui/workflows/flow")
    for node in ("fan", "left", "right", "each", "check", "then", "else"):
        assert f">{node}<" in page.text or f'data-node="{node}"' in page.text, node
    assert 'type="checkbox"' in page.text and 'type="number"' in page.text and "<select" in page.text
    assert "things to shout" in page.text

    form = {
        "csrf": csrf_of(page),
        "version": "1",
        "input.items": '["a", "b"]',
        "input.flag": "1",
        "input.count": "3",
        "input.mode": "fast",
    }
    started = await client.post("/ui/workflows/flow/start", data=form, headers=ORIGIN)
    assert started.status_code == 303, text(started)[-600:]
    instance_id = started.headers["location"].rsplit("/", 1)[1]
    detail = (await client.get(f"/instances/{instance_id}")).json()
    assert detail["state"]["input"] == {"items": ["a", "b"], "flag": True, "count": 3, "mode": "fast"}


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"input.items": "[1,"}, "input field 'items': not JSON"),
        ({"input.items": "[]", "input.count": "two"}, "input field 'count': 'two' is not a whole number"),
        ({"input.count": "2"}, "items"),  # the schema requires it
    ],
)
async def test_a_bad_start_form_is_a_one_line_error(client, fields, message):
    await deploy(client, "flow", CONTROL)
    page = await client.get("/ui/workflows/flow")
    answer = await client.post("/ui/workflows/flow/start", data={"csrf": csrf_of(page), **fields}, headers=ORIGIN)
    assert 400 <= answer.status_code < 500
    assert message in text(answer)
    assert (await client.get("/instances")).json()["items"] == []


async def test_instances_filter_count_and_page_by_keyset(client, service):
    await deploy(client, "shouter")
    await deploy(client, "other")
    ids = [(await start(client, "shouter", idempotency_key=f"k{n}"))["id"] for n in range(7)]
    other = (await start(client, "other"))["id"]
    await client.post(f"/instances/{ids[0]}/cancel")

    page = await client.get("/ui/instances", params={"workflow": "shouter", "limit": "3"})
    assert 'data-count="all">7<' in page.text
    assert 'data-count="pending">6<' in page.text and 'data-count="cancelled">1<' in page.text
    seen = []
    while True:
        seen += [found for found in [*ids, other] if found in page.text]
        match = re.search(r'id="next-page" href="([^"]+)"|href="([^"]+)" id="next-page"', page.text)
        if not match:
            break
        page = await client.get((match.group(1) or match.group(2)).replace("&amp;", "&"))
    assert sorted(seen) == sorted(ids) and other not in seen

    by_key = await client.get("/ui/instances", params={"key": "k3"})
    assert ids[3] in by_key.text and ids[4] not in by_key.text
    by_id = await client.get("/ui/instances", params={"id": other})
    assert other in by_id.text and ids[1] not in by_id.text
    cancelled = await client.get("/ui/instances", params={"status": "cancelled"})
    assert ids[0] in cancelled.text and ids[1] not in cancelled.text
    future = await client.get("/ui/instances", params={"from": "2999-01-01T00:00"})
    assert 'data-count="all">0<' in future.text


@pytest.mark.parametrize(
    "params,message",
    [
        ({"status": "sleeping"}, "status 'sleeping'"),
        ({"workflow": "bad name!"}, "workflow"),
        ({"id": "not-a-uuid"}, "not-a-uuid"),
        ({"from": "yesterday"}, "from: 'yesterday' is not a date"),
        ({"after": "garbage"}, "after: 'garbage' is not a page cursor"),
        ({"limit": "0"}, "limit: 0 must be between 1 and 200"),
    ],
)
async def test_bad_filters_are_a_one_line_400(client, params, message):
    page = await client.get("/ui/instances", params=params)
    assert page.status_code == 400
    assert message in text(page)


async def test_cancel_asks_for_confirmation_first(client):
    await deploy(client, "shouter")
    instance_id = (await start(client, "shouter"))["id"]
    page = await client.get(f"/ui/instances/{instance_id}")
    form = {"csrf": csrf_of(page)}
    asked = await client.post(f"/ui/instances/{instance_id}/do/cancel", data=form, headers=ORIGIN)
    assert asked.status_code == 200 and "Cancel instance" in asked.text and 'name="confirmed" value="yes"' in asked.text
    assert (await client.get(f"/instances/{instance_id}")).json()["status"] == "pending"

    done = await client.post(
        f"/ui/instances/{instance_id}/do/cancel", data={**form, "confirmed": "yes"}, headers=ORIGIN
    )
    assert done.status_code == 303
    assert (await client.get(f"/instances/{instance_id}")).json()["status"] == "cancelled"
    again = await client.post(
        f"/ui/instances/{instance_id}/do/cancel", data={**form, "confirmed": "yes"}, headers=ORIGIN
    )
    assert again.status_code == 409 and "already cancelled" in text(again)


async def test_an_event_sent_from_the_console_wakes_the_instance(client, store, registry, database_url):
    await deploy(client, "approval", WAITS)
    instance_id = (await start(client, "approval"))["id"]
    page = await client.get(f"/ui/instances/{instance_id}")
    form = {"csrf": csrf_of(page), "name": "approve", "data": '{"by": "ann"}'}
    asked = await client.post(f"/ui/instances/{instance_id}/do/event", data=form, headers=ORIGIN)
    assert asked.status_code == 200 and "approve" in asked.text
    bad = await client.post(
        f"/ui/instances/{instance_id}/do/event", data={**form, "data": "{nope", "confirmed": "yes"}, headers=ORIGIN
    )
    assert bad.status_code == 400 and "event field 'data': not JSON" in text(bad)
    sent = await client.post(f"/ui/instances/{instance_id}/do/event", data={**form, "confirmed": "yes"}, headers=ORIGIN)
    assert sent.status_code == 303
    async with in_process_worker(store, registry, database_url):
        row = await wait_finished(store, uuid.UUID(instance_id))
    assert row["status"] == "completed"
    page = await client.get(f"/ui/instances/{instance_id}")
    assert "approval" in page.text and '"by": "ann"' in text(page)


async def test_the_live_part_answers_204_while_nothing_changed(client):
    await deploy(client, "approval", WAITS)
    instance_id = (await start(client, "approval"))["id"]
    page = await client.get(f"/ui/instances/{instance_id}")
    live_url = html.unescape(re.search(r'hx-get="([^"]+)"', page.text).group(1))
    assert "wait=25" in live_url  # the page long-polls; without wait the answer is immediate
    live_url = live_url.replace("&wait=25", "")
    unchanged = await client.get(live_url)
    assert unchanged.status_code == 204
    await client.post(f"/instances/{instance_id}/cancel")
    changed = await client.get(live_url)
    assert changed.status_code == 200 and 'data-status="cancelled"' in changed.text
    assert "hx-trigger" not in changed.text  # finished: the page stops polling


async def test_the_timeline_puts_branches_in_lanes_and_summarises_foreach(client, store, registry, database_url):
    await deploy(client, "flow", CONTROL)
    instance_id = (await start(client, "flow", input={"items": list(range(5)), "flag": False}))["id"]
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, uuid.UUID(instance_id)))["status"] == "completed"
    page = (await client.get(f"/ui/instances/{instance_id}")).text
    assert 'data-lane="fan / left"' in page and 'data-lane="fan / right"' in page
    assert 'data-loop="each"' in page and "each \u00d7 5" in page
    assert page.count('class="row"><span class="lane-label">item ') == 5
    assert 'data-run="no"' in page and 'data-run="yes"' not in page


async def test_csrf_refuses_another_origin_and_a_missing_token(client):
    await deploy(client, "shouter")
    instance_id = (await start(client, "shouter"))["id"]
    page = await client.get(f"/ui/instances/{instance_id}")
    url = f"/ui/instances/{instance_id}/do/cancel"
    form = {"csrf": csrf_of(page), "confirmed": "yes"}
    foreign = await client.post(url, data=form, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "another origin" in text(foreign)
    no_origin = await client.post(url, data=form)
    assert no_origin.status_code == 403 and "no Origin" in text(no_origin)
    no_token = await client.post(url, data={"confirmed": "yes"}, headers=ORIGIN)
    assert no_token.status_code == 403 and "CSRF token" in text(no_token)
    client.cookies.clear()  # another browser: the token of this one's session is not its own
    other_browser = await client.post(url, data=form, headers=ORIGIN)
    assert other_browser.status_code == 403
    assert (await client.get(f"/instances/{instance_id}")).json()["status"] == "pending"


async def test_with_a_token_the_console_asks_for_it_once(auth_client):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await auth_client.get("/workflows", headers=bearer)).status_code == 200
    page = await auth_client.get("/ui/instances")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login?next=")
    htmx = await auth_client.get("/ui/instances", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/ui/login")
    live = await auth_client.get(  # a page's live part, once the session is over: back to the page, not the part
        "/ui/instances/live?wait=25",
        headers={"HX-Request": "true", "HX-Current-URL": "http://postgit.test/ui/instances?status=failed"},
    )
    assert live.status_code == 401
    assert live.headers["HX-Redirect"] == "/ui/login?next=%2Fui%2Finstances%3Fstatus%3Dfailed"
    assert (await auth_client.get("/docs")).status_code == 303
    assert (await auth_client.get("/openapi.json")).status_code == 401

    wrong = await auth_client.post("/ui/login", data={"token": "nope", "next": "/ui/workers"}, headers=ORIGIN)
    assert wrong.status_code == 401 and "not this server's API token" in text(wrong)
    foreign = await auth_client.post("/ui/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert COOKIE not in auth_client.cookies

    login = await auth_client.post("/ui/login", data={"token": TOKEN, "next": "/ui/workers"}, headers=ORIGIN)
    assert login.status_code == 303 and login.headers["location"] == "/ui/workers"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie
    workers = await auth_client.get("/ui/workers")
    assert workers.status_code == 200 and TOKEN not in workers.text
    assert (await auth_client.get("/docs")).status_code == 200
    assert (await auth_client.get("/openapi.json")).status_code == 200
    # the API's Bearer auth is unchanged: a session cookie is not an API credential
    assert (await auth_client.get("/workflows")).status_code == 401

    logout = await auth_client.post("/ui/logout", data={"csrf": csrf_of(workers)}, headers=ORIGIN)
    assert logout.status_code == 303 and logout.headers["location"] == "/ui/login"
    assert (await auth_client.get("/ui/workers")).status_code == 303


async def test_a_copy_of_a_logged_out_session_s_cookie_is_refused_by_every_server(database_url):
    async with api_client(database_url, api_token=TOKEN) as one, api_client(database_url, api_token=TOKEN) as two:
        login = await one.post("/ui/login", data={"token": TOKEN}, headers=ORIGIN)
        kept = login.cookies[COOKIE]  # what someone who copied the cookie holds
        two.cookies.set(COOKIE, kept)
        page = await one.get("/ui/workers")
        assert page.status_code == 200 and (await two.get("/ui/workers")).status_code == 200
        assert (await one.post("/ui/logout", data={"csrf": csrf_of(page)}, headers=ORIGIN)).status_code == 303
        one.cookies.set(COOKIE, kept)
        for client in (one, two):  # the server that logged it out, and another sharing its database
            assert (await client.get("/ui/workers")).status_code == 303
            assert (await client.get("/docs")).status_code == 303
            assert (await client.get("/openapi.json")).status_code == 401
        login_again = await two.post("/ui/login", data={"token": TOKEN}, headers=ORIGIN)
        assert login_again.status_code == 303 and (await two.get("/ui/workers")).status_code == 200


async def test_a_tampered_or_foreign_session_cookie_is_refused(database_url):
    async with api_client(database_url, api_token=TOKEN) as one:
        login = await one.post("/ui/login", data={"token": TOKEN}, headers=ORIGIN)
        value = login.cookies[COOKIE]
        one.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
        assert (await one.get("/ui/instances")).status_code == 303
    async with api_client(database_url, api_token="another-token") as other:
        other.cookies.set(COOKIE, value)
        assert (await other.get("/ui/instances")).status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
async def test_login_only_leads_back_to_this_server(auth_client, target):
    login = await auth_client.post("/ui/login", data={"token": TOKEN, "next": target}, headers=ORIGIN)
    assert login.headers["location"] == "/ui/instances"


async def test_the_value_of_a_secret_reaches_no_page(client, store, registry, database_url, monkeypatch):
    secret_value = "CONSOLE-S3CRET-VALUE"
    monkeypatch.setenv("POSTGIT_SECRET_CONSOLE_TEST", secret_value)
    definition = sequence(shout("loud", text={"$secret": "CONSOLE_TEST"}), node_id="root")
    definition["children"][0]["assignTo"] = "$.loud"
    await deploy(client, "secretive", definition)
    instance_id = (await start(client, "secretive"))["id"]
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, uuid.UUID(instance_id)))["status"] == "completed"
    for path in (f"/ui/instances/{instance_id}", "/ui/workflows/secretive", "/ui/instances"):
        page = await client.get(path)
        assert page.status_code == 200
        assert secret_value not in text(page), path
    assert "CONSOLE_TEST" in text(await client.get("/ui/workflows/secretive"))  # the secret's name, not its value


async def test_a_sub_workflow_links_parent_and_child(client, store, registry, database_url):
    await deploy(client, "child")
    await deploy(client, "parent", {"id": "call", "type": "SubWorkflow", "params": {"workflow": "child"}})
    tree = await client.get("/ui/workflows/parent")
    assert 'href="/ui/workflows/child"' in tree.text
    parent_id = (await start(client, "parent"))["id"]
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, uuid.UUID(parent_id)))["status"] == "completed"
    child_id = (await client.get(f"/instances/{parent_id}")).json()["children"][0]["id"]
    parent_page = await client.get(f"/ui/instances/{parent_id}")
    assert f'href="/ui/instances/{child_id}"' in parent_page.text
    child_page = await client.get(f"/ui/instances/{child_id}")
    assert f'href="/ui/instances/{parent_id}"' in child_page.text


async def test_retry_pause_and_resume_are_offered_where_the_instance_allows_them(database_url):
    async with api_client(database_url) as client:
        app = client._transport.app  # type: ignore[attr-defined]

        def offered(status: str, paused: bool = False) -> set[str]:
            return {action.name for action in INSTANCE_ACTIONS if action.offered(app, status, paused)}

        assert offered("failed") == offered("cancelled") == {"retry"}
        assert offered("waiting") == offered("running") == {"cancel", "event", "pause"}
        assert offered("waiting", paused=True) == {"cancel", "event", "resume"}
        assert offered("completed") == set()


async def test_the_session_lasts_12_hours(auth_client):
    login = await auth_client.post("/ui/login", data={"token": TOKEN}, headers=ORIGIN)
    assert "Max-Age=43200" in login.headers["set-cookie"]


async def test_a_foreach_s_items_are_browsed_a_page_at_a_time(client, store, registry, database_url, monkeypatch):
    monkeypatch.setattr(timeline, "ITEMS_SHOWN", 2)
    await deploy(client, "flow", CONTROL)
    instance_id = (await start(client, "flow", input={"items": list(range(5)), "flag": True}))["id"]
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, uuid.UUID(instance_id)))["status"] == "completed"
    items = re.compile(r'<span class="lane-label">(item \d+)</span>')
    first = await client.get(f"/ui/instances/{instance_id}")
    assert items.findall(first.text) == ["item 0", "item 1"] and "later items" in first.text
    later = await client.get(f"/ui/instances/{instance_id}", params={"loop": "each", "items": "4"})
    assert items.findall(later.text) == ["item 4"] and "later items" not in later.text
    assert 'data-loop="each" open' in later.text and "earlier items" in later.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui/workflows/" + "x" * 300,
        "/ui/workflows/bad%00name",
        "/ui/workflows/nope",
        "/ui/workflows/shouter?version=0",
        "/ui/workflows/shouter?version=99999999999",
        "/ui/workflows/shouter?version=7",
        "/ui/instances/not-an-id",
        "/ui/instances/00000000-0000-0000-0000-000000000000",
        "/ui/instances/00000000-0000-0000-0000-000000000000/live?seen=x",
        "/ui/instances/00000000-0000-0000-0000-000000000000/live?seen=x&wait=1",
        "/ui/instances/00000000-0000-0000-0000-000000000000/live?seen=x&wait=nan",
        "/ui/instances/00000000-0000-0000-0000-000000000000/live?wait=31",
        "/ui/instances/live?wait=-1",
        "/ui/instances/live?wait=x&status=lost",
        "/ui/instances?key=a%00b",
        "/ui/instances?workflow=%F0%9F%92%A9",
        "/ui/instances?from=0001-01-01T00:00",
        "/ui/instances?to=99999-01-01",
        "/ui/instances?after=2026-01-01T00:00:00~nope",
        "/ui/instances?limit=99999999999999999999",
        "/ui/outbox?status=lost",
    ],
)
async def test_hostile_page_requests_get_a_4xx_page_never_a_500(client, path):
    await deploy(client, "shouter")
    page = await client.get(path)
    assert 400 <= page.status_code < 500, (path, page.status_code)
    assert 'id="error"' in page.text


async def test_hostile_action_requests_get_a_4xx_never_a_500(client):
    await deploy(client, "shouter")
    instance_id = (await start(client, "shouter"))["id"]
    csrf = csrf_of(await client.get(f"/ui/instances/{instance_id}"))
    for url, form in [
        (f"/ui/instances/{instance_id}/do/explode", {"csrf": csrf}),
        ("/ui/instances/nope/do/cancel", {"csrf": csrf, "confirmed": "yes"}),
        ("/ui/instances/00000000-0000-0000-0000-000000000000/do/cancel", {"csrf": csrf, "confirmed": "yes"}),
        (f"/ui/instances/{instance_id}/do/event", {"csrf": csrf, "confirmed": "yes"}),
        (f"/ui/instances/{instance_id}/do/event", {"csrf": csrf, "confirmed": "yes", "name": "x" * 10_000}),
        (f"/ui/instances/{instance_id}/do/event", {"csrf": csrf, "confirmed": "yes", "name": "e", "data": '"\\u0000"'}),
        ("/ui/workflows/shouter/start", {"csrf": csrf, "idempotency_key": "k" * 500}),
        ("/ui/workflows/shouter/start", {"csrf": csrf, "version": "two"}),
        ("/ui/workflows/nope/start", {"csrf": csrf}),
    ]:
        answer = await client.post(url, data=form, headers=ORIGIN)
        assert 400 <= answer.status_code < 500, (url, form, answer.status_code, text(answer)[-300:])
        assert 'id="error"' in answer.text
    assert (await client.get(f"/instances/{instance_id}")).json()["status"] == "pending"


async def test_the_state_is_a_tree_of_collapsible_parts(client):
    await deploy(client, "shouter")
    state_input = {"order": {"id": 7, "lines": [{"sku": "<b>x</b>"}, {"sku": "y"}]}, "note": None}
    instance_id = (await start(client, "shouter", input=state_input))["id"]
    page = await client.get(f"/ui/instances/{instance_id}")
    tree = page.text.split('class="json-tree"', 1)[1].split("Raw JSON", 1)[0]
    assert tree.count("<details") >= 4  # $, input, order, lines (and each line)
    assert "[2 items]" in tree and '<span class="k">sku</span>' in tree
    assert "&lt;b&gt;" in tree and "<b>x</b>" not in tree  # escaped


async def test_a_page_says_when_the_database_is_unavailable(database_url):
    async with api_client(database_url, db_timeout_seconds=1) as client:
        assert (await client.get("/ui/workflows")).status_code == 200
        name = conninfo_to_dict(database_url)["dbname"]
        with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        page = await client.get("/ui/workflows")
        assert page.status_code == 503 and "Retry-After" in page.headers
        assert page.headers["content-type"].startswith("text/html")
        assert "database unavailable: " in text(page)
        assert (await client.get("/workflows")).json()["detail"].startswith("database unavailable: ")


async def test_the_workers_page_shows_the_queues_each_worker_serves(client, store):
    await store.register_worker("gpu-box", ["Shout"], queues=["gpu"])
    await store.register_worker("any-box", ["Shout"])
    page = await client.get("/ui/workers")
    assert page.status_code == 200
    rows = {
        worker: row for worker, row in re.findall(r'<tr data-worker="([^"]+)">(.*?)</tr>', page.text, flags=re.DOTALL)
    }
    assert re.search(r'<td class="queues"><span class="type">gpu</span>', rows["gpu-box"])
    assert "every queue" in rows["any-box"] and "every queue" not in rows["gpu-box"]


async def test_a_workflow_page_shows_each_steps_queue(client):
    gpu = {**shout("train"), "queue": "gpu"}
    await deploy(client, "queued", {"root": sequence(shout("fetch"), gpu), "queue": "cpu-pool"})
    page = await client.get("/ui/workflows/queued")

    def leaf(node_id: str) -> str:
        return re.search(rf'data-node="{node_id}">(.*?)</li>', page.text, flags=re.DOTALL).group(1)

    assert "queue gpu" in leaf("train") and "queue cpu-pool" in leaf("fetch")
    await deploy(client, "plain", sequence(shout("fetch")))
    assert 'class="queue"' not in (await client.get("/ui/workflows/plain")).text
