"""Chat sessions: the one place that talks to a model with a conversation, for the web UI and the bot.

A session belongs to a web user or to a Telegram user in one chat. It remembers the model and
the turns; after CHAT_SESSION_TIMEOUT_MINUTES of silence it starts a fresh context (its
`was_expired` is then True, so the interface can say so). A web user's conversation until then is
kept as a past chat of its own, to read and search in the sidebar; the bot, which has no way to
show past chats, forgets it. Replies stream as text deltas; both turns are saved once the answer
is complete.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from asgiref.sync import async_to_sync, sync_to_async
from django.db import DatabaseError, transaction
from django.utils import timezone

from aiportal.errors import ApplicationError, Conflict
from chat import history, llm
from chat.models import TITLE_CHARS, ChatMessage, ChatSession
from chat.selectors import (
    session_active_telegram,
    session_active_web,
    session_context_size,
    session_is_idle,
    session_turns,
)
from models_app.selectors import model_get

log = logging.getLogger("aiportal.chat")
MAX_MESSAGE_CHARS = 32_000
# Small models answer far better with a system prompt than with none.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
# Ends a saved answer the reader stopped taking (Stop pressed, page left): the web chat shows it as a marker.
CUT_OFF_MARK = " (stopped)"


def session_start(*, model_id: str, user=None, telegram_chat_id: int | None = None,
                  telegram_user_id: int | None = None, system_prompt: str | None = None) -> ChatSession:
    """A new, empty session with the model; the owner's previous session ends."""
    system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    model = model_get(model_id=model_id)
    owner = _owner(user=user, telegram_chat_id=telegram_chat_id, telegram_user_id=telegram_user_id)
    with transaction.atomic():
        ChatSession.objects.filter(active=True, **owner).update(active=False)
        return ChatSession.objects.create(model=model, system_prompt=system_prompt, **owner)


def session_for_telegram(*, chat_id: int, user_id: int, model_id: str | None = None) -> ChatSession | None:
    """The Telegram user's session in this chat (a new one with `model_id` when given), or None."""
    if model_id is not None:
        return session_start(model_id=model_id, telegram_chat_id=chat_id, telegram_user_id=user_id)
    return _refreshed(session_active_telegram(chat_id=chat_id, user_id=user_id))


def session_for_web_user(*, user, model_id: str | None = None) -> ChatSession | None:
    """The web user's session (a new one with `model_id` when given), or None."""
    if model_id is not None:
        return session_start(model_id=model_id, user=user)
    return _refreshed(session_active_web(user=user))


def session_expire_if_idle(*, session: ChatSession) -> bool:
    """Start a fresh context for a session silent too long; True when it did (see the module docstring)."""
    if not session_is_idle(session):
        return False
    now = timezone.now()
    with transaction.atomic():
        if session.user_id is not None and session.messages.exists():
            _archive(session)
        else:
            session.messages.all().delete()
        session.title, session.last_activity = "", now
        session.save(update_fields=["title", "last_activity"])
    session.was_expired = True
    return True


def _archive(session: ChatSession) -> ChatSession:
    """Move the session's conversation to a new, ended session that looks as it did (title, times)."""
    past = ChatSession.objects.create(user_id=session.user_id, model_id=session.model_id, title=session.title,
                                      system_prompt=session.system_prompt, active=False)
    ChatSession.objects.filter(pk=past.pk).update(created_at=session.created_at, last_activity=session.last_activity)
    session.messages.update(session=past)
    return past


def session_send(*, session: ChatSession, text: str, max_tokens: int = 512, temperature: float = 0.7,
                 replace_last: bool = False) -> AsyncIterator[str]:
    """Send `text` with the conversation so far; returns the reply as an async stream of text deltas.

    `replace_last` asks again in place of the last question and its answer (regenerate, or an edited
    question): the model sees the conversation before them, and they are replaced only once the new
    answer is complete. Checks (message, model, context) raise here, before anything streams. When
    the model fails mid-answer the error propagates and the history stays as it was.
    """
    text = _clean(text)
    if session.model_id is None:
        raise Conflict("This chat has no model (it was removed). Pick a model to start a new chat.",
                       code="session_without_model")
    session_expire_if_idle(session=session)
    turns = session_turns(session=session)
    replaced: list[int] = []
    if replace_last:
        if len(turns) < 2 or turns[-2].role != ChatMessage.Role.USER:
            raise Conflict("There is no answer to ask again in this chat yet.", code="nothing_to_replace")
        replaced, turns = [turns[-2].pk, turns[-1].pk], turns[:-2]
    messages, text_tokens = history.history_fit(
        system_prompt=session.system_prompt, turns=turns, text=text,
        context_size=session_context_size(session), max_tokens=max_tokens,
        count=lambda s: llm.count_tokens(model_id=session.model_id, text=s))
    deltas = llm.chat_stream(model_id=session.model_id, messages=messages, max_tokens=max_tokens,
                             temperature=temperature)
    return _stream(session, text, text_tokens, deltas, replaced)


def session_ask(*, session: ChatSession, text: str, max_tokens: int = 512, temperature: float = 0.7) -> str:
    """The whole reply at once (same history rules as `session_send`), for code that is not async."""
    return async_to_sync(_joined)(session_send(session=session, text=text, max_tokens=max_tokens,
                                               temperature=temperature))


async def _joined(deltas: AsyncIterator[str]) -> str:
    return "".join([delta async for delta in deltas])


def session_clear(*, session: ChatSession) -> None:
    """End the session and forget its history."""
    with transaction.atomic():
        session.messages.all().delete()
        session.active = False
        session.save(update_fields=["active"])


async def _stream(session: ChatSession, text: str, text_tokens: int, deltas: AsyncIterator[str],
                  replaced: list[int]) -> AsyncIterator[str]:
    parts: list[str] = []
    try:
        async with aclosing(deltas):  # a reader that stops also stops llama-server's answer
            async for delta in deltas:
                parts.append(delta)  # handed to the reader: kept even if it stops right after taking it
                yield delta
    except (GeneratorExit, asyncio.CancelledError):
        # The reader stopped early (a closed page, Stop): keep what it was given, if the session still exists.
        if parts:
            await asyncio.shield(sync_to_async(_save_partial)(session, text, text_tokens, "".join(parts), replaced))
        raise
    await sync_to_async(_save_turns)(session, text, text_tokens, "".join(parts), replaced)


def _save_partial(session: ChatSession, text: str, text_tokens: int, answer: str, replaced: list[int]) -> None:
    try:
        _save_turns(session, text, text_tokens, answer + CUT_OFF_MARK, replaced)
    except DatabaseError as exc:
        log.warning("chat session %s: partial answer not saved: %s", session.pk, exc)


def _save_turns(session: ChatSession, text: str, text_tokens: int, answer: str, replaced: list[int]) -> None:
    with transaction.atomic():
        session.messages.filter(pk__in=replaced).delete()
        ChatMessage.objects.create(session=session, role=ChatMessage.Role.USER, content=text, tokens=text_tokens)
        ChatMessage.objects.create(session=session, role=ChatMessage.Role.ASSISTANT, content=answer)
        session.last_activity = timezone.now()
        fields = ["last_activity"]
        if not session.title:
            session.title, fields = text[:TITLE_CHARS], fields + ["title"]
        session.save(update_fields=fields)


def _refreshed(session: ChatSession | None) -> ChatSession | None:
    if session is not None:
        session_expire_if_idle(session=session)
    return session


def _clean(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ApplicationError("The message is empty.", code="empty_message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApplicationError(f"The message is too long ({len(text):,} characters; at most {MAX_MESSAGE_CHARS:,}).",
                               code="message_too_long")
    return text


def _owner(*, user, telegram_chat_id: int | None, telegram_user_id: int | None) -> dict:
    if user is not None:
        return {"user": user}
    if telegram_chat_id is None or telegram_user_id is None:
        raise ApplicationError("A chat session needs an owner: a web user or a Telegram chat and user.",
                               code="session_without_owner")
    return {"telegram_chat_id": telegram_chat_id, "telegram_user_id": telegram_user_id}
