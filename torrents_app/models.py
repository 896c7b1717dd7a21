"""The torrent behind each shared copy of a model, owned by the node daemon that holds its files."""
from __future__ import annotations

from django.db import models

from models_app.models import ModelCopy


class Torrent(models.Model):
    class Desired(models.TextChoices):
        SEED = "seed"
        PAUSE = "pause"
        DOWNLOAD = "download"
        REMOVE = "remove"
        # A Hub download asks whether the swarm has the file (SPEC §8's sha256 record) before it fetches
        # it over HTTP; the node daemon looks the record up and turns the row into a download when found.
        LOOKUP = "lookup"

    copy = models.OneToOneField(ModelCopy, on_delete=models.CASCADE, related_name="torrent", primary_key=True)
    info_hash_v1 = models.CharField(max_length=40, blank=True, db_index=True)
    info_hash_v2 = models.CharField(max_length=64, blank=True, db_index=True)
    torrent_file = models.BinaryField(null=True, blank=True, help_text="Bencoded .torrent (metadata)")
    magnet_source = models.TextField(blank=True, help_text="The magnet a download was started from")
    desired = models.CharField(max_length=20, choices=Desired.choices, default=Desired.SEED)
    state = models.CharField(max_length=40, blank=True, help_text="libtorrent's state, as last seen")
    error = models.TextField(blank=True)
    failed_bytes = models.BigIntegerField(default=0, help_text="Bytes received that failed their hash check")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.copy} [{self.info_hash_v1 or self.info_hash_v2}]"
