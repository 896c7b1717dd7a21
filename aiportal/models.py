"""The machines of a portal group: one row per node daemon, rewritten by its heartbeat (SPEC §9)."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Node(models.Model):
    name = models.CharField(primary_key=True, max_length=200)
    address = models.CharField(max_length=200, help_text="Where the group's other machines reach it (NODE_ADDRESS)")
    last_seen = models.DateTimeField(null=True, blank=True, db_index=True)
    stopped = models.BooleanField(default=False, help_text="Its daemon said goodbye (stopped cleanly)")
    started_at = models.DateTimeField(null=True, blank=True)
    cpus = models.IntegerField(default=0)
    memory_total = models.BigIntegerField(default=0)
    memory_free = models.BigIntegerField(default=0, help_text="What llama-servers may still use (LLAMA_MEMORY_LIMIT applied)")
    gpus = models.JSONField(default=list, blank=True)
    disk_free = models.BigIntegerField(default=0, help_text="Free bytes under its AI_MODEL_DIR")
    model_dir = models.CharField(max_length=1000, blank=True)
    llama_version = models.CharField(max_length=200, blank=True)
    llama_backends = models.JSONField(default=list, blank=True)
    llama_error = models.TextField(blank=True, help_text="Why its llama-server cannot run, when it cannot")
    p2p_port = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def online(self) -> bool:
        if self.stopped or self.last_seen is None:
            return False
        return self.last_seen >= timezone.now() - timedelta(seconds=settings.NODE_ONLINE_SECONDS)
