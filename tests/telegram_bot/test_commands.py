from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from chat.services import session_for_telegram
from models_app.models import AIModel, ServedInstance, Source, Status
from telegram_bot import send
from tests.factories import model_make
from tests.telegram_bot.updates import ADMIN, GROUP, MEMBER, STRANGER, button, message, sticker

pytestmark = pytest.mark.django_db(transaction=True)


def _model(model_id: str, *, status: str = Status.READY, magnet: str = "", **fields) -> AIModel:
    """A ready model; `starting` or `serving` also gives it an instance in that state (no process behind it)."""
    model = model_make(id=model_id, name=model_id, source=Source.HUGGINGFACE, status=status, size=98_362_432,
                       file_name=f"{model_id}.gguf", path="/tmp/none", magnet_uri=magnet, **fields)
    if status in {Status.STARTING, Status.SERVING}:
        ServedInstance.objects.create(model=model, node=settings.NODE_NAME, desired="serving", state=status,
                                      port=9 if status == Status.SERVING else None)
    return model


async def test_it_refuses_strangers_politely(webhook, telegram):
    await webhook.send(message("/ai", user_id=STRANGER))
    await webhook.send(message("hello?", user_id=STRANGER))
    refusal = ("Sorry, this bot only talks to members of its group. Ask an admin to add your Telegram id "
               f"({STRANGER}).")
    assert telegram.texts(STRANGER) == [refusal, refusal]


async def test_it_still_shows_strangers_the_help(webhook, telegram):
    await webhook.send(message("/ai-help", user_id=STRANGER))
    assert telegram.texts(STRANGER)[0].startswith("What I can do:")


async def test_it_refuses_admin_commands_to_members(webhook, telegram):
    await sync_to_async(_model)("owner_repo")
    for text in ("/ai https://huggingface.co/owner/repo", "/ai-serve owner_repo", "/ai_stop owner_repo"):
        await webhook.send(message(text, user_id=MEMBER))
    assert telegram.texts(MEMBER) == [
        "Sorry, only the portal's admins can download models. You can still chat: send /ai.",
        "Sorry, only the portal's admins can start models. You can still chat: send /ai.",
        "Sorry, only the portal's admins can stop models. You can still chat: send /ai.",
    ]
    assert await sync_to_async(lambda: AIModel.objects.get(pk="owner_repo").status)() == Status.READY


async def test_it_refuses_admin_buttons_to_members(webhook, telegram):
    await sync_to_async(_model)("owner_repo")
    await webhook.send(button("serve:owner_repo", user_id=MEMBER))
    assert telegram.texts(MEMBER) == ["Sorry, only the portal's admins can start models. You can still chat: send /ai."]
    assert len(telegram.calls_of("answerCallbackQuery")) == 1


async def test_it_answers_an_unknown_command_helpfully(webhook, telegram):
    await webhook.send(message("/ai-lsit", user_id=MEMBER))
    await webhook.send(message("/frobnicate now", user_id=MEMBER))
    assert telegram.texts(MEMBER) == [
        "I don't know the command /ai-lsit. Send /ai-help to see what I can do.",
        "I don't know the command /frobnicate. Send /ai-help to see what I can do.",
    ]


async def test_it_ignores_commands_for_another_bot_in_a_group(webhook, telegram):
    await webhook.send(message("/ai-list@other_bot", user_id=MEMBER, chat_id=GROUP))
    await webhook.send(message("/weather", user_id=MEMBER, chat_id=GROUP))
    assert telegram.calls_of("sendMessage") == []


async def test_it_answers_a_mistyped_command_of_its_own_in_a_group(webhook, telegram):
    await webhook.send(message("/ai-lsit", user_id=MEMBER, chat_id=GROUP))
    await webhook.send(message("/weather@portal_test_bot", user_id=MEMBER, chat_id=GROUP))
    assert telegram.texts(GROUP) == ["I don't know the command /ai-lsit. Send /ai-help to see what I can do.",
                                     "I don't know the command /weather. Send /ai-help to see what I can do."]


async def test_it_answers_commands_addressed_to_it_in_a_group(webhook, telegram):
    await webhook.send(message("/ai-list@portal_test_bot", user_id=MEMBER, chat_id=GROUP))
    await webhook.send(message("/ai_list@portal_test_bot", user_id=MEMBER, chat_id=GROUP))
    assert telegram.texts(GROUP) == ["No models yet. An admin can download one with /ai <Hugging Face URL>."] * 2


async def test_it_lists_models_with_p2p_figures_and_magnets(webhook, telegram):
    await sync_to_async(_model)("owner_repo", magnet="magnet:?xt=urn:btih:" + "a" * 40, peers=3,
                                uploaded_bytes=2 * 98_362_432, downloaded_bytes=98_362_432,
                                gguf={"quantization": "Q4_1", "sizeLabel": "135M"})
    await sync_to_async(_model)("other_dl", status=Status.DOWNLOADING, download_progress=42.5,
                                downloaded_bytes=41_803_033, download_rate=5_000_000, peers=2)
    await webhook.send(message("/ai-list", user_id=MEMBER))
    assert telegram.texts(MEMBER) == [
        "2 models:\n\n"
        "other_dl\nstatus: downloading 42.5% · 39.9 MB of 93.8 MB · 4.8 MB/s · 2 peers\n"
        "size: 93.8 MB, gguf\nsharing: not seeding, 2 peers, uploaded 0 B, downloaded 39.9 MB, ratio 0.00\n\n"
        "owner_repo\nstatus: ready\nsize: 93.8 MB, gguf, Q4_1, 135M\n"
        "sharing: seeding, 3 peers, uploaded 187.6 MB, downloaded 93.8 MB, ratio 2.00\n"
        "magnet: magnet:?xt=urn:btih:" + "a" * 40]


async def test_a_long_list_pages_with_buttons_in_one_message(webhook, telegram):
    for n in range(23):
        await sync_to_async(_model)(f"owner_repo-{n:02d}", magnet="magnet:?xt=urn:btih:" + f"{n:02d}" * 20)
    await webhook.send(message("/ai_list", user_id=MEMBER))
    [listed] = telegram.messages(MEMBER)
    assert listed["text"].startswith("23 models, page 1 of 5:\n\nowner_repo-22\n")  # newest first
    assert _buttons(listed) == [("1/5", "list:0"), ("Next ›", "list:1")]

    seen = [listed["text"]]
    for page in range(1, 5):
        await webhook.send(button(f"list:{page}", user_id=MEMBER, message_id=listed["message_id"]))
        [shown] = telegram.messages(MEMBER)  # the same message, edited
        assert shown["text"].startswith(f"23 models, page {page + 1} of 5:")
        seen.append(shown["text"])
    assert _buttons(shown) == [("‹ Previous", "list:3"), ("5/5", "list:4")]
    assert all(len(text) <= send.MAX_TEXT and text.count("\nstatus: ") <= 5 for text in seen)
    assert sorted(line for text in seen for line in text.splitlines() if line.startswith("owner_repo-")) == [
        f"owner_repo-{n:02d}" for n in range(23)]

    # The list as it is now: a page past the end (models were removed since) shows the last one.
    await sync_to_async(AIModel.objects.filter(pk__in=["owner_repo-00", "owner_repo-01", "owner_repo-02"]).delete)()
    await webhook.send(button("list:4", user_id=MEMBER, message_id=listed["message_id"]))
    [shown] = telegram.messages(MEMBER)
    assert shown["text"].startswith("20 models, page 4 of 4:\n\nowner_repo-07\n")
    assert _buttons(shown) == [("‹ Previous", "list:2"), ("4/4", "list:3")]


def _buttons(shown: dict) -> list[tuple[str, str]]:
    [row] = shown["reply_markup"]["inline_keyboard"]
    return [(b["text"], b["callback_data"]) for b in row]


async def test_it_offers_a_keyboard_when_serve_has_no_or_a_wrong_id(webhook, telegram):
    await sync_to_async(_model)("owner_repo")
    await webhook.send(message("/ai-serve", user_id=ADMIN))
    await webhook.send(message("/ai-serve nope", user_id=ADMIN))
    first, second = telegram.calls_of("sendMessage")
    assert first.params["text"] == "Which model should I start?"
    assert second.params["text"] == "There is no model with the id 'nope'. Which model should I start?"
    assert second.params["reply_markup"] == {"inline_keyboard": [[{"text": "▶️ owner_repo", "callback_data": "serve:owner_repo"}]]}


async def test_it_says_when_nothing_runs_to_stop(webhook, telegram):
    await sync_to_async(_model)("owner_repo")
    await webhook.send(message("/ai-stop", user_id=ADMIN))
    await webhook.send(message("/ai-stop owner_repo", user_id=ADMIN))
    assert telegram.texts(ADMIN) == ["No model is running.", "owner_repo is not running (ready)."]


async def test_it_offers_served_models_and_serve_buttons_for_admins(webhook, telegram):
    await sync_to_async(_model)("served_one", status=Status.SERVING)
    await sync_to_async(_model)("ready_one")
    await webhook.send(message("/ai", user_id=MEMBER))
    await webhook.send(message("/ai", user_id=ADMIN))
    member, admin = telegram.calls_of("sendMessage")
    assert member.params["text"] == "Pick a model to chat with:"
    assert member.params["reply_markup"] == {"inline_keyboard": [[{"text": "💬 served_one", "callback_data": "chat:served_one"}]]}
    assert admin.params["reply_markup"]["inline_keyboard"][1] == [{"text": "▶️ Start ready_one", "callback_data": "serve:ready_one"}]


async def test_it_tells_members_when_no_model_runs(webhook, telegram):
    await webhook.send(message("/ai", user_id=MEMBER))
    assert telegram.texts(MEMBER) == ["No model is running right now. Ask an admin to start one (/ai-list shows them all)."]


async def test_it_offers_models_to_a_message_without_a_session(webhook, telegram):
    await sync_to_async(_model)("served_one", status=Status.SERVING)
    await webhook.send(message("What is the capital of France?", user_id=MEMBER))
    assert telegram.texts(MEMBER) == ["You are not chatting with a model yet.\n\nPick a model to chat with:"]


async def test_it_stays_quiet_on_group_chatter_without_a_session(webhook, telegram):
    await webhook.send(message("lunch anyone?", user_id=MEMBER, chat_id=GROUP))
    assert telegram.calls_of("sendMessage") == []


async def test_it_says_it_reads_only_text(webhook, telegram):
    await webhook.send(sticker(user_id=MEMBER))
    assert telegram.texts(MEMBER) == ["I can only read text messages. Send /ai-help to see what I can do."]


async def test_it_limits_each_user_to_the_configured_rate(webhook, telegram, settings):
    settings.TELEGRAM_RATE_LIMIT_PER_MINUTE = 3
    for _ in range(5):
        await webhook.send(message("/ai-help", user_id=MEMBER))
    await webhook.send(message("/ai-help", user_id=ADMIN))
    texts = telegram.texts(MEMBER)
    assert len(texts) == 4
    assert texts[3].startswith("You are sending messages faster than I can answer. Please wait ")
    assert len(telegram.texts(ADMIN)) == 1


async def test_it_waits_out_a_flood_limit(webhook, telegram, monkeypatch):
    waits = []

    async def no_wait(seconds):
        waits.append(seconds)

    monkeypatch.setattr(send, "sleep", no_wait)
    telegram.fail("sendMessage", code=429, retry_after=7)
    await webhook.send(message("/ai-help", user_id=MEMBER))
    assert waits == [7.0]
    assert [c.method for c in telegram.calls_of("sendMessage")] == ["sendMessage", "sendMessage"]
    assert telegram.texts(MEMBER)[0].startswith("What I can do:")


async def test_it_survives_a_failing_bot_api(webhook, telegram, monkeypatch):
    async def no_wait(seconds):
        pass

    monkeypatch.setattr(send, "sleep", no_wait)
    telegram.fail("sendMessage", code=500, times=send.ATTEMPTS)
    await webhook.send(message("/ai-help", user_id=MEMBER))
    await webhook.send(message("/ai-help", user_id=MEMBER))
    assert len(telegram.calls_of("sendMessage")) == send.ATTEMPTS + 1
    assert [text[:14] for text in telegram.texts(MEMBER)] == ["What I can do:"]


async def test_it_takes_a_slash_that_starts_no_command_as_chat_text(webhook, telegram):
    await webhook.send(message("/ then a space is no command", user_id=MEMBER))
    assert telegram.texts(MEMBER) == ["You are not chatting with a model yet.\n\n"
                                      "No model is running right now. Ask an admin to start one (/ai-list shows them all)."]


async def test_it_asks_to_wait_while_the_model_is_still_starting(webhook, telegram):
    def starting_session():
        _model("warming_up", status=Status.STARTING)
        session_for_telegram(chat_id=MEMBER, user_id=MEMBER, model_id="warming_up")

    await sync_to_async(starting_session)()
    await webhook.send(message("Hello?", user_id=MEMBER))
    assert telegram.texts(MEMBER) == ["warming_up is still starting. Send your message again in a moment."]
