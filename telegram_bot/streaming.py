"""An answer that appears as it is generated: one message edited in place (at most one edit per
interval, Telegram's flood limits), continued in a new message past 4096 characters, with the
typing action while the model has not said anything yet. In a private chat the growing text is a
draft (`sendMessageDraft`, Telegram's animated preview) and each finished message is sent once; where
drafts are refused (groups, an older Bot API) the message is edited instead. While it streams the text
is plain; the finished messages show the model's Markdown formatted (Telegram HTML), or plain when
Telegram refuses the entities."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from telegram.constants import ChatAction
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from telegram_bot import formatting, send

log = logging.getLogger("aiportal.telegram")

CURSOR = " …"
_DRAFT_IDS = itertools.count(1)  # a draft's id: any non-zero number, one per answer
PIECE = send.MAX_TEXT - len(CURSOR)
TYPING_EVERY = 4.5
_DONE = object()


class StreamingReply:
    """The messages that show one answer; `show()` is throttled, `finish()` always lands."""

    def __init__(self, bot, chat_id: int, *, interval: float, clock: Callable[[], float] = time.monotonic,
                 drafts: bool = False):
        self.bot, self.chat_id, self.interval, self.clock = bot, chat_id, interval, clock
        self.sent: list[tuple[int, tuple[str, bool]]] = []  # message id, (piece shown, with cursor)
        self.rendered = ""
        self.next_at = 0.0
        self.draft_id = next(_DRAFT_IDS) if drafts else 0

    def wait_hint(self, text: str) -> float:
        """How long to wait for more text before showing what is pending."""
        if text == self.rendered or not text.strip():
            return TYPING_EVERY
        return max(0.05, self.next_at - self.clock())

    async def show(self, text: str) -> None:
        if not text.strip() or self.clock() < self.next_at:
            return
        try:
            await self._render(text, cursor=True, attempts=1)
        except RetryAfter as exc:
            self.next_at = self.clock() + send.retry_seconds(exc)
        except TelegramError as exc:
            self.next_at = self.clock() + self.interval  # try again at the next turn, not at once
            log.info("streaming edit skipped: %s", exc)

    async def finish(self, text: str) -> None:
        await self._render(text, cursor=False, attempts=send.ATTEMPTS)
        # The final cut may need fewer messages than the stream showed (a code block closed late packs
        # differently): the ones left over would repeat its words.
        for message_id, _ in self.sent[len(formatting.pieces(text, PIECE)):]:
            await send.quietly(lambda m=message_id: self.bot.delete_message(chat_id=self.chat_id, message_id=m))
        del self.sent[len(formatting.pieces(text, PIECE)):]

    async def _render(self, text: str, *, cursor: bool, attempts: int) -> None:
        pieces = formatting.pieces(text, PIECE)
        if not (cursor and self.draft_id and await self._draft(pieces, attempts)):
            for n, piece in enumerate(pieces):
                last = n == len(pieces) - 1
                await self._piece(n, piece + CURSOR if cursor and last else piece, final=not cursor, attempts=attempts)
        self.rendered = text
        self.next_at = self.clock() + self.interval

    async def _draft(self, pieces: list[str], attempts: int) -> bool:
        """Messages before the last are final: sent once; the last grows as a draft. False: drafts refused."""
        for n, piece in enumerate(pieces[:-1]):
            await self._piece(n, piece, final=True, attempts=attempts)
        try:
            await send.api_call(lambda: self.bot.send_message_draft(
                chat_id=self.chat_id, draft_id=self.draft_id, text=pieces[-1]), attempts=attempts)
        except BadRequest as exc:
            log.info("Telegram refused a draft (%s); editing a message instead", exc)
            self.draft_id = 0
            return False
        return True

    async def _piece(self, n: int, shown: str, *, final: bool, attempts: int) -> None:
        if n < len(self.sent) and self.sent[n][1] == (shown, not final):
            return
        message_id = self.sent[n][0] if n < len(self.sent) else None
        if not final:
            message_id = await self._put(message_id, shown, None, attempts)
        else:
            try:
                message_id = await self._put(message_id, formatting.to_html(shown), ParseMode.HTML, attempts)
            except BadRequest as exc:  # entities Telegram cannot parse: the words still arrive
                log.info("Telegram refused the formatted answer (%s); sending it as plain text", exc)
                message_id = await self._put(message_id, shown, None, attempts)
        if n < len(self.sent):
            self.sent[n] = (message_id, (shown, not final))
        else:
            self.sent.append((message_id, (shown, not final)))

    async def _put(self, message_id: int | None, text: str, parse_mode: str | None, attempts: int) -> int:
        """Edit the message (or send it when new); returns its id."""
        if message_id is not None:
            await send.api_call(lambda: self.bot.edit_message_text(
                chat_id=self.chat_id, message_id=message_id, text=text, parse_mode=parse_mode,
                link_preview_options=send.NO_PREVIEW), attempts=attempts)
            return message_id
        message = await send.api_call(lambda: self.bot.send_message(
            chat_id=self.chat_id, text=text, parse_mode=parse_mode, link_preview_options=send.NO_PREVIEW),
            attempts=attempts)
        return message.message_id


async def stream_to_chat(bot, chat_id: int, deltas: AsyncIterator[str], *, interval: float) -> str:
    """Show the text of `deltas` (the portal's chat stream) as it grows, edits paced by `interval`.

    Returns the whole text; an error of the stream is shown under what was said and re-raised.
    """
    queue: asyncio.Queue = asyncio.Queue()
    pump = asyncio.create_task(_pump(deltas, queue), name="telegram-answer")
    reply = StreamingReply(bot, chat_id, interval=interval, drafts=chat_id > 0)  # users' ids are positive
    try:
        text, error = await _consume(bot, chat_id, queue, reply)
    finally:
        if not pump.done():
            pump.cancel()  # this handler was cancelled: the answer stops too
        await asyncio.gather(pump, return_exceptions=True)
    if error is not None:
        text = f"{text}\n\n⚠️ {_reason(error)}" if text.strip() else f"⚠️ {_reason(error)}"
    await reply.finish(text if text.strip() else "(The model gave an empty answer.)")
    if error is not None:
        raise error
    return text


async def _consume(bot, chat_id: int, queue: asyncio.Queue, reply: StreamingReply) -> tuple[str, Exception | None]:
    text, typed_at = "", -TYPING_EVERY
    while True:
        if not reply.sent and not reply.rendered and time.monotonic() - typed_at >= TYPING_EVERY:
            typed_at = time.monotonic()
            await send.quietly(lambda: bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING))
        try:
            item = await asyncio.wait_for(queue.get(), timeout=reply.wait_hint(text))
        except TimeoutError:
            await reply.show(text)
            continue
        if item is _DONE:
            return text, None
        if isinstance(item, Exception):
            return text, item
        text += item
        await reply.show(text)


async def _pump(deltas: AsyncIterator[str], queue: asyncio.Queue) -> None:
    """The stream into the queue, so that edits and typing notices keep their own pace."""
    try:
        async with aclosing(deltas):
            async for delta in deltas:
                queue.put_nowait(delta)
        queue.put_nowait(_DONE)
    except Exception as exc:  # handed to the consumer, which shows it
        queue.put_nowait(exc)


def _reason(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"The model stopped answering: {message}"
