"""Who may do what (TELEGRAM_ADMIN_IDS, TELEGRAM_ALLOWED_IDS) and a per-user message rate limit."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from django.conf import settings
from telegram import Update
from telegram.ext import ContextTypes

from telegram_bot import send, texts


def is_admin(user_id: int | None) -> bool:
    return user_id is not None and user_id in settings.TELEGRAM_ADMIN_IDS


def may_chat(user_id: int | None) -> bool:
    """Admins always; everyone else when TELEGRAM_ALLOWED_IDS is empty or lists them."""
    if user_id is None:
        return False
    return is_admin(user_id) or not settings.TELEGRAM_ALLOWED_IDS or user_id in settings.TELEGRAM_ALLOWED_IDS


class RateLimiter:
    """At most `limit` messages per user in any `window` seconds (a sliding window, in memory)."""

    def __init__(self, *, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._seen: dict[int, deque[float]] = {}
        self._warned: set[int] = set()

    def allow(self, user_id: int) -> bool:
        now = self.clock()
        seen = self._seen.setdefault(user_id, deque())
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        self._warned.discard(user_id)
        return True

    def wait_seconds(self, user_id: int) -> int:
        seen = self._seen.get(user_id)
        if not seen:
            return 0
        return max(1, int(self.window - (self.clock() - seen[0]) + 0.999))

    def first_refusal(self, user_id: int) -> bool:
        """True once per burst, so a flood gets one polite answer, not one per message."""
        if user_id in self._warned:
            return False
        self._warned.add(user_id)
        return True


async def refuse_unless_admin(update: Update, context: ContextTypes.DEFAULT_TYPE, what: str) -> bool:
    """True (after a polite refusal) when the user is not an admin."""
    if is_admin(update.effective_user.id):
        return False
    await send.say(context.bot, update.effective_chat.id, texts.ADMINS_ONLY.format(what=what))
    return True
