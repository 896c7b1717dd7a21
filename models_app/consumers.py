"""Live model updates for the web UI: `/ws/models/` forwards the events services push (aiportal.events)."""
from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from aiportal.events import MODELS_GROUP

UNAUTHORIZED = 4401


class ModelUpdatesConsumer(AsyncJsonWebsocketConsumer):
    """Joins the `models` group for a logged-in user and relays `model.update` / `model.removed` as JSON."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHORIZED)
            return
        await self.channel_layer.group_add(MODELS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(MODELS_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The page only listens; a ping keeps proxies from closing an idle socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def model_update(self, event: dict) -> None:
        await self.send_json({"type": "model.update", "model": event["model"]})

    async def model_removed(self, event: dict) -> None:
        await self.send_json({"type": "model.removed", "id": event["id"]})
