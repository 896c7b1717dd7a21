"""Read side of chat sessions: who owns which session, its history, and whether it has gone idle."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from chat.models import ChatMessage, ChatSession


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
    instance = getattr(session.model, "instance", None) if session.model_id else None
    return instance.context_size if instance is not None else settings.LLAMA_DEFAULT_CTX
