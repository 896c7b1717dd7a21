"""Write side of the bot's own data: the record of updates already handled."""
from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from telegram_bot.models import ProcessedUpdate

# Telegram gives up redelivering an update after a day; the record only has to outlive that.
KEEP = timedelta(days=2)
FORGET_EVERY = 500


def update_record(*, update_id: int, kind: str = "", chat_id: int | None = None, user_id: int | None = None) -> bool:
    """Remember an update; False when it was seen before (Telegram retried it)."""
    try:
        with transaction.atomic():
            ProcessedUpdate.objects.create(update_id=update_id, kind=kind[:40], chat_id=chat_id, user_id=user_id)
    except IntegrityError:
        return False
    if update_id % FORGET_EVERY == 0:
        update_forget_old()
    return True


def update_forget_old(*, older_than: timedelta = KEEP) -> int:
    """Drop records too old for Telegram to retry; returns how many."""
    deleted, _ = ProcessedUpdate.objects.filter(received_at__lt=timezone.now() - older_than).delete()
    return deleted


def update_summary(payload: dict) -> dict:
    """The kind, chat and sender of a raw update, for the record (missing parts are None)."""
    kind = next((key for key in payload if key != "update_id"), "")
    body = payload.get(kind) if isinstance(payload.get(kind), dict) else {}
    chat = body.get("chat") or (body.get("message") or {}).get("chat") or {}
    sender = body.get("from") or {}
    return {"kind": kind, "chat_id": _int(chat.get("id")), "user_id": _int(sender.get("id"))}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
