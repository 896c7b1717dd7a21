from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.portal import TOKEN, tiny_gguf
from tests.web.test_browser import mark_page, row_of, same_document, shot

pytestmark = pytest.mark.slow
IDLE_REPO = "webtest/Idle-GGUF"
COUNT_SOCKETS = """(() => {
  window.__sockets = 0;
  const Real = window.WebSocket;
  window.WebSocket = function (...args) { window.__sockets += 1; return new Real(...args); };
  window.WebSocket.prototype = Real.prototype;
})();"""


def test_it_stays_live_on_an_idle_list_page_and_shows_a_new_download_to_its_end(browser, portal, auth_state,
                                                                               fake_hub, tmp_path):
    fake_hub.add_repo(IDLE_REPO, {"idle-q4_0.gguf": tiny_gguf(tmp_path / "idle.gguf", name="Idle", megabytes=4)})
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=portal.url,
                                  storage_state=auth_state)
    context.add_init_script(COUNT_SOCKETS)
    page = context.new_page()
    try:
        page.goto("/")
        indicator = page.locator("[data-live-indicator]")
        expect(indicator).to_have_text("Live")
        mark_page(page)
        time.sleep(20)  # longer than redis-py's 5-s read timeout and the layer's blocking pop together
        expect(indicator).to_have_text("Live")

        answer = httpx.post(f"{portal.url}/api/ai/download", json={"url": IDLE_REPO},
                            headers={"Authorization": f"Token {TOKEN}"}, timeout=30)
        model_id = answer.json()["result"]["id"]
        row = row_of(page, model_id)
        expect(row).to_be_visible()
        expect(row.locator(".badge")).to_have_text("ready", timeout=60_000)
        shot(page, "models-live-after-idle")
        assert same_document(page)
        assert page.evaluate("window.__sockets") == 1
        expect(indicator).to_have_text("Live")
    finally:
        context.close()
