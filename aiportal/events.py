"""Push high-level events to websocket groups from sync code (services, engines, tasks)."""
from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

MODELS_GROUP = "models"


def push(group: str, event_type: str, payload: dict) -> None:
    """Best effort: a page that misses one event gets the next; the database stays the truth."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": event_type, **payload})
    except Exception as exc:  # Redis down must never fail a download or a serve
        log.warning("could not push %s to %s: %s", event_type, group, exc)


def push_model(model_dict: dict) -> None:
    push(MODELS_GROUP, "model.update", {"model": model_dict})


def push_model_removed(model_id: str) -> None:
    push(MODELS_GROUP, "model.removed", {"id": model_id})
