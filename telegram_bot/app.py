"""The python-telegram-bot Application of this process, and the background work it does.

Daphne has no lifespan hook, so the Application (`updater(None)`: updates come from our webhook)
is built and initialised lazily, once per process and event loop, on the first update. Each
update is processed in a background task, so the webhook answers at once; handlers that take
long (generation, watching a download) simply keep running in that task.
"""
from __future__ import annotations

import asyncio
import logging
import weakref

from django.conf import settings
from telegram import Update
from telegram.ext import AIORateLimiter, Application, ContextTypes

log = logging.getLogger("aiportal.telegram")

# Per event loop (a test gets a new loop each time; daphne has one), then per token and Bot API URL.
_apps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_tasks: set[asyncio.Task] = set()


async def application_get() -> Application:
    """The initialised Application for this process (built on first use)."""
    loop = asyncio.get_running_loop()
    key = (settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_API_BASE_URL)
    apps = _apps.setdefault(loop, {})
    if key not in apps:
        async with _locks.setdefault(loop, asyncio.Lock()):
            if key not in apps:
                apps[key] = await _build()
    return apps[key]


async def _build() -> Application:
    from telegram_bot.handlers import handlers_install

    app = (Application.builder().token(settings.TELEGRAM_BOT_TOKEN).base_url(settings.TELEGRAM_API_BASE_URL)
           .updater(None).connect_timeout(10).read_timeout(30).write_timeout(30).pool_timeout(10)
           .connection_pool_size(64).rate_limiter(outbound_limiter()).build())
    handlers_install(app)
    app.add_error_handler(_on_error)
    await app.initialize()
    log.info("Telegram bot @%s ready (Bot API at %s)", app.bot.username, settings.TELEGRAM_API_BASE_URL)
    return app


def outbound_limiter(*, per_second: float = 30, group_messages: float = 20, group_period: float = 60) -> AIORateLimiter:
    """Telegram's flood limits kept on our side, so that it rarely has to answer 429: 30 messages a second
    in all and 20 a minute in each group. A 429 that comes anyway is waited out by `send.api_call`."""
    return AIORateLimiter(overall_max_rate=per_second, overall_time_period=1, group_max_rate=group_messages,
                          group_time_period=group_period, max_retries=0)


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("Telegram update failed: %s", context.error, exc_info=context.error)


def background(coro) -> asyncio.Task:
    """Run `coro` after the current request is answered; keep a reference so it is not collected."""
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def update_process(payload: dict) -> None:
    """Hand one webhook payload to the handlers (errors are logged, never raised)."""
    try:
        app = await application_get()
        update = Update.de_json(payload, app.bot)
    except Exception:
        log.exception("Telegram update %s could not be handled", payload.get("update_id"))
        return
    await app.process_update(update)


async def background_idle(timeout: float = 60.0) -> None:
    """Wait until no background work of this loop is left (shutdown, and tests)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pending = [t for t in _tasks if t.get_loop() is loop and not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        if loop.time() >= deadline:
            raise TimeoutError(f"{len(pending)} Telegram background tasks still running")
