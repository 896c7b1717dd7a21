from __future__ import annotations

import re
import socket

import pytest
from playwright.sync_api import expect

from models_app.templatetags.portal_ui import filesize
from tests.web.conftest import log_in
from tests.web.portal import ARTIFACTS, PASSWORD

pytestmark = pytest.mark.slow
DEMO = "smollm2-demo"
CHAT_READY = "[data-chat-form][data-ready]"
GROWTH = """() => {
  window.__lengths = [];
  const box = document.querySelector('[data-conversation]');
  new MutationObserver(() => {
    const last = box.querySelector('.msg-assistant:last-child .msg-text');
    if (last) window.__lengths.push(last.textContent.length);
  }).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def row_of(page, model_id: str):
    return page.locator(f'.model[data-model-id="{model_id}"]')


def mark_page(page) -> None:
    page.evaluate("window.__sameDocument = true")


def same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_it_sends_a_visitor_to_the_login_page(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shot(page, "login")


def test_it_logs_in_and_out(page):
    log_in(page)
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/chat/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/chat/$"))


def test_it_shows_a_wrong_password_next_to_the_form(page):
    page.goto("/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD + "-wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")
    expect(page.get_by_label("Username")).to_have_value("admin")
    shot(page, "login-error")


def test_it_explains_a_port_that_is_taken_and_keeps_the_model_ready(logged_in):
    page = logged_in
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        page.goto(f"/models/{DEMO}/")
        page.get_by_label("Port").fill(str(port))
        page.get_by_role("button", name="Serve", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text(f"Port {port} is in use")
    expect(page.get_by_label("Port")).to_have_value(str(port))
    expect(page.locator(".page-head .badge")).to_have_text("ready")
    shot(page, "detail-error")


def test_the_serve_form_shows_the_memory_the_chosen_context_needs_as_it_is_typed(logged_in):
    page = logged_in
    page.goto(f"/models/{DEMO}/")
    line = page.locator("[data-memory-estimate]")
    base, per_token, default, available = (int(line.get_attribute(f"data-{name}"))
                                           for name in ("base", "per-token", "context", "available"))
    expect(line).to_have_text(f"Needs about {filesize(base + per_token * default)} of memory with a context of "
                              f"{default:,} tokens; node web-e2e has {filesize(available)} available.")
    field = page.get_by_label("Context size")
    field.fill("8192")
    expect(line).to_contain_text(f"Needs about {filesize(base + per_token * 8192)} of memory with a context of 8,192")
    expect(line).not_to_have_class(re.compile("memory-over"))
    too_big = (available - base) // per_token + 1
    assert too_big <= 1_048_576, "this machine has room for the largest context the form takes"
    field.fill(str(too_big))
    expect(line).to_have_class(re.compile("memory-over"))
    expect(line).to_contain_text(f"but node web-e2e has only {filesize(available)} available: use a smaller context")
    shot(page, "serve-memory")
    field.fill("")
    expect(line).to_contain_text(f"with a context of {default:,} tokens; node web-e2e has")


def test_it_serves_the_demo_model_streams_a_chat_answer_and_stops(logged_in):
    page = logged_in
    row = row_of(page, DEMO)
    detail = page.context.new_page()
    detail.goto(f"/models/{DEMO}/")
    mark_page(detail)
    with page.expect_navigation():
        row.get_by_role("button", name=re.compile("^Serve")).click()
    mark_page(page)
    expect(row.locator(".badge")).to_have_text("serving", timeout=60_000)
    expect(row.get_by_text("Serving at")).to_be_visible()
    assert same_document(page)
    expect(page.locator("[data-announcer]")).to_have_text(re.compile("is now serving"))
    shot(page, "models-serving")

    expect(detail.get_by_role("heading", name=re.compile("Server log"))).to_be_visible()
    expect(detail.get_by_role("button", name="Stop serving")).to_be_visible()
    assert same_document(detail)
    detail.close()
    page.goto(f"/models/{DEMO}/")
    expect(page.get_by_label("Server log", exact=True)).to_contain_text("llama-server")
    expect(page.get_by_text(re.compile(r"^http://127\.0\.0\.1:\d+$"))).to_be_visible()
    shot(page, "detail-serving")
    page.goto("/")

    row.get_by_role("link", name="Chat").click()
    expect(page.get_by_label("Model")).to_have_value(DEMO)
    expect(page.locator(CHAT_READY)).to_be_attached()
    page.evaluate(GROWTH)
    page.get_by_label("Message").fill("What is the capital of France? Answer in one sentence.")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-user")).to_have_text(re.compile("capital of France"))
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=60_000)
    answer = page.locator(".msg-assistant .msg-text").last.text_content()
    lengths = page.evaluate("window.__lengths")
    shot(page, "chat")
    assert len(answer) > 0
    assert len(set(lengths)) >= 3 and lengths == sorted(lengths)
    expect(page.locator("[data-chat-error]")).to_have_text("")

    page.reload()
    expect(page.locator(".msg-assistant")).to_have_text(re.compile(re.escape(answer.strip()[:20])))
    expect(page.locator(".sessions a")).to_contain_text(["What is the capital of France?"])

    models = page.context.new_page()
    models.goto("/")
    mark_page(models)
    listed = row_of(models, DEMO)
    with models.expect_navigation():
        listed.get_by_role("button", name=re.compile("^Stop")).click()
    mark_page(models)
    expect(listed.locator(".badge")).to_have_text("ready", timeout=30_000)
    assert same_document(models)
    expect(listed.get_by_role("button", name=re.compile("^Serve"))).to_be_visible()
    shot(models, "models-stopped")

    page.get_by_label("Message").fill("And of Italy?")
    page.keyboard.press("Enter")
    expect(page.locator("[data-chat-error]")).to_contain_text("not serving: serve it first")
    expect(page.get_by_label("Message")).to_have_value("And of Italy?")
    expect(page.locator(".msg")).to_have_count(2)
    shot(page, "chat-error")


def test_it_says_why_a_message_cannot_be_sent(logged_in):
    page = logged_in
    page.goto("/chat/")
    expect(page.get_by_text("No model is being served.")).to_be_visible()
    expect(page.get_by_label("Message")).to_be_disabled()
    shot(page, "chat-empty")
