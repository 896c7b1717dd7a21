"""Telegram updates already handled, so that a retried webhook call is processed once."""
from __future__ import annotations

from django.db import models


class ProcessedUpdate(models.Model):
    update_id = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=40, blank=True)
    chat_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return str(self.update_id)
