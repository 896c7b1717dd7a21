"""The OpenAI and Ollama doors (and /healthz) run through a Django handler of their own, with only the
middleware they use.

Programs call these doors with a Bearer token, never with a session cookie, so sessions, CSRF,
messages and the login user have nothing to do there; and each of Django's own middleware costs an
async request two hops to a worker thread and back (`MiddlewareMixin.__acall__`). Measured
in-process on this 2-core machine: /healthz took 9.4 ms through the full stack (16 thread hops).
"""
from __future__ import annotations

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from aiportal.metrics import door

DOOR_MIDDLEWARE = [
    "aiportal.middleware.RequestMetrics",
    "aiportal.middleware.RequestErrors",
    "aiportal.middleware.ApiHeaders",
]


def is_door(path: str) -> bool:
    return door(path) in {"openai", "ollama"} or path == "/healthz"


class DoorsHandler(ASGIHandler):
    """Django's ASGI handler with DOOR_MIDDLEWARE instead of settings.MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware reads settings.MIDDLEWARE: it is swapped for the one call, at start-up.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = DOOR_MIDDLEWARE
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = full
