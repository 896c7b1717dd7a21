from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from models_app.inference.engine import LlamaEngine
from models_app.models import AIModel
from models_app.services import model_import_local
from tests.models_app.inference.helpers import FAKE_SERVER, write_tiny_gguf
from tests.telegram_bot.updates import ADMIN, MEMBER, button, message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def node(transactional_db, settings, tmp_path):
    """The node daemon's llama engine (with the fake llama-server), stepping as the daemon would.

    Its steps run on the thread Django gives sync code in async context, like the webhook's
    database calls: the in-memory test database allows one writer at a time.
    """
    settings.LLAMA_SERVER_BIN = str(FAKE_SERVER)
    settings.LLAMA_DEFAULT_THREADS = 1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    await sync_to_async(model_import_local)(path=write_tiny_gguf(tmp_path / "tiny.gguf"), model_id="tiny")
    engine = LlamaEngine(node_name=django_settings.NODE_NAME)
    await sync_to_async(engine.start)()

    async def loop():
        while True:
            await sync_to_async(engine.step)()
            await asyncio.sleep(0.05)

    stepping = asyncio.create_task(loop())
    yield engine
    stepping.cancel()
    await sync_to_async(engine.stop)()


async def test_it_edits_the_serve_reply_when_the_model_is_up(webhook, telegram, node):
    await webhook.send(message("/ai-serve tiny", user_id=ADMIN))

    assert telegram.texts(ADMIN) == ["✅ tiny is serving. Send /ai to chat with it."]
    first = telegram.calls_of("sendMessage")[0].params["text"]
    assert first == "⏳ Starting tiny… I will update this message when it is ready."


async def test_it_edits_the_serve_reply_to_the_reason_it_failed(webhook, telegram, node, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_CRASH_AT_LOAD", "1")

    await webhook.send(message("/ai_serve tiny", user_id=ADMIN))

    shown = telegram.texts(ADMIN)[0]
    assert shown.startswith("❌ tiny did not start: Model tiny failed to start: llama-server exited with code 1 "
                            "while loading the model.")


async def test_it_starts_a_model_from_the_ai_keyboard_and_stops_it(webhook, telegram, node):
    await webhook.send(message("/ai", user_id=ADMIN))
    keyboard = telegram.calls_of("sendMessage")[-1].params["reply_markup"]["inline_keyboard"]
    assert keyboard == [[{"text": "▶️ Start tiny", "callback_data": "serve:tiny"}]]

    await webhook.send(button("serve:tiny", user_id=ADMIN))
    assert telegram.texts(ADMIN)[-1] == "✅ tiny is serving. Send /ai to chat with it."

    await webhook.send(message("/ai-stop", user_id=ADMIN))
    assert telegram.calls_of("sendMessage")[-1].params["reply_markup"]["inline_keyboard"] == [
        [{"text": "⏹ tiny", "callback_data": "stop:tiny"}]]
    await webhook.send(button("stop:tiny", user_id=ADMIN))
    assert telegram.texts(ADMIN)[-1] == "⏹ Stopped tiny: it no longer answers chats."
    assert await sync_to_async(lambda: AIModel.objects.get(pk="tiny").status)() in {"stopping", "ready"}
    await webhook.send(message("/ai", user_id=MEMBER))
    assert telegram.texts(MEMBER)[-1] == "No model is running right now. Ask an admin to start one (/ai-list shows them all)."
