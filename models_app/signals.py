"""What models_app tells the apps built on it (sharing), so that it never imports them."""
from __future__ import annotations

from django.dispatch import Signal

# Sent with `model_id` and `node` once a copy's files are complete and verified on that node
# (torrents_app makes and seeds its torrent). Receivers run in the sender's process; what they raise reaches the sender.
model_ready = Signal()
