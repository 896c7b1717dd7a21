from __future__ import annotations

from telegram_bot.access import RateLimiter
from telegram_bot.handlers import command_parse
from telegram_bot.keyboards import MAX_DATA, data_pack, data_unpack, value_resolve
from telegram_bot.send import blocks_pack, text_split


def test_it_reads_both_spellings_of_a_command():
    assert command_parse("/ai-serve demo_model", "portal_bot") == ("ai_serve", ["demo_model"])
    assert command_parse("/ai_serve demo_model", "portal_bot") == ("ai_serve", ["demo_model"])
    assert command_parse("/AI-List@Portal_Bot", "portal_bot") == ("ai_list", [])
    assert command_parse("/ai https://huggingface.co/o/r\nq4.gguf", "portal_bot") == (
        "ai", ["https://huggingface.co/o/r", "q4.gguf"])


def test_it_ignores_a_command_for_another_bot():
    assert command_parse("/ai-list@other_bot", "portal_bot") is None
    assert command_parse("not a command", "portal_bot") is None


def test_it_splits_text_at_paragraphs_then_lines_then_words():
    text = "a" * 3000 + "\n\n" + "b" * 3000
    assert text_split(text) == ["a" * 3000, "b" * 3000]
    words = " ".join(["word"] * 2000)
    pieces = text_split(words)
    assert all(len(p) <= 4096 for p in pieces)
    assert " ".join(pieces).split() == words.split()


def test_it_cuts_text_without_breaks_at_the_limit():
    assert text_split("x" * 5000) == ["x" * 4096, "x" * 904]


def test_it_packs_blocks_into_few_messages():
    blocks = [f"block {n}\n" + "y" * 1000 for n in range(10)]
    messages = blocks_pack(blocks)
    assert len(messages) == 3
    assert all(len(m) <= 4096 for m in messages)
    assert "\n\n".join(messages) == "\n\n".join(blocks)


def test_it_packs_long_model_ids_into_64_bytes_and_finds_them_again():
    long_id = "TheBloke_Some-Very-Long-Model-Name-With-Many-Parts-GGUF_Q4_K_M-2"
    data = data_pack("serve", long_id)
    assert len(data.encode()) <= MAX_DATA
    action, value = data_unpack(data)
    assert action == "serve"
    assert value_resolve(value, ["other", long_id]) == long_id
    assert value_resolve("gone", ["other"]) is None


def test_it_limits_each_user_within_a_sliding_window():
    now = [0.0]
    limiter = RateLimiter(limit=2, window=60, clock=lambda: now[0])
    assert [limiter.allow(1), limiter.allow(1), limiter.allow(1), limiter.allow(2)] == [True, True, False, True]
    assert limiter.wait_seconds(1) == 60
    assert [limiter.first_refusal(1), limiter.first_refusal(1)] == [True, False]
    now[0] = 60.0
    assert limiter.allow(1) is True
