"""Settings, all from the environment and an optional `.env` file (SPEC §3)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

from aiportal.env import (
    ConfigError,
    database_from_url,
    env,
    envbool,
    envids,
    envint,
    envpath,
    node_address,
    node_name,
    node_queue,
    redis_layer_host,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)

RUN_DIR = envpath("AIPORTAL_RUN_DIR", BASE_DIR / ".run")


def _secret_key() -> str:
    if env("DJANGO_SECRET_KEY"):
        return env("DJANGO_SECRET_KEY")
    # Generated once per checkout so that sessions survive restarts.
    path = RUN_DIR / "secret_key"
    if not path.exists():
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DJANGO_DEBUG", False)
PORTAL_HOST = env("PORTAL_HOST", "127.0.0.1")
PORTAL_PORT = envint("PORTAL_PORT", 8000, minimum=1)
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "*").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "django_q",
    "aiportal",
    "models_app",
    "torrents_app",
    "chat",
    "telegram_bot",
]

MIDDLEWARE = [
    "aiportal.middleware.RequestMetrics",
    "aiportal.middleware.RequestErrors",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aiportal.urls"
ASGI_APPLICATION = "aiportal.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env("DATABASE_URL"), BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: the channel layer always; the q2 broker only when REDIS_URL is given explicitly.
REDIS_URL_EXPLICIT = bool(env("REDIS_URL"))
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [redis_layer_host(REDIS_URL)]},
    }
}
if env("AIPORTAL_CHANNEL_LAYER") == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

Q_CLUSTER = {
    "name": "aiportal",
    "workers": envint("Q_WORKERS", 4, minimum=1),
    "timeout": 24 * 3600,
    "retry": 24 * 3600 + 60,
    "max_attempts": 1,
    "recycle": 50,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "label": "Jobs",
    # One queue per node: a download runs on the q2 cluster of the node that will hold the file.
    "cluster_name": node_queue(node_name()),
}
if REDIS_URL_EXPLICIT:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.2
if envbool("Q_SYNC", False):
    Q_CLUSTER["sync"] = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "aiportal.auth.TokenAuthentication",
        "aiportal.auth.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["aiportal.api.EnvelopeRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "aiportal.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "aiportal.schema.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "aiportal API",
    "DESCRIPTION": "Download, share and serve open AI models. Every answer is an envelope: "
    "`{\"ok\": true, \"result\": …}` or `{\"ok\": false, \"error\": {\"code\", \"message\"}}`. "
    "The OpenAI-compatible API under /v1 follows OpenAI's own reference and is not described here.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {"ModelStatusEnum": "models_app.models.Status",
                            "CopyStatusEnum": "models_app.models.COPY_STATUSES",
                            "InstanceStatusEnum": "models_app.models.INSTANCE_STATUSES"},
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = RUN_DIR / "static"

# Storage
AI_MODEL_DIR = envpath("AI_MODEL_DIR", BASE_DIR / "models")
AI_TORRENT_DIR = envpath("AI_TORRENT_DIR", BASE_DIR / "torrents")
LOG_DIR = RUN_DIR / "logs"

# Node (SPEC §2)
NODE_NAME = node_name()
# Where the other machines of a group reach this node (its llama-servers listen here, SPEC §9).
NODE_ADDRESS = node_address()
# How often the node daemon writes its heartbeat; a node is online while the last one is this recent.
NODE_HEARTBEAT_SECONDS = float(env("NODE_HEARTBEAT_SECONDS", "5"))
NODE_ONLINE_SECONDS = float(env("NODE_ONLINE_SECONDS", "15"))
NODE_ENGINES = [
    "models_app.inference.engine.LlamaEngine",
    "torrents_app.engine.TorrentEngine",
]
# NODE_ENGINES=llama (or torrent) runs one part only: a serving-only box, or a test of one engine.
if env("NODE_ENGINES"):
    NODE_ENGINES = [e for e in NODE_ENGINES if e.rsplit(".", 1)[1].lower().removesuffix("engine") in env("NODE_ENGINES").lower().split(",")]
NODE_TICK_SECONDS = float(env("NODE_TICK_SECONDS", "0.5"))

# Hugging Face
HF_ENDPOINT = env("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
HF_TOKEN = env("HF_TOKEN") or None
DOWNLOAD_CONCURRENCY = envint("DOWNLOAD_CONCURRENCY", 2, minimum=1)

# Telegram
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN")
TELEGRAM_WEBHOOK_SECRET = env("TELEGRAM_WEBHOOK_SECRET")
TELEGRAM_API_BASE_URL = env("TELEGRAM_API_BASE_URL", "https://api.telegram.org/bot")
TELEGRAM_ADMIN_IDS = envids("TELEGRAM_ADMIN_IDS")
TELEGRAM_ALLOWED_IDS = envids("TELEGRAM_ALLOWED_IDS")
CHAT_SESSION_TIMEOUT_MINUTES = envint("CHAT_SESSION_TIMEOUT_MINUTES", 30, minimum=1)
TELEGRAM_RATE_LIMIT_PER_MINUTE = envint("TELEGRAM_RATE_LIMIT_PER_MINUTE", 20, minimum=1)
TELEGRAM_MAX_TOKENS = envint("TELEGRAM_MAX_TOKENS", 512, minimum=1)

# P2P
P2P_LISTEN = env("P2P_LISTEN", "0.0.0.0:6881")
P2P_DHT = envbool("P2P_DHT", True)
P2P_LSD = envbool("P2P_LSD", True)
P2P_DHT_BOOTSTRAP = env("P2P_DHT_BOOTSTRAP")
P2P_UPLOAD_LIMIT = envint("P2P_UPLOAD_LIMIT", 0, minimum=0)
P2P_DOWNLOAD_LIMIT = envint("P2P_DOWNLOAD_LIMIT", 0, minimum=0)
P2P_RESUME_SAVE_SECONDS = envint("P2P_RESUME_SAVE_SECONDS", 30, minimum=1)
# A Hub download first asks the group and the DHT whether peers have the file (SPEC §8), for at most
# this many seconds; 0 turns the swarm off and every Hub file comes over HTTP.
P2P_SWARM_WAIT = float(env("P2P_SWARM_WAIT", "6"))
# A Hub download that waits for another portal (or node) fetching the same file gives up on it, and
# fetches from the Hub itself, when that fetch has made no progress for this many seconds.
P2P_SWARM_STALL = float(env("P2P_SWARM_STALL", "30"))
P2P_TORRENT_FORMAT = env("P2P_TORRENT_FORMAT", "hybrid").lower()
if P2P_TORRENT_FORMAT not in {"hybrid", "v1", "v2"}:
    raise ConfigError(f"P2P_TORRENT_FORMAT={P2P_TORRENT_FORMAT!r} must be hybrid, v1 or v2")

# Inference
LLAMA_SERVER_BIN = env("LLAMA_SERVER_BIN")
LLAMA_DEFAULT_CTX = envint("LLAMA_DEFAULT_CTX", 2048, minimum=1)
# 4, but never more than the CPUs minus one: the portal relays every token too, and llama.cpp's
# threads wait for each other, so a busy core slows them all (bench/chat_overhead.py, README).
LLAMA_DEFAULT_THREADS = envint("LLAMA_DEFAULT_THREADS", max(1, min(4, len(os.sched_getaffinity(0)) - 1)), minimum=1)
LLAMA_DEFAULT_GPU_LAYERS = envint("LLAMA_DEFAULT_GPU_LAYERS", 0, minimum=0)
LLAMA_KEEP_ALIVE_SECONDS = envint("LLAMA_KEEP_ALIVE_SECONDS", 0, minimum=0)
# Every llama-server also answers embeddings (`--embeddings`; /v1/embeddings, /api/embed). Chat speed with it
# measured the same as without (README); off leaves llama-server's own default, chat only.
LLAMA_EMBEDDINGS = envbool("LLAMA_EMBEDDINGS", True)
# llama-server's Prometheus counters at /metrics (`--metrics`), re-exposed by the portal's /metrics.
LLAMA_METRICS = envbool("LLAMA_METRICS", True)
# `GET /metrics` without a token (for a Prometheus that cannot send one, on a trusted network).
METRICS_PUBLIC = envbool("METRICS_PUBLIC", False)
# Bytes that the served models of this node may use together (0 = only what the machine has free).
LLAMA_MEMORY_LIMIT = envint("LLAMA_MEMORY_LIMIT", 0, minimum=0)

# Every log file rotates by size: the portal's own (one per process, LOG_DIR/<name>.log, when
# runportal names the process) and each llama-server's (LOG_DIR/llama-<id>.log, by the node daemon).
LOG_MAX_BYTES = envint("LOG_MAX_BYTES", 10 * 1024 * 1024, minimum=4096)
LOG_BACKUPS = envint("LOG_BACKUPS", 3, minimum=1)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
if env("AIPORTAL_LOG_NAME"):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["file"] = {"class": "logging.handlers.RotatingFileHandler", "formatter": "plain",
                                   "filename": str(LOG_DIR / f"{env('AIPORTAL_LOG_NAME')}.log"),
                                   "maxBytes": LOG_MAX_BYTES, "backupCount": LOG_BACKUPS}
    LOGGING["root"]["handlers"].append("file")

if len(env("AIPORTAL_ADMIN_TOKEN")) > 40:
    raise ConfigError("AIPORTAL_ADMIN_TOKEN must be at most 40 characters")
