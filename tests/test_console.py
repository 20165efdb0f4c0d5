"""The web console in a real browser: Debian's Chromium driven by Selenium against a running stack (API, worker,
real Redis). Each test saves a screenshot under its temporary directory."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ALICE, BOB
from live_stack import Stack, running_stack, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("Debian's chromium and chromium-driver are missing (.ci/run installs them)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (after the skip: selenium is only needed with a browser)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

PREFIX = "ttsqconsole:"
BOOK = "\n\n".join(
    [
        "# Chapter One",
        "The first paragraph of the book is short. It has two sentences.",
        "# Chapter Two",
        "The second chapter starts here. It also has a few words to read aloud.",
        "# Chapter Three",
        "And the last one ends the book.",
    ]
)


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path_factory.mktemp("console"), PREFIX) as running:
        yield running


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1100,1400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: WebDriver, script: str, timeout_s: float = 60, what: str = "") -> object:
    """Poll a JavaScript expression until it is truthy (no sleeps: the page is asked again and again)."""
    return wait_for(lambda: driver.execute_script(f"return ({script});"), timeout_s, what or script)


def open_console(driver: WebDriver, stack: Stack, key: str = ALICE) -> None:
    driver.get(stack.url + "/")
    until(driver, "!document.getElementById('key-form').hidden", 20, "the key field did not appear")
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.ID, "key-save").click()
    until(driver, "document.querySelectorAll('#try-speaker option').length > 0", 20, "speakers did not load")


def shot(driver: WebDriver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))


def errors_in_console(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def sent_requests(driver: WebDriver, stack: Stack) -> list[dict[str, Any]]:
    """The page's own requests so far (url, headers), from Chromium's performance log (read once: it empties)."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        # Only the page's own requests (the browser's start page, before the console, is not ours).
        if message["method"] == "Network.requestWillBeSent" and message["params"]["documentURL"].startswith(stack.url):
            found.append(message["params"]["request"])
    return found


def queue(driver: WebDriver, text: str) -> str:
    area = driver.find_element(By.ID, "narrate-text")
    area.clear()
    driver.execute_script("arguments[0].value = arguments[1];", area, text)
    driver.find_element(By.ID, "queue").click()
    status = until(driver, "/queued ([0-9a-f]{32})/.exec(document.getElementById('narrate-status').textContent)", 20)
    return str(status[1])  # type: ignore[index]


def test_speak_plays_the_audio_as_it_streams(browser: WebDriver, stack: Stack, tmp_path: Path) -> None:
    open_console(browser, stack)
    browser.find_element(By.ID, "speak").click()
    until(browser, "document.getElementById('try-audio').currentTime > 0.3", 30, "the audio did not play")
    assert "first audio after" in browser.find_element(By.ID, "try-status").text
    shot(browser, tmp_path, "speak")
    assert errors_in_console(browser) == []


def test_a_queued_text_progresses_live_then_plays_and_seeks_by_mark(
    browser: WebDriver, stack: Stack, tmp_path: Path
) -> None:
    open_console(browser, stack)
    Select(browser.find_element(By.ID, "narrate-format")).select_by_visible_text("wav")
    job_id = queue(browser, BOOK)
    row = f"document.getElementById('job-{job_id}')"
    until(browser, f"{row} && {row}.dataset.status === 'succeeded'", 120, "the job did not finish on the page")
    shot(browser, tmp_path, "finished")
    audio = f"{row}.querySelector('audio')"
    until(browser, f"{audio}.readyState >= 1", 20, "the result's audio did not load")
    marks = browser.find_elements(By.CSS_SELECTOR, f"#job-{job_id} .marks button")
    assert len(marks) >= 3 and "Chapter Two" in marks[2].text
    marks[2].click()
    start_s = float(marks[2].text.split(" s ")[0])
    until(browser, f"Math.abs({audio}.currentTime - {start_s}) < 1.0 && !{audio}.paused", 20, "seek did not happen")
    until(browser, f"{audio}.currentTime > {start_s} + 0.2", 20, "the result did not play")
    assert errors_in_console(browser) == []


def test_the_progress_bar_moves_without_a_reload_and_cancel_works(
    browser: WebDriver, stack: Stack, tmp_path: Path
) -> None:
    open_console(browser, stack)
    browser.execute_script("window.notReloaded = true;")
    long_text = "\n\n".join(f"Paragraph {n}. " + "This sentence is here to make the job long. " * 4 for n in range(60))
    job_id = queue(browser, long_text)
    bar = f"document.querySelector('#job-{job_id} progress')"
    first = until(browser, f"{bar} && {bar}.value > 0 && {bar}.value", 60, "the bar did not move")
    until(browser, f"{bar} && {bar}.value > {first}", 60, "the bar moved only once")
    assert browser.execute_script("return window.notReloaded === true;")
    # Each long poll carries the last answer's ETag as its cursor, so no change between two polls is waited past.
    polls = [request for request in sent_requests(browser, stack) if f"/v1/jobs/{job_id}?wait=" in request["url"]]
    assert len(polls) >= 2 and all(request["headers"].get("If-None-Match", "").startswith('W/"') for request in polls)
    shot(browser, tmp_path, "running")
    browser.find_element(By.CSS_SELECTOR, f"#job-{job_id} button.cancel").click()
    row = f"document.getElementById('job-{job_id}')"
    until(browser, f"{row}.dataset.status === 'canceled'", 30, "cancel did not show")
    state = requests.get(f"{stack.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {ALICE}"}, timeout=10)
    assert state.json()["status"] == "canceled"


def test_a_key_never_sees_another_keys_jobs(browser: WebDriver, stack: Stack, tmp_path: Path) -> None:
    alice = requests.post(
        f"{stack.url}/v1/jobs", json={"text": "Alice's own."}, headers={"Authorization": f"Bearer {ALICE}"}, timeout=10
    ).json()["id"]
    open_console(browser, stack, BOB)
    until(browser, "document.getElementById('job-list') !== null", 10)
    time_to_list = until(browser, "performance.getEntriesByName(location.origin + '/v1/jobs?limit=20').length", 20)
    assert time_to_list
    shown = browser.execute_script("return [...document.querySelectorAll('#job-list li')].map(li => li.id);")
    assert f"job-{alice}" not in shown
    shot(browser, tmp_path, "bob")


def test_the_page_talks_to_its_own_origin_only(browser: WebDriver, stack: Stack, tmp_path: Path) -> None:
    policy = requests.get(f"{stack.url}/", timeout=10).headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    open_console(browser, stack)
    browser.find_element(By.ID, "speak").click()
    until(browser, "document.getElementById('try-audio').currentTime > 0.1", 30)
    until(browser, "document.querySelectorAll('#worker-list li').length > 0", 20, "workers did not show")
    urls = {request["url"] for request in sent_requests(browser, stack)}
    assert urls and all(url.startswith((stack.url, "blob:", "data:")) for url in urls), urls
    width = browser.execute_script("return document.documentElement.scrollWidth;")
    browser.set_window_size(390, 900)  # a phone's width: nothing sticks out sideways
    assert browser.execute_script("return document.documentElement.scrollWidth;") <= 390 < width
    shot(browser, tmp_path, "phone")
