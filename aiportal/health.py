"""`GET /healthz`: is this portal able to work right now?

No auth, so a load balancer or a container runtime can ask. 200 when the database and Redis
answer, 503 naming what is down. The nodes are listed for a person, but a node that is away does
not make the portal unhealthy: the others keep answering.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from aiportal.env import ConfigError
from aiportal.models import Node
from aiportal.preflight import check_redis


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error: the answer is "down, because …"
        return f"down: {type(exc).__name__}: {exc}".strip()


def _redis() -> str:
    if "Redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"] and "redis" not in settings.Q_CLUSTER:
        return "not used"
    try:
        check_redis(settings.REDIS_URL)
        return "ok"
    except ConfigError as exc:
        return f"down: {exc}"


def _nodes() -> dict:
    try:
        nodes = list(Node.objects.all())
    except Exception:
        return {"online": [], "offline": []}
    return {"online": [n.name for n in nodes if n.online], "offline": [n.name for n in nodes if not n.online]}


@require_GET
def healthz_view(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "redis": _redis()}
    down = [name for name, state in checks.items() if state.startswith("down")]
    body = {"status": "down" if down else "ok", "down": down, "checks": checks,
            "nodes": _nodes() if "database" not in down else None}
    response = JsonResponse(body, status=503 if down else 200)
    response["Cache-Control"] = "no-store"
    return response
