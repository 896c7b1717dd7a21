from __future__ import annotations

import pytest

from aiportal.errors import Upstream
from telegram_bot import send
from telegram_bot.app import application_get
from telegram_bot.streaming import StreamingReply, stream_to_chat
from tests.telegram_bot.updates import GROUP, MEMBER


async def _bot():
    return (await application_get()).bot


async def _stream(pieces):
    """The pieces as the portal's chat stream gives them."""
    for piece in pieces:
        yield piece


async def test_in_a_group_it_streams_into_one_message_with_throttled_edits(telegram):
    pieces = ["Paris", " is", " the", " capital", " of", " France", "."]

    text = await stream_to_chat(await _bot(), GROUP, _stream(pieces), interval=3600)

    assert text == "Paris is the capital of France."
    assert [c.method for c in telegram.calls_of("sendMessage", "editMessageText")] == ["sendMessage", "editMessageText"]
    assert telegram.calls_of("sendMessage")[0].params["text"] == "Paris …"
    assert telegram.texts(GROUP) == ["Paris is the capital of France."]
    assert len(telegram.calls_of("sendChatAction")) == 1
    assert not telegram.calls_of("sendMessageDraft")


async def test_in_a_private_chat_the_answer_grows_as_a_draft_and_is_sent_once(telegram):
    pieces = ["Paris", " is", " the", " capital", " of", " France", "."]

    text = await stream_to_chat(await _bot(), MEMBER, _stream(pieces), interval=0)

    drafts = telegram.calls_of("sendMessageDraft")
    assert len(drafts) >= 2 and drafts[0].params["text"] == "Paris"
    assert len({d.params["draft_id"] for d in drafts}) == 1  # one draft, animated as it grows
    assert [c.method for c in telegram.calls_of("sendMessage", "editMessageText")] == ["sendMessage"]
    assert telegram.texts(MEMBER) == [text] == ["Paris is the capital of France."]


async def test_where_drafts_are_refused_it_edits_a_message_instead(telegram):
    telegram.fail("sendMessageDraft", code=400, description="Bad Request: method is not available")

    await stream_to_chat(await _bot(), MEMBER, _stream(["Paris", " is", " lovely", "."]), interval=0)

    assert len(telegram.calls_of("sendMessageDraft")) == 1  # asked once, then edits
    assert telegram.calls_of("editMessageText")
    assert telegram.texts(MEMBER) == ["Paris is lovely."]


async def test_a_long_private_answer_sends_each_finished_message_once_while_the_rest_is_a_draft(telegram):
    pieces = [f"Sentence number {n} of a very long answer. " for n in range(400)]

    await stream_to_chat(await _bot(), MEMBER, _stream(pieces), interval=0)

    shown = telegram.texts(MEMBER)
    assert len(shown) == 5 and " ".join(shown).split() == "".join(pieces).split()
    assert not telegram.calls_of("editMessageText")  # nothing sent was rewritten
    assert len(telegram.calls_of("sendMessage")) == 5


async def test_it_continues_an_answer_past_4096_characters_in_new_messages(telegram):
    pieces = [f"Sentence number {n} of a very long answer. " for n in range(400)]

    await stream_to_chat(await _bot(), MEMBER, _stream(pieces), interval=0)

    shown = telegram.texts(MEMBER)
    assert len(shown) == 5
    assert all(len(message) <= send.MAX_TEXT for message in shown)
    assert " ".join(shown).split() == "".join(pieces).split()
    assert not any(message.endswith(" …") for message in shown)


async def test_it_shows_a_failure_under_what_was_said(telegram):
    async def broken():
        yield "Paris"
        yield " is"
        raise Upstream("llama-server for demo is not answering (did it crash? see the model's error): "
                       "RemoteProtocolError: peer closed connection", code="llama_server_down")

    with pytest.raises(Upstream):
        await stream_to_chat(await _bot(), MEMBER, broken(), interval=3600)

    assert telegram.texts(MEMBER) == [
        "Paris is\n\n⚠️ The model stopped answering: llama-server for demo is not answering (did it crash? see the "
        "model's error): RemoteProtocolError: peer closed connection"]


async def test_it_says_when_the_answer_is_empty(telegram):
    await stream_to_chat(await _bot(), MEMBER, _stream([]), interval=0)

    assert telegram.texts(MEMBER) == ["(The model gave an empty answer.)"]


async def test_it_waits_out_a_flood_limit_on_the_last_edit(telegram, monkeypatch):
    waits = []

    async def no_wait(seconds):
        waits.append(seconds)

    monkeypatch.setattr(send, "sleep", no_wait)
    telegram.fail("editMessageText", code=429, retry_after=3)

    await stream_to_chat(await _bot(), GROUP, _stream(["Paris", " is", " lovely."]), interval=3600)

    assert waits == [3.0]
    assert telegram.texts(GROUP) == ["Paris is lovely."]


MARKDOWN = ("## Plan\n\n1. **Boil** water\n2. Add `salt` & <pepper>\n\n```python\nprint('hi')\n```\n\n"
            "See [the docs](https://example.org/cook?a=1&b=2).")


def _chunks(text: str, size: int = 9) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


async def test_the_finished_answer_shows_its_markdown_formatted(telegram):
    text = await stream_to_chat(await _bot(), MEMBER, _stream(_chunks(MARKDOWN)), interval=0)

    assert text == MARKDOWN
    (message,) = telegram.messages(MEMBER)
    assert message["text"] == ("Plan\n\n1. Boil water\n2. Add salt & <pepper>\n\nprint('hi')\n\nSee the docs.")
    entities = {e["type"]: e for e in message["entities"]}
    assert {"bold", "code", "pre", "text_link"} <= set(entities)
    pre = entities["pre"]
    assert (message["text"][pre["offset"]:pre["offset"] + pre["length"]], pre["language"]) == ("print('hi')", "python")
    assert entities["text_link"]["url"] == "https://example.org/cook?a=1&b=2"
    streamed = [c for c in telegram.calls_of("sendMessageDraft") if not c.params.get("parse_mode")]
    assert streamed, "while it streams, the text is plain"


async def test_an_answer_telegram_cannot_format_arrives_as_plain_text(telegram):
    telegram.refuse_entities = True

    await stream_to_chat(await _bot(), MEMBER, _stream(_chunks(MARKDOWN)), interval=0)

    assert telegram.texts(MEMBER) == [MARKDOWN]
    assert [c.params.get("parse_mode") for c in telegram.calls_of("sendMessage")][-2:] == ["HTML", None]


async def test_a_long_formatted_answer_is_split_without_breaking_a_code_block_or_an_entity(telegram):
    code = "\n".join(f"value_{n} = {n} * 2  # one line of the example" for n in range(150))
    answer = f"Here is the script.\n\n```python\n{code}\n```\n\n" + " ".join(f"**point {n}**" for n in range(400))
    assert len(answer) > 9000

    await stream_to_chat(await _bot(), MEMBER, _stream(_chunks(answer, 500)), interval=0)

    messages = telegram.messages(MEMBER)  # each one parsed as Telegram would, or the fake refused it
    assert len(messages) >= 3 and all(len(m["text"]) <= send.MAX_TEXT for m in messages)
    blocks = [(m["text"], e) for m in messages for e in m.get("entities", []) if e["type"] == "pre"]
    assert len(blocks) >= 2  # the code block was longer than a message: closed and opened again
    shown_code = "\n".join(text[e["offset"]:e["offset"] + e["length"]] for text, e in blocks)
    assert shown_code == code and all(e["language"] == "python" for _, e in blocks)
    bold = [m["text"][e["offset"]:e["offset"] + e["length"]] for m in messages for e in m.get("entities", [])
            if e["type"] == "bold"]
    assert bold == [f"point {n}" for n in range(400)]  # no bold run cut in two


async def test_messages_to_a_group_are_spaced_to_its_flood_limit_before_telegram_must_say_so(telegram):
    from telegram.ext import ExtBot

    from telegram_bot.app import outbound_limiter

    bot = ExtBot(telegram.token, base_url=telegram.base_url, rate_limiter=outbound_limiter(group_messages=2,
                                                                                            group_period=1))
    await bot.initialize()
    try:
        for n in range(6):
            await send.say(bot, GROUP, f"message {n}")
    finally:
        await bot.shutdown()

    sent = [call.at for call in telegram.calls_of("sendMessage")]
    assert telegram.texts(GROUP) == [f"message {n}" for n in range(6)]
    # A leaky bucket of two a second: a burst of two, then one every half second (a little slack for the clocks).
    assert all(later - earlier >= 0.45 for earlier, later in zip(sent[1:], sent[2:], strict=False)), sent


async def test_messages_the_final_cut_no_longer_needs_are_deleted(telegram):
    reply = StreamingReply(await _bot(), GROUP, interval=0)
    await reply.show("First words. " * 400)  # two messages while it streams
    assert len(telegram.texts(GROUP)) == 2

    await reply.finish("First words, in the end a short answer.")

    assert telegram.texts(GROUP) == ["First words, in the end a short answer."]
    assert len(telegram.calls_of("deleteMessage")) == 1
