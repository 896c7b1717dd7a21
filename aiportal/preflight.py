"""Start-up checks that turn a wrong setting into one clear line naming it."""
from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.db.utils import Error as DatabaseError

from aiportal.env import ConfigError


def check_database() -> None:
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "DATABASE_URL" if connection.vendor != "sqlite" else "DATABASE_URL (SQLite file)"
        raise ConfigError(f"{where}: cannot connect to the database: {reason}") from None


def check_redis(url: str | None = None) -> None:
    url = url or settings.REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"REDIS_URL: cannot reach Redis at {url}: {exc}") from None
