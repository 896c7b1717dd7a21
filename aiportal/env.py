"""Typed readers for the environment (SPEC §3), each failing with a message that names the setting."""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it."""


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def envbool(name: str, default: bool) -> bool:
    raw = env(name).lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use on/off, true/false, 1/0)")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def envids(name: str) -> frozenset[int]:
    raw = env(name)
    try:
        return frozenset(int(part) for part in raw.replace(";", ",").split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be a comma-separated list of numeric user ids") from None


def envpath(name: str, default: Path) -> Path:
    raw = env(name)
    return Path(raw).expanduser().resolve() if raw else default.resolve()


def node_name() -> str:
    return env("NODE_NAME") or socket.gethostname()


def node_address() -> str:
    """NODE_ADDRESS: one IP address (or host name) of this machine that the group's other machines reach."""
    raw = env("NODE_ADDRESS", "127.0.0.1")
    if not raw or any(c in raw for c in " /:,@") and not _is_ipv6(raw):
        raise ConfigError(f"NODE_ADDRESS={raw!r} must be one address of this machine, such as 192.168.1.20")
    return raw


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def node_queue(name: str) -> str:
    """The q2 queue (cluster name) of a node: only its own cluster takes the jobs meant for it."""
    return "node-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:90]


def database_from_url(url: str, base_dir: Path) -> dict:
    """Django DATABASES['default'] from DATABASE_URL; SQLite in WAL mode when empty."""
    if not url:
        return _sqlite(str(base_dir / "db.sqlite3"))
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # As dj-database-url and SQLAlchemy read it: sqlite:///name.db is relative (to the checkout
        # here, whatever the process's directory), sqlite:////abs/name.db absolute.
        path = unquote(parsed.netloc + parsed.path)
        if path in {"", "/"}:
            raise ConfigError(f"DATABASE_URL={url!r} names no SQLite file (sqlite:///db.sqlite3 or sqlite:////abs/path.db)")
        return _sqlite(path[1:] if path.startswith("//") else str(base_dir / path.lstrip("/")))
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        return _postgres(url, parsed)
    raise ConfigError(f"DATABASE_URL={url!r}: unsupported scheme {parsed.scheme!r} (use postgresql:// or sqlite://)")


def _sqlite(path: str) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        },
        "TEST": {"NAME": None},
    }


def _postgres(url: str, parsed) -> dict:
    name = unquote(parsed.path.lstrip("/"))
    if not name:
        raise ConfigError(f"DATABASE_URL={_redact(url)!r} names no database")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = unquote(parsed.hostname or "") or query.pop("host", "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "OPTIONS": query,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def redis_layer_host(url: str) -> dict:
    """channels_redis connection options for one Redis URL."""
    # redis-py 8 gives every socket a 5-s read timeout, no longer than channels_redis's 5-s blocking
    # pop: each idle websocket consumer died with TimeoutError every few seconds (channels_redis
    # issue 422). A read may take the pop's time plus a margin; connecting stays short.
    return {"address": url, "socket_timeout": 30, "socket_connect_timeout": 5}
