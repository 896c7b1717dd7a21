from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from models_app.hub import client
from models_app.models import AIModel
from tests.fakes.fake_hub import FakeHub, tiny_gguf
from tests.telegram_bot.updates import ADMIN, button, message

pytestmark = pytest.mark.django_db(transaction=True)
NO_GGUF = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
MULTI = "owner/Multi-GGUF"


@pytest.fixture(scope="module")
def fake_hub():
    hub = FakeHub().start()
    hub.add_repo(NO_GGUF, {"model.safetensors": bytes(range(256)) * 100, "config.json": b"{}"})
    hub.add_repo("unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF", {"q4.gguf": tiny_gguf(name="ds")})
    hub.add_repo(MULTI, {"multi.Q8_0.gguf": tiny_gguf(name="m8", padding=60_000),
                         "multi.Q4_0.gguf": tiny_gguf(name="m4", padding=30_000)})
    yield hub
    hub.stop()


@pytest.fixture
def hub(fake_hub, settings):
    settings.HF_ENDPOINT = fake_hub.url
    settings.HF_TOKEN = None
    client._info_cache.clear()
    return fake_hub


def _count_models() -> int:
    return AIModel.objects.count()


async def test_it_offers_the_gguf_repos_the_search_found_for_a_repo_without_gguf(webhook, telegram, hub):
    await webhook.send(message(f"/ai {hub.url}/{NO_GGUF}", user_id=ADMIN))

    reply = telegram.calls_of("sendMessage")[-1].params
    assert reply["text"].startswith(f"Could not download {hub.url}/{NO_GGUF}: {NO_GGUF} holds no GGUF file")
    assert reply["text"].endswith("\n\nGGUF repos the Hub search found:")
    labels = [row[0]["text"] for row in reply["reply_markup"]["inline_keyboard"]]
    assert labels == ["⬇️ unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF"]
    assert await sync_to_async(_count_models)() == 0


async def test_it_offers_the_files_of_a_repo_with_several_ggufs(webhook, telegram, hub):
    await webhook.send(message(f"/ai {hub.url}/{MULTI}", user_id=ADMIN))

    reply = telegram.calls_of("sendMessage")[-1].params
    assert reply["text"] == f"{hub.url}/{MULTI} has 2 GGUF files. Which one should I download?"
    labels = [row[0]["text"] for row in reply["reply_markup"]["inline_keyboard"]]
    assert [label.split(" (")[0] for label in labels] == ["multi.Q8_0.gguf", "multi.Q4_0.gguf"]
    assert await sync_to_async(_count_models)() == 0


async def test_it_offers_the_files_when_the_named_one_does_not_exist(webhook, telegram, hub):
    await webhook.send(message(f"/ai {hub.url}/{MULTI} multi.Q5_K_M.gguf", user_id=ADMIN))

    reply = telegram.calls_of("sendMessage")[-1].params
    assert reply["text"] == (f"Could not download {hub.url}/{MULTI}: The repository has no file 'multi.Q5_K_M.gguf'."
                             "\n\nThe repo's GGUF files:")
    assert len(reply["reply_markup"]["inline_keyboard"]) == 2


async def test_it_explains_an_unknown_repo(webhook, telegram, hub):
    await webhook.send(message(f"/ai {hub.url}/nobody/nothing", user_id=ADMIN))

    assert telegram.texts(ADMIN)[0].startswith(f"Could not download {hub.url}/nobody/nothing: ")
    assert await sync_to_async(_count_models)() == 0


async def test_it_says_an_old_download_button_has_expired(webhook, telegram, hub):
    await webhook.send(button("dl:0123456789abcdef", user_id=ADMIN))

    assert telegram.texts(ADMIN) == ["That button has expired. Send /ai <Hugging Face URL> again."]


async def test_it_lists_the_quantizations_when_the_one_named_is_not_there(webhook, telegram, hub):
    await webhook.send(message(f"/ai {MULTI}:Q5_K_M", user_id=ADMIN))

    reply = telegram.calls_of("sendMessage")[-1].params
    assert reply["text"] == (f"Could not download {MULTI}:Q5_K_M: The repository has no Q5_K_M file; "
                             "its quantizations: Q4_0, Q8_0.\n\nThe repo's GGUF files:")
    labels = [row[0]["text"].split(" (")[0] for row in reply["reply_markup"]["inline_keyboard"]]
    assert sorted(labels) == ["multi.Q4_0.gguf", "multi.Q8_0.gguf"]
    assert await sync_to_async(_count_models)() == 0
