from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.web.portal import TOKEN
from tests.web.test_browser import CHAT_READY, DEMO, shot

pytestmark = pytest.mark.slow
LONG_ASK = "Write a very long story about a dragon who learns to cook, in many chapters."
GROWN = "() => (document.querySelector('.msg-assistant .msg-text')?.textContent || '').length > 40"
AT_BOTTOM = "box => box.scrollHeight - box.scrollTop - box.clientHeight < 8"


def ask_for_a_long_answer(page) -> None:
    """Start a new chat with the demo model and wait until its answer is streaming."""
    page.goto(f"/chat/?new=1&model={DEMO}")
    expect(page.locator(CHAT_READY)).to_be_attached()
    page.get_by_label("Message").fill(LONG_ASK)
    page.keyboard.press("Enter")
    page.wait_for_function(GROWN, timeout=60_000)


def call(portal, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{portal.url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["result"]


def demo_status(portal) -> str:
    return call(portal, "GET", f"/api/ai/models/{DEMO}")["status"]


@pytest.fixture(scope="module")
def serving(portal):
    call(portal, "POST", "/api/ai/serve", {"modelId": DEMO})
    wait_for(lambda: demo_status(portal) == "serving", what="the demo model serving")
    yield call(portal, "GET", f"/api/ai/models/{DEMO}")["server"]["port"]
    call(portal, "DELETE", f"/api/ai/serve?modelId={DEMO}")
    wait_for(lambda: demo_status(portal) == "ready", what="the demo model stopped")


def llama_server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if argv[0].endswith(b"llama-server") and str(port).encode() in argv:
            return int(proc.name)
    raise AssertionError(f"no llama-server on port {port}")


def answers_saved(page) -> int:
    page.reload()
    return page.locator(".msg-assistant").count()


def test_it_opens_the_server_log_at_its_newest_line_and_follows_it(browser, portal, auth_state, serving):
    # A phone's width wraps the log's long lines, so even a short log overflows its box.
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=portal.url, storage_state=auth_state)
    page = context.new_page()
    page.goto(f"/models/{DEMO}/")
    log = page.get_by_label("Server log", exact=True)
    assert log.evaluate("box => box.scrollHeight > box.clientHeight + 100")
    page.wait_for_function(f"() => ({AT_BOTTOM})(document.querySelector('pre.log'))")
    page.evaluate("() => { window.__log = document.querySelector('pre.log'); }")
    page.wait_for_function(f"() => !window.__log.isConnected && ({AT_BOTTOM})(document.querySelector('pre.log'))")
    page.evaluate("() => { window.__log = document.querySelector('pre.log'); window.__log.scrollTop = 40; }")
    page.wait_for_function("() => !window.__log.isConnected")
    assert log.evaluate("box => box.scrollTop") == 40
    context.close()


def test_it_stops_an_answer_and_keeps_what_was_written(logged_in, serving):
    page = logged_in
    ask_for_a_long_answer(page)
    shot(page, "chat-streaming")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".msg-assistant")).to_have_class(re.compile("msg-stopped"))
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator("[data-chat-error]")).to_have_text("")
    shown = page.locator(".msg-assistant .msg-text").text_content()
    wait_for(lambda: answers_saved(page) == 1, what="the stopped answer in the chat's history")
    expect(page.locator(".msg-user")).to_have_text(re.compile(LONG_ASK))
    expect(page.locator(".msg-assistant")).to_have_class(re.compile("msg-stopped"))
    # A piece already on the wire when Stop aborts the fetch is saved but never drawn: at most that one.
    # Rendered Markdown ends each block with a newline, so a piece that lands mid-paragraph moves it.
    shown = shown.rstrip()
    saved = page.locator(".msg-assistant .msg-text").text_content().rstrip()
    assert saved.startswith(shown)
    assert len(saved) - len(shown) <= 16


def test_it_marks_an_answer_cut_off_by_leaving_the_page(logged_in, serving):
    page = logged_in
    ask_for_a_long_answer(page)
    page.goto("/")
    page.goto("/chat/")
    wait_for(lambda: answers_saved(page) == 1, what="the cut-off answer in the chat's history")
    expect(page.locator(".msg-assistant")).to_have_class(re.compile("msg-stopped"))
    expect(page.locator(".msg-assistant .msg-text")).to_have_text(re.compile(r"\S{3}"))


def test_it_says_so_when_the_model_dies_mid_answer(logged_in, serving):
    page = logged_in
    ask_for_a_long_answer(page)
    os.kill(llama_server_pid(serving), signal.SIGKILL)
    expect(page.locator("[data-chat-error]")).not_to_be_empty(timeout=30_000)
    expect(page.locator(".msg-assistant")).to_have_class(re.compile("msg-failed"))
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_label("Message")).to_have_value(LONG_ASK)
    shot(page, "chat-model-died")
