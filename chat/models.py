"""Multi-turn chat sessions, owned by a web user or a Telegram chat member."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from models_app.models import AIModel


TITLE_CHARS = 80  # a session's title: the start of its first question


class ChatSession(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    telegram_chat_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    telegram_user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    model = models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_sessions")
    title = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_activity = models.DateTimeField(auto_now_add=True, db_index=True)

    # Set (not stored) when a look-up found the session idle past the timeout and started it afresh.
    was_expired = False

    class Meta:
        ordering = ["-last_activity"]

    def __str__(self) -> str:
        owner = self.user or f"tg:{self.telegram_chat_id}/{self.telegram_user_id}"
        return f"{owner} → {self.model_id}"


class ChatMessage(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=20, choices=Role.choices)
    content = models.TextField()
    tokens = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"
