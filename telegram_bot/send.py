"""Talking to the Bot API safely: plain text (a streamed answer's last edit is formatted by
`formatting`, with this plain text as its fallback, so model output can never break a message), texts
split under Telegram's 4096-character limit, flood limits (RetryAfter) waited out, and the
harmless "message is not modified" ignored."""
from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)

log = logging.getLogger("aiportal.telegram")

MAX_TEXT = 4096
ATTEMPTS = 4
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
T = TypeVar("T")

# Waiting is the one thing tests may shorten; production waits as long as Telegram asks.
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int becomes a timedelta: both are handled
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def not_modified(exc: TelegramError) -> bool:
    return isinstance(exc, BadRequest) and "not modified" in str(exc).lower()


async def api_call(call: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T | None:
    """Run one Bot API call, waiting out flood limits and retrying network hiccups.

    Returns None for an edit that changed nothing; raises what retrying cannot fix.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryAfter as exc:
            if attempt == attempts:
                raise
            log.info("Bot API flood limit: retrying in %ss", retry_seconds(exc))
            await sleep(retry_seconds(exc))
        except (BadRequest, Forbidden) as exc:
            if not_modified(exc):
                return None
            raise
        except NetworkError as exc:
            if attempt == attempts:
                raise
            log.info("Bot API call failed (%s); retrying", exc)
            await sleep(0.5 * attempt)
    return None


def text_split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word break when possible."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _cut_at(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def _cut_at(text: str, limit: int) -> int:
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, limit // 2, limit)
        if at > 0:
            return at + len(separator)
    return limit


def blocks_pack(blocks: list[str], limit: int = MAX_TEXT, *, per_message: int | None = None) -> list[str]:
    """Join blocks with blank lines into as few messages as fit (at most `per_message` pieces each, when
    given); a block too long alone is split."""
    messages: list[str] = []
    current, held = "", 0
    for block in blocks:
        for piece in text_split(block, limit):
            joined = f"{current}\n\n{piece}" if current else piece
            if len(joined) <= limit and (per_message is None or held < per_message):
                current, held = joined, held + 1
                continue
            messages.append(current)
            current, held = piece, 1
    if current:
        messages.append(current)
    return messages


async def say(bot, chat_id: int, text: str, *, markup: InlineKeyboardMarkup | None = None) -> Message | None:
    """Send `text` as plain text (several messages when long; the keyboard goes on the last one)."""
    pieces = text_split(text)
    sent = None
    for n, piece in enumerate(pieces):
        keyboard = markup if n == len(pieces) - 1 else None
        sent = await api_call(lambda p=piece, k=keyboard: bot.send_message(
            chat_id=chat_id, text=p, reply_markup=k, link_preview_options=NO_PREVIEW))
    return sent


async def edit(bot, chat_id: int, message_id: int, text: str, *,
               markup: InlineKeyboardMarkup | None = None) -> Message | bool | None:
    return await api_call(lambda: bot.edit_message_text(
        chat_id=chat_id, message_id=message_id, text=text[:MAX_TEXT], reply_markup=markup,
        link_preview_options=NO_PREVIEW))


async def quietly(call: Callable[[], Awaitable[T]]) -> T | None:
    """A call whose failure must not stop the work around it (typing actions, progress edits)."""
    try:
        return await api_call(call, attempts=1)
    except TelegramError as exc:
        log.info("Bot API call skipped: %s", exc)
        return None
