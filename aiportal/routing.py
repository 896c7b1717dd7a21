"""Websocket routes (SPEC §7: /ws/…)."""
from __future__ import annotations

websocket_urlpatterns: list = []
