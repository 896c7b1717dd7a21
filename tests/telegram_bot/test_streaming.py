from __future__ import annotations

import pytest

from aiportal.errors import Upstream
from telegram_bot import send
from telegram_bot.app import application_get
from telegram_bot.streaming import stream_to_chat
from tests.telegram_bot.updates import MEMBER


async def _bot():
    return (await application_get()).bot


async def test_it_streams_into_one_message_with_throttled_edits(telegram):
    pieces = ["Paris", " is", " the", " capital", " of", " France", "."]

    text = await stream_to_chat(await _bot(), MEMBER, lambda: iter(pieces), interval=3600)

    assert text == "Paris is the capital of France."
    assert [c.method for c in telegram.calls_of("sendMessage", "editMessageText")] == ["sendMessage", "editMessageText"]
    assert telegram.calls_of("sendMessage")[0].params["text"] == "Paris …"
    assert telegram.texts(MEMBER) == ["Paris is the capital of France."]
    assert len(telegram.calls_of("sendChatAction")) == 1


async def test_it_continues_an_answer_past_4096_characters_in_new_messages(telegram):
    pieces = [f"Sentence number {n} of a very long answer. " for n in range(400)]

    await stream_to_chat(await _bot(), MEMBER, lambda: iter(pieces), interval=0)

    shown = telegram.texts(MEMBER)
    assert len(shown) == 5
    assert all(len(message) <= send.MAX_TEXT for message in shown)
    assert " ".join(shown).split() == "".join(pieces).split()
    assert not any(message.endswith(" …") for message in shown)


async def test_it_shows_a_failure_under_what_was_said(telegram):
    def broken():
        yield "Paris"
        yield " is"
        raise Upstream("llama-server for demo is not answering (did it crash? see the model's error): "
                       "RemoteProtocolError: peer closed connection", code="llama_server_down")

    with pytest.raises(Upstream):
        await stream_to_chat(await _bot(), MEMBER, broken, interval=3600)

    assert telegram.texts(MEMBER) == [
        "Paris is\n\n⚠️ The model stopped answering: llama-server for demo is not answering (did it crash? see the "
        "model's error): RemoteProtocolError: peer closed connection"]


async def test_it_says_when_the_answer_is_empty(telegram):
    await stream_to_chat(await _bot(), MEMBER, lambda: iter([]), interval=0)

    assert telegram.texts(MEMBER) == ["(The model gave an empty answer.)"]


async def test_it_waits_out_a_flood_limit_on_the_last_edit(telegram, monkeypatch):
    waits = []

    async def no_wait(seconds):
        waits.append(seconds)

    monkeypatch.setattr(send, "sleep", no_wait)
    telegram.fail("editMessageText", code=429, retry_after=3)

    await stream_to_chat(await _bot(), MEMBER, lambda: iter(["Paris", " is", " lovely."]), interval=3600)

    assert waits == [3.0]
    assert telegram.texts(MEMBER) == ["Paris is lovely."]
