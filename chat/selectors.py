"""Read side of chat sessions: who owns which session, its history, and whether it has gone idle."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from chat.models import TITLE_CHARS, ChatMessage, ChatSession


def session_active_telegram(*, chat_id: int, user_id: int) -> ChatSession | None:
    return (ChatSession.objects.select_related("model").filter(
        telegram_chat_id=chat_id, telegram_user_id=user_id, active=True).order_by("-last_activity").first())


def session_active_web(*, user) -> ChatSession | None:
    return ChatSession.objects.select_related("model").filter(user=user, active=True).order_by("-last_activity").first()


def session_turns(*, session: ChatSession) -> list[ChatMessage]:
    """The conversation so far (user and assistant turns), oldest first."""
    return list(session.messages.exclude(role=ChatMessage.Role.SYSTEM).order_by("created_at", "id"))


def session_timeout() -> timedelta:
    return timedelta(minutes=settings.CHAT_SESSION_TIMEOUT_MINUTES)


def session_is_idle(session: ChatSession, *, now: datetime | None = None) -> bool:
    """True when nothing was said for longer than CHAT_SESSION_TIMEOUT_MINUTES."""
    return (now or timezone.now()) - session.last_activity > session_timeout()


def session_context_size(session: ChatSession) -> int:
    """The context the model is served with (the portal default when it is not served)."""
    instance = session.model.served if session.model_id else None
    return instance.context_size if instance is not None else settings.LLAMA_DEFAULT_CTX


EXCERPT_AROUND = 40  # characters shown either side of a search match
SPACES = re.compile(r"\s+")


def session_search(*, user, query: str = "", limit: int = 30) -> list[ChatSession]:
    """The user's conversations that have messages, newest first; with `query`, those whose title or
    messages contain it (any case), each with `excerpt` = (before, match, after) of its first match
    outside the title (None when the title is the only match)."""
    found = ChatSession.objects.filter(user=user, messages__isnull=False)
    if query:
        found = found.filter(Q(title__icontains=query) | Q(messages__content__icontains=query))
    sessions = list(found.distinct().order_by("-last_activity")[:limit])
    if query:
        hits = (ChatMessage.objects.filter(session__in=sessions, content__icontains=query)
                .exclude(role=ChatMessage.Role.SYSTEM).order_by("created_at", "id").values_list("session_id", "content"))
        titles = {session.pk: session.title for session in sessions}
        first: dict[int, str] = {}
        for session_id, content in hits:
            if content.strip()[:TITLE_CHARS] != titles[session_id]:  # the first question is the title, shown already
                first.setdefault(session_id, content)
        for session in sessions:
            session.excerpt = excerpt(first[session.pk], query) if session.pk in first else None
    return sessions


def excerpt(text: str, query: str) -> tuple[str, str, str] | None:
    """`text` cut around the first case-insensitive match of `query`: (before, match, after)."""
    match = re.search(re.escape(query), text, re.IGNORECASE)
    if match is None:
        return None
    start, end = match.span()
    before = text[max(0, start - EXCERPT_AROUND):start]
    after = text[end:end + EXCERPT_AROUND]
    if start > EXCERPT_AROUND:  # cut: start at a whole word
        before = "…" + (before.split(" ", 1)[1] if " " in before.rstrip() else before).lstrip()
    if end + EXCERPT_AROUND < len(text):
        after = (after.rsplit(" ", 1)[0] if " " in after.lstrip() else after).rstrip() + "…"
    return SPACES.sub(" ", before), match.group(), SPACES.sub(" ", after)
