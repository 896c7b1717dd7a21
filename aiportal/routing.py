"""Websocket routes (SPEC §7: /ws/…)."""
from __future__ import annotations

from django.urls import path

from models_app.consumers import ModelUpdatesConsumer

websocket_urlpatterns: list = [
    path("ws/models/", ModelUpdatesConsumer.as_asgi()),
]
