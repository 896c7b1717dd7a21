"""ASGI entry point: HTTP through Django, websockets through Channels."""
from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiportal.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from aiportal.doors import DoorsHandler, is_door  # noqa: E402

# The portal is self-hosted without a front proxy, so daphne serves /static/ itself.
pages_app = ASGIStaticFilesHandler(get_asgi_application())
doors_app = DoorsHandler()


async def django_asgi_app(scope, receive, send):
    app = doors_app if is_door(scope["path"]) else pages_app
    return await app(scope, receive, send)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from aiportal.routing import websocket_urlpatterns  # noqa: E402
from aiportal.ws_security import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
