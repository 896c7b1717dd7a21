"""Websockets carry the session cookie, so a page on another site must not open one (CSWSH)."""
from __future__ import annotations

from urllib.parse import urlparse

from channels.security.websocket import WebsocketDenier
from django.conf import settings


class SameOriginValidator:
    """Accept a browser's websocket only from a page this portal served (Origin host == Host header).

    Browsers always send Origin on websockets; clients without one are not browsers and cannot be
    tricked into lending a session cookie. `DJANGO_CSRF_TRUSTED_ORIGINS` adds origins (a proxy's).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin", b"").decode("latin1")
        host = headers.get(b"host", b"").decode("latin1").lower()
        if origin and not self._allowed(origin, host):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)

    @staticmethod
    def _allowed(origin: str, host: str) -> bool:
        return urlparse(origin).netloc.lower() == host or origin.rstrip("/") in settings.CSRF_TRUSTED_ORIGINS
