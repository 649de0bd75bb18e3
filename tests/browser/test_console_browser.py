"""The console in headless Chromium against real ``postgit-server`` and ``postgit-worker`` processes."""

from __future__ import annotations

import httpx
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import TOKEN, VIEWER_TOKEN, WIDTH, Stack
from tests.support.waiting import wait_for_sync

SHOUT = {"id": "shout", "type": "Shout", "params": {"text": "hi"}}
APPROVAL = {
    "id": "root",
    "type": "Sequence",
    "children": [
        {"id": "approval", "type": "WaitForEvent", "params": {"event": "approve"}, "assignTo": "$.approval"},
        {"id": "after", "type": "Shout", "params": {"text": "approved"}},
    ],
}
FLOW = {
    "root": {
        "id": "root",
        "type": "Sequence",
        "children": [
            {"id": "fan", "type": "Parallel", "branches": {"left": SHOUT, "right": {**SHOUT, "id": "shout2"}}},
            {"id": "each", "type": "ForEach", "items": {"$ref": "$.input.items"}, "body": {**SHOUT, "id": "item"}},
        ],
    },
    "inputSchema": {"type": "object", "properties": {"items": {"type": "array"}}, "required": ["items"]},
}


def log_in(page: WebDriver, stack: Stack, then: str = "/ui/instances", token: str = TOKEN) -> None:
    """Log the browser in through the login form, landing on ``then``."""
    page.get(f"{stack.url}{then}")
    page.find_element(By.ID, "token").send_keys(token)
    navigate(page, "login")
    assert page.current_url.endswith(then)


def deploy(api: httpx.Client, name: str, definition: dict) -> None:
    response = api.post("/workflows", json={"name": name, "definition": definition})
    assert response.status_code in (200, 201), response.text


def start(api: httpx.Client, name: str, **body: object) -> str:
    response = api.post(f"/workflows/{name}/instances", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def status_of(api: httpx.Client, instance_id: str) -> str:
    return api.get(f"/instances/{instance_id}").json()["status"]


def text(page: WebDriver, css: str) -> str:
    return page.find_element(By.CSS_SELECTOR, css).text


def wait_text(page: WebDriver, css: str, expected: str, timeout: float = 20) -> None:
    def shows() -> bool:
        try:
            found = page.find_elements(By.CSS_SELECTOR, css)
            return bool(found) and expected in found[0].text
        except StaleElementReferenceException:  # the live part was swapped in between
            return False

    wait_for_sync(shows, timeout=timeout, interval=0.1, what=f"{css} to show {expected!r} on {page.current_url}")


def navigate(page: WebDriver, element_id: str, by: str = By.ID) -> None:
    """Click the element (a link or a form's button) and wait until the next page replaced this one."""
    old = page.find_element(By.TAG_NAME, "html")
    page.find_element(by, element_id).click()

    def replaced(_: WebDriver) -> bool:
        try:
            return staleness_of(old)(page)
        except WebDriverException as exc:  # Chromium's answer for a node of a document being replaced
            return "does not belong to the document" in str(exc)

    WebDriverWait(page, 20).until(replaced, f"clicking {element_id} to load another page")


def fits_the_width(page: WebDriver) -> bool:
    return page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_each_page_renders(page, stack):
    url, api = stack.url, stack.api
    deploy(api, "flow", FLOW)
    instance_id = start(api, "flow", input={"items": [1, 2, 3]})
    wait_for_sync(lambda: status_of(api, instance_id) == "completed", timeout=30, what="the instance to complete")
    wait_for_sync(lambda: api.get("/workers").json(), what="the worker to register")

    log_in(page, stack)
    page.get(f"{url}/")
    assert page.current_url.endswith("/ui/instances")
    assert instance_id in text(page, "table.instances")
    page.get(f"{url}/ui/instances?workflow=flow")
    assert page.find_element(By.CSS_SELECTOR, '[data-count="completed"]').text == "1"

    page.get(f"{url}/ui/workflows")
    navigate(page, "flow", By.LINK_TEXT)
    tree = text(page, "#tree")
    assert all(node in tree for node in ("fan", "left", "right", "each", "Parallel", "ForEach"))
    assert page.find_elements(By.NAME, "input.items")

    page.get(f"{url}/ui/instances/{instance_id}")
    assert text(page, "#status") == "completed"
    assert page.find_elements(By.CSS_SELECTOR, '[data-lane="fan / left"] .bar')
    assert page.find_elements(By.CSS_SELECTOR, '[data-lane="fan / right"] .bar')
    page.find_element(By.CSS_SELECTOR, '[data-loop="each"] > summary').click()
    assert len(page.find_elements(By.CSS_SELECTOR, '[data-loop="each"] .row')) == 4  # the summary and 3 items
    assert "approved" not in text(page, "#state")

    page.get(f"{url}/ui/workers")
    assert "Shout" in text(page, "#workers")
    page.get(f"{url}/ui/plugins")
    assert "postgit-example-plugin" in text(page, '[data-node-type="Shout"]')
    page.get(f"{url}/ui/outbox")
    assert "Outbox" in text(page, "h1")
    for path in ("/ui/instances", f"/ui/instances/{instance_id}", "/ui/workflows/flow", "/ui/plugins"):
        page.get(f"{url}{path}")
        assert fits_the_width(page), f"{path} is wider than {WIDTH}px"


def test_a_phone_reads_the_pages_without_scrolling_sideways(page, stack):
    url, api = stack.url, stack.api
    deploy(api, "flow", FLOW)
    instance_id = start(api, "flow", input={"items": [1]})
    log_in(page, stack)
    page.set_window_size(390, 844)
    for path in ("/ui/instances", f"/ui/instances/{instance_id}", "/ui/workflows/flow", "/ui/workers"):
        page.get(f"{url}{path}")
        assert fits_the_width(page), f"{path} is wider than the phone"


def test_a_waiting_instance_updates_live_and_takes_an_event_from_the_console(page, stack):
    url, api = stack.url, stack.api
    deploy(api, "approval", APPROVAL)
    first = start(api, "approval")
    log_in(page, stack, f"/ui/instances/{first}")
    wait_text(page, "#status", "waiting")
    wait_text(page, "#wait-reason", "approve")
    page.execute_script("window.notReloaded = true")
    waiting_step = page.find_element(By.CSS_SELECTOR, "#steps details.step")
    run, attempt = waiting_step.get_attribute("data-run"), waiting_step.get_attribute("data-attempt")
    waiting_step.find_element(By.TAG_NAME, "summary").click()  # opened by the reader: it stays open as it updates
    assert api.post(f"/instances/{first}/events", json={"name": "approve", "data": {"by": "api"}}).status_code == 202
    wait_text(page, "#status", "completed")
    assert page.execute_script("return window.notReloaded === true"), "the page was reloaded"
    step = page.find_element(By.CSS_SELECTOR, f'#steps details.step[data-run="{run}"][data-attempt="{attempt}"]')
    assert step.get_attribute("open") is not None, "the step the reader opened was closed by the live update"
    assert 'by: "api"' in text(page, "#state .json-tree")

    second = start(api, "approval")
    page.get(f"{url}/ui/instances/{second}")
    wait_text(page, "#status", "waiting")
    page.find_element(By.CSS_SELECTOR, "#action-event > summary").click()
    page.find_element(By.CSS_SELECTOR, '#action-event input[name="name"]').send_keys("approve")
    page.find_element(By.CSS_SELECTOR, '#action-event textarea[name="data"]').send_keys('{"by": "console"}')
    navigate(page, "event-submit")
    assert "Send this event" in text(page, "#confirm-form")
    assert status_of(api, second) == "waiting"
    navigate(page, "confirm")
    wait_text(page, "#notice", "event sent")
    wait_text(page, "#status", "completed")
    assert 'by: "console"' in text(page, "#state .json-tree")


def test_the_instance_list_shows_new_instances_without_a_reload(page, stack):
    api = stack.api
    deploy(api, "approval", APPROVAL)
    log_in(page, stack, "/ui/instances?workflow=approval")
    page.execute_script("window.notReloaded = true")
    instance_id = start(api, "approval")
    wait_text(page, "#live-list table.instances", instance_id)
    wait_text(page, "#live-list", "waiting")
    assert page.execute_script("return window.notReloaded === true"), "the page was reloaded"


def test_cancel_asks_first_and_going_back_changes_nothing(page, stack):
    api = stack.api
    deploy(api, "approval", APPROVAL)
    instance_id = start(api, "approval")
    log_in(page, stack, f"/ui/instances/{instance_id}")
    wait_text(page, "#status", "waiting")
    page.find_element(By.CSS_SELECTOR, "#action-cancel > summary").click()
    navigate(page, "cancel-submit")
    assert "Cancel instance" in text(page, "#confirm-form")
    navigate(page, "back")
    wait_text(page, "#status", "waiting")
    assert status_of(api, instance_id) == "waiting"

    page.find_element(By.CSS_SELECTOR, "#action-cancel > summary").click()
    navigate(page, "cancel-submit")
    navigate(page, "confirm")
    wait_text(page, "#notice", "cancelled")
    assert text(page, "#status") == "cancelled"
    assert status_of(api, instance_id) == "cancelled"
    assert not page.find_elements(By.ID, "action-cancel")


def test_a_viewer_sees_actions_disabled_and_is_refused_one(page, stack):
    api = stack.api
    deploy(api, "approval", APPROVAL)
    instance_id = start(api, "approval")
    log_in(page, stack, f"/ui/instances/{instance_id}", token=VIEWER_TOKEN)
    assert text(page, "#who") == "watcher · viewer"
    page.find_element(By.CSS_SELECTOR, "#action-cancel > summary").click()
    button = page.find_element(By.ID, "cancel-submit")
    assert not button.is_enabled() and "it needs the role operator" in text(page, "#action-cancel")
    page.execute_script("arguments[0].disabled = false", button)  # a hand-made request, as a script could send it
    navigate(page, "cancel-submit")
    assert "your role (viewer) may not do this: it needs the role operator" in page.page_source
    assert status_of(api, instance_id) in ("pending", "waiting"), "not cancelled"


def test_a_page_of_1000_instances(page, stack):
    url, api = stack.url, stack.api
    deploy(api, "bulk", {"id": "w", "type": "WaitForEvent", "params": {"event": "never"}})
    for _ in range(2):  # two batches of 500 (the batch limit is 1,000)
        batch = api.post("/workflows/bulk/instances/batch", json={"instances": [{"input": n} for n in range(500)]})
        assert batch.json()["started"] == 500
    waiting = {"workflow": "bulk", "status": "waiting", "limit": 500, "offset": 500}
    wait_for_sync(  # all 1,000 waiting: the list's live part then stays as it is while the test reads it
        lambda: len(api.get("/instances", params=waiting).json()["items"]) == 500,
        timeout=60,
        what="the 1,000 instances to wait for their event",
    )
    log_in(page, stack, "/ui/instances?workflow=bulk")
    assert page.find_element(By.CSS_SELECTOR, '[data-count="all"]').text == "1,000"
    first_page = [row.text for row in page.find_elements(By.CSS_SELECTOR, "table.instances tbody tr")]
    assert len(first_page) == 50
    navigate(page, "next-page")
    second_page = [row.text for row in page.find_elements(By.CSS_SELECTOR, "table.instances tbody tr")]
    assert len(second_page) == 50 and not set(first_page) & set(second_page)
    page.get(f"{url}/ui/instances?workflow=bulk&limit=200")
    pages = 1
    while page.find_elements(By.ID, "next-page"):
        navigate(page, "next-page")
        pages += 1
    assert pages == 5
    assert len(page.find_elements(By.CSS_SELECTOR, "table.instances tbody tr")) == 200


def test_login_once_with_the_token_then_log_out(page, stack):
    url = stack.url
    page.get(f"{url}/ui/workers")
    assert "/ui/login" in page.current_url
    page.find_element(By.ID, "token").send_keys("wrong")
    navigate(page, "login")
    assert "not this server's API token" in text(page, "#error")
    page.find_element(By.ID, "token").send_keys(TOKEN)
    navigate(page, "login")
    wait_for_sync(lambda: page.current_url.endswith("/ui/workers"), what="the workers page after login")
    (cookie,) = page.get_cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    assert page.execute_script("return document.cookie") == ""
    assert TOKEN not in page.page_source

    page.get(f"{url}/docs")
    assert page.title == "Postgit API"
    # Swagger UI (served by the server itself) fetched the schema with the session and shows the API's routes
    wait_for_sync(
        lambda: "/workflows/{name}/instances" in page.find_element(By.TAG_NAME, "body").text,
        what="Swagger UI showing the API's routes",
    )
    fetched = "fetch('/openapi.json').then(r => arguments[0](r.status))"
    assert page.execute_async_script(fetched) == 200
    page.get(f"{url}/ui/instances")
    navigate(page, "logout")
    assert "/ui/login" in page.current_url
    page.get(f"{url}/ui/instances")
    assert "/ui/login" in page.current_url
