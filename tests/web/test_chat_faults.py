from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.portal import TOKEN
from tests.web.test_browser import DEMO, row_of, shot

pytestmark = pytest.mark.slow


def llama_server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if argv[0].endswith(b"llama-server") and str(port).encode() in argv:
            return int(proc.name)
    raise AssertionError(f"no llama-server on port {port}")


def test_it_says_so_when_the_model_dies_mid_answer(logged_in):
    page = logged_in
    api = {"Authorization": f"Token {TOKEN}"}
    page.request.post("/api/ai/serve", headers=api, data={"modelId": DEMO})
    expect(row_of(page, DEMO).locator(".badge")).to_have_text("serving", timeout=60_000)
    port = page.request.get(f"/api/ai/models/{DEMO}", headers=api).json()["result"]["server"]["port"]
    page.goto(f"/chat/?new=1&model={DEMO}")
    page.get_by_label("Message").fill("Write a very long story about a dragon who learns to cook, in many chapters.")
    page.keyboard.press("Enter")
    page.wait_for_function("() => (document.querySelector('.msg-assistant .msg-text')?.textContent || '').length > 40",
                           timeout=60_000)
    os.kill(llama_server_pid(port), signal.SIGKILL)
    expect(page.locator("[data-chat-error]")).not_to_be_empty(timeout=30_000)
    expect(page.locator(".msg-assistant")).to_have_class(re.compile("msg-failed"))
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_label("Message")).to_have_value(re.compile("^Write a very long story"))
    shot(page, "chat-model-died")
    page.request.delete(f"/api/ai/serve?modelId={DEMO}", headers=api)
    page.goto("/")
    expect(row_of(page, DEMO).locator(".badge")).to_have_text("ready", timeout=30_000)
