"""The web chat renders answers as Markdown, safely, with copy buttons, dark mode and Esc (SPEC §7).

A portal of its own whose llama-server is the fake one, answering with a fixed Markdown text that
holds headings, a list, a fenced code block and HTML that must never run.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.models_app.inference.helpers import FAKE_SERVER
from tests.web.conftest import log_in, watch_script_errors
from tests.web.test_chat_faults import call
from tests.web.portal import ARTIFACTS, manage, portal_env, portal_start, tiny_gguf

pytestmark = pytest.mark.slow
MODEL = "markdown-fake"
ANSWER = """## Steps

1. Boil **water**
2. Add `pasta`

- salt
- time

```python
def cook(minutes: int) -> str:
    return "al dente" if minutes < 10 else "soft"
```

<script>window.__pwned = "script";</script>
<img src="x" onerror="window.__pwned = 'onerror'">

Done, see [the docs](https://example.org/pasta).
"""


@pytest.fixture(scope="module")
def md_portal(tmp_path_factory, redis_url):
    base = tmp_path_factory.mktemp("md-portal")
    answer = base / "answer.md"
    answer.write_text(ANSWER)
    url = redis_url.rsplit("/", 1)[0] + "/12"
    env = portal_env(base=base, redis_url=url, hf_endpoint="http://127.0.0.1:9")
    env.update({"LLAMA_SERVER_BIN": str(FAKE_SERVER), "FAKE_LLAMA_ANSWER_FILE": str(answer),
                "FAKE_LLAMA_TOKEN_SECONDS": "0.03", "NODE_NAME": "md-e2e"})
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "import_model", str(tiny_gguf(base / "md.gguf", name="Md", megabytes=1)), "--id", MODEL)
    ARTIFACTS.mkdir(exist_ok=True)
    portal = portal_start(env=env, log=ARTIFACTS / "md-portal.log")
    call(portal, "POST", "/api/ai/serve", {"modelId": MODEL})
    wait_for(lambda: call(portal, "GET", f"/api/ai/models/{MODEL}")["status"] == "serving", what="the fake model",
             timeout=60)
    yield portal
    portal.stop()


@pytest.fixture
def chat(browser, md_portal):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=md_portal.url,
                                  color_scheme="light")
    context.set_default_timeout(15_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab = context.new_page()
    errors = watch_script_errors(tab)
    log_in(tab)
    yield tab
    context.close()
    assert errors == [], "the page's JavaScript failed"


def _ask(page, text: str = "How do I cook pasta?") -> None:
    page.goto(f"/chat/?new=1&model={MODEL}")
    expect(page.locator("[data-chat-form][data-ready]")).to_be_attached()
    page.get_by_label("Message").fill(text)
    page.keyboard.press("Enter")


def test_an_answer_renders_as_markdown_while_it_streams_and_its_html_never_runs(chat):
    _ask(chat)
    answer = chat.locator(".msg-assistant").last
    expect(answer.locator("h2")).to_have_text("Steps")  # rendered before the stream ends
    expect(answer).to_have_class(re.compile("streaming"))
    expect(answer.locator(".msg-tools")).to_be_attached(timeout=30_000)  # the stream ended
    body = answer.locator(".msg-text")
    expect(body.locator("ol > li")).to_have_count(2)
    expect(body.locator("ol strong")).to_have_text("water")
    expect(body.locator("ul > li")).to_have_count(2)
    expect(body.locator("pre code.hljs")).to_contain_text("def cook(minutes: int)")
    assert body.locator("pre code .hljs-keyword").count() > 0  # highlighted
    assert body.locator("script").count() == 0 and body.locator("img").count() == 0  # nothing loads from elsewhere
    assert chat.evaluate("window.__pwned") is None
    link = body.get_by_role("link", name="the docs")
    assert (link.get_attribute("target"), link.get_attribute("rel")) == ("_blank", "noopener noreferrer")
    chat.screenshot(path=str(ARTIFACTS / "chat-markdown-light.png"), full_page=True)

    # After a reload the stored answer renders the same way.
    chat.reload()
    again = chat.locator(".msg-assistant").last.locator(".msg-text")
    expect(again.locator("pre code.hljs")).to_contain_text("al dente")
    assert again.locator("script").count() == 0 and chat.evaluate("window.__pwned") is None


def test_copy_buttons_copy_the_answer_and_the_code(chat):
    _ask(chat)
    answer = chat.locator(".msg-assistant").last
    expect(answer.locator(".msg-tools")).to_be_attached(timeout=30_000)
    answer.get_by_role("button", name="Copy code").click()
    expect(answer.get_by_role("button", name="Copy code")).to_have_text("Copied")
    assert chat.evaluate("navigator.clipboard.readText()").startswith("def cook(minutes: int) -> str:")
    answer.get_by_role("button", name="Copy answer").click()
    assert chat.evaluate("navigator.clipboard.readText()").strip() == ANSWER.strip()  # the Markdown itself


def test_dark_mode_follows_the_system_and_the_toggle_is_remembered(browser, md_portal):
    context = browser.new_context(base_url=md_portal.url, color_scheme="dark")
    try:
        page = context.new_page()
        log_in(page)
        page.goto("/chat/")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        toggle = page.get_by_role("button", name="Light mode")
        expect(toggle).to_have_attribute("aria-pressed", "true")
        toggle.click()
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark_bg
        page.reload()
        assert page.evaluate("document.documentElement.dataset.theme") == "light"  # remembered over the system
        page.get_by_role("button", name="Dark mode").click()
        page.goto("/")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        page.screenshot(path=str(ARTIFACTS / "models-dark.png"), full_page=True)
    finally:
        context.close()


def test_escape_stops_a_streaming_answer(chat):
    _ask(chat)
    answer = chat.locator(".msg-assistant").last
    expect(answer.locator("h2")).to_have_text("Steps")
    chat.keyboard.press("Escape")
    expect(answer).to_have_class(re.compile("msg-stopped"))
    expect(chat.get_by_role("button", name="Send")).to_be_enabled()


def test_regenerate_and_edit_replace_the_last_exchange(chat):
    _ask(chat, "How do I cook pasta?")
    answer = chat.locator(".msg-assistant").last
    expect(answer.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    answer.get_by_role("button", name="Regenerate").click()
    expect(chat.locator(".msg-assistant.streaming")).to_have_count(1)
    expect(chat.locator(".msg-assistant").last.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    expect(chat.locator(".msg")).to_have_count(2)  # the answer was replaced, not added
    chat.reload()
    expect(chat.locator(".msg")).to_have_count(2)  # and so it is in the stored conversation

    chat.locator(".msg-user").last.get_by_role("button", name="Edit").click()
    expect(chat.get_by_label("Message")).to_have_value("How do I cook pasta?")
    chat.get_by_label("Message").fill("How do I cook rice?")
    chat.keyboard.press("Enter")
    expect(chat.locator(".msg-assistant").last.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    chat.reload()
    expect(chat.locator(".msg")).to_have_count(2)
    expect(chat.locator(".msg-user .msg-text")).to_have_text("How do I cook rice?")
    expect(chat.locator(".msg-assistant .msg-text h2")).to_have_text("Steps")
    # Only the last exchange offers it.
    _ask_more = chat.get_by_label("Message")
    _ask_more.fill("And then?")
    chat.keyboard.press("Enter")
    expect(chat.locator(".msg-assistant").last.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    expect(chat.get_by_role("button", name="Regenerate")).to_have_count(1)
    expect(chat.get_by_role("button", name="Edit")).to_have_count(1)


def test_an_idle_chat_starts_afresh_and_stays_readable_and_searchable(chat, md_portal):
    _ask(chat, "How do I cook quinoa?")
    expect(chat.locator(".msg-assistant").last.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    # Two hours of silence, longer than the session timeout.
    manage(md_portal.env, "shell", "-c",
           "from datetime import timedelta; from django.utils import timezone; from chat.models import ChatSession; "
           "assert ChatSession.objects.filter(active=True, title='How do I cook quinoa?')"
           ".update(last_activity=timezone.now() - timedelta(hours=2)) == 1")

    chat.goto("/chat/")
    expect(chat.get_by_role("status").filter(has_text="idle")).to_contain_text("kept under Past chats")
    expect(chat.locator(".conversation .msg")).to_have_count(0)  # the model starts afresh
    expect(chat.locator("[data-sessions] a", has_text="How do I cook quinoa?")).to_have_count(1)

    search = chat.get_by_label("Search your chats")
    search.fill("QUINOA")
    search.press("Enter")
    found = chat.locator("[data-sessions] a")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("How do I cook quinoa?")
    assert search.input_value() == "QUINOA"
    chat.screenshot(path=str(ARTIFACTS / "chat-search.png"), full_page=True)
    found.click()
    expect(chat.locator(".msg-user .msg-text")).to_have_text("How do I cook quinoa?")
    expect(chat.locator(".msg-assistant .msg-text h2")).to_have_text("Steps")  # readable as it was

    search = chat.get_by_label("Search your chats")
    search.fill("al dente")  # in the code block of every answer
    search.press("Enter")
    expect(chat.locator("[data-sessions] a", has_text="How do I cook quinoa?").locator("mark")).to_have_text("al dente")
    search.fill("no chat says this")
    search.press("Enter")
    expect(chat.locator("[data-sessions-empty]")).to_have_text("No chat mentions “no chat says this”.")
