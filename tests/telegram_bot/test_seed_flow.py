"""The whole seed flow through a running portal: /ai <url> against the fake Hub → /ai-list →
/ai-serve → /ai → pick → a real answer from the real llama-server → /ai-clear."""
from __future__ import annotations

import pytest

from tests.fakes.fake_hub import FakeHub, tiny_gguf
from tests.telegram_bot.conftest import SECRET
from tests.telegram_bot.portal import BotPortal
from tests.telegram_bot.updates import ADMIN, MEMBER, button, message

REPO = "TheBloke/SmolLM2-135M-Instruct-GGUF"
MODEL_ID = "TheBloke_SmolLM2-135M-Instruct-GGUF"
SMALL = "smollm2-135m-instruct.Q2_K.gguf"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(demo_gguf):
    hub = FakeHub().start()
    hub.add_repo(REPO, {demo_gguf.name: demo_gguf, SMALL: tiny_gguf(name="small", padding=50_000),
                        "README.md": b"# SmolLM2 GGUF\n"})
    hub.slow_bps = 16_000_000  # about six seconds for the demo model: long enough to see progress
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def portal(tmp_path_factory, demo_gguf, fake_telegram, hub):
    portal = BotPortal(tmp_path_factory.mktemp("bot-portal"), demo_gguf, extra_env={
        "TELEGRAM_BOT_TOKEN": fake_telegram.token, "TELEGRAM_API_BASE_URL": fake_telegram.base_url,
        "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_ADMIN_IDS": str(ADMIN), "TELEGRAM_ALLOWED_IDS": str(MEMBER),
        "TELEGRAM_MAX_TOKENS": "48", "HF_ENDPOINT": hub.url,
    }).start()
    yield portal
    portal.stop()


def _keyboard_message(telegram, chat_id: int) -> dict:
    return [m for m in telegram.messages(chat_id) if m.get("reply_markup")][-1]


def _press(portal, telegram, chat_id: int, *, label_has: str) -> None:
    shown = _keyboard_message(telegram, chat_id)
    data = next(b["callback_data"] for row in shown["reply_markup"]["inline_keyboard"] for b in row
                if label_has in b["text"])
    assert portal.post_update(button(data, user_id=chat_id, message_id=shown["message_id"]), secret=SECRET).status_code == 200


def _say(portal, chat_id: int, text: str) -> None:
    assert portal.post_update(message(text, user_id=chat_id), secret=SECRET).status_code == 200


def test_it_walks_the_whole_seed_flow(portal, fake_telegram, demo_gguf):
    telegram = fake_telegram
    telegram.reset()

    _say(portal, ADMIN, f"/ai {portal_hub_url(portal)}/{REPO}")
    choice = telegram.wait_for(lambda t: [m for m in t.messages(ADMIN) if m.get("reply_markup")])[-1]
    assert choice["text"] == f"{portal_hub_url(portal)}/{REPO} has 2 GGUF files. Which one should I download?"
    _press(portal, telegram, ADMIN, label_has=demo_gguf.name)

    done = telegram.wait_for(lambda t: [x for x in t.texts(ADMIN) if x.startswith("✅ Downloaded")], timeout=120)[0]
    assert done.startswith(f"✅ Downloaded {MODEL_ID} (93.8 MB).\nmagnet: magnet:?xt=urn:btih:")
    assert done.endswith(f"\nStart it with /ai-serve {MODEL_ID}")
    progress = [c.params["text"] for c in telegram.calls_of("editMessageText", "sendMessage")
                if c.params["text"].startswith("⬇️ Downloading")]
    assert any("%" in text and "MB/s" in text for text in progress)

    _say(portal, MEMBER, "/ai-list")
    listing = telegram.wait_for(lambda t: t.texts(MEMBER))[-1]
    assert listing.startswith(f"1 model:\n\nSmolLM2-135M-Instruct.Q4_1 (id: {MODEL_ID})\nstatus: ready\n")
    assert "magnet: magnet:?xt=urn:btih:" in listing

    _say(portal, ADMIN, f"/ai-serve {MODEL_ID}")
    serving = f"✅ {MODEL_ID} is serving. Send /ai to chat with it."
    telegram.wait_for(lambda t: serving in t.texts(ADMIN), timeout=120)

    _say(portal, MEMBER, "/ai")
    telegram.wait_for(lambda t: t.texts(MEMBER)[-1] == "Pick a model to chat with:")
    _press(portal, telegram, MEMBER, label_has=MODEL_ID)
    chatting = f"You are now chatting with {MODEL_ID}. Write a message; /ai-clear ends the conversation."
    telegram.wait_for(lambda t: chatting in t.texts(MEMBER))

    before = len(telegram.texts(MEMBER))
    _say(portal, MEMBER, "What is the capital of France?")
    answer = telegram.wait_for(lambda t: len(t.texts(MEMBER)) > before and not t.texts(MEMBER)[-1].endswith(" …")
                               and t.texts(MEMBER)[-1], timeout=120)
    assert answer.strip() and "⚠️" not in answer

    _say(portal, MEMBER, "/ai-clear")
    cleared = f"Done: I forgot our conversation with {MODEL_ID}. Send /ai to start a new one."
    telegram.wait_for(lambda t: t.texts(MEMBER)[-1] == cleared)

    _say(portal, ADMIN, f"/ai_stop {MODEL_ID}")
    telegram.wait_for(lambda t: t.texts(ADMIN)[-1] == f"⏹ Stopped {MODEL_ID}: it no longer answers chats.")
    portal.wait_status(MODEL_ID, "ready")
    print("\n".join(f"[{who}] {text}" for who, chat in (("admin", ADMIN), ("member", MEMBER))
                    for text in telegram.texts(chat)))


def portal_hub_url(portal) -> str:
    return portal.env["HF_ENDPOINT"]
