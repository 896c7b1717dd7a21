"""What models_app tells the apps built on it (sharing), so that it never imports them."""
from __future__ import annotations

from django.dispatch import Signal

# Sent with `model_id` once a model's files are complete and verified on its node (torrents_app makes
# and seeds its torrent). Receivers run in the sender's process; what they raise reaches the sender.
model_ready = Signal()
