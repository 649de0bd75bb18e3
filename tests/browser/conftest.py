"""Fixtures for the console's tests in a real browser: one headless Chromium per module, screenshots on failure.

The browser and its driver are Debian's (``chromium``, ``chromium-driver``; ``.ci/run`` installs them): Selenium
is given the driver's path, so it never looks for or downloads one.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import admin_url, url_for
from tests.support.processes import start_worker
from tests.support.server import running_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 800
TOKEN = "browser-s3cret-token"
VIEWER_TOKEN = "browser-viewer-token"


@dataclass(frozen=True)
class Stack:
    """A ``postgit-server`` with an API token (and a viewer's) and a ``postgit-worker``, shared by a module's tests.

    Attributes:
        url: the server's URL.
        api: a client of its API, with the token.
    """

    url: str
    api: httpx.Client


@pytest.fixture(scope="module")
def stack(template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One database, server and worker for the module (starting them per test would cost most of its time)."""
    name = f"postgit_browser_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    logs = tmp_path_factory.mktemp("stack")
    try:
        with running_server(
            url_for(name), logs, POSTGIT_API_TOKEN=TOKEN, POSTGIT_API_TOKENS=f"watcher:viewer:{VIEWER_TOKEN}"
        ) as (_, url):
            worker = start_worker(url_for(name), logs)
            try:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                with httpx.Client(base_url=url, timeout=30, headers=headers) as api:
                    yield Stack(url, api)
            finally:
                worker.stop()
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium at 1280x800, shared by the tests of a module (each test starts from a blank page)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists() and not shutil.which(path)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WIDTH},{HEIGHT}", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: webdriver.Chrome, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """The module's browser for one test: a screenshot at 1280x800 under the test's tmp folder when it fails."""
    browser.delete_all_cookies()
    browser.set_window_size(WIDTH, HEIGHT)
    yield browser
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        browser.set_window_size(WIDTH, HEIGHT)
        path = tmp_path / f"screenshot-{request.node.name}.png"
        browser.save_screenshot(str(path))
        print(f"screenshot of the failing page ({browser.current_url}): {path}")
