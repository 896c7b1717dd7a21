"""Register the portal's webhook with Telegram (setWebhook with the secret, then setMyCommands), or remove it."""
from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from telegram import Bot, BotCommand
from telegram.error import TelegramError

from telegram_bot.texts import COMMANDS

WEBHOOK_PATH = "/telegram/webhook/"
SECRET_OK = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
UPDATES = ["message", "edited_message", "callback_query"]


def webhook_url(url: str) -> str:
    """The webhook address: the given URL, or the portal's base URL with /telegram/webhook/ added."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.netloc:
        raise CommandError(f"--url {url!r} must be a public https:// address (Telegram only calls HTTPS webhooks).")
    path = parts.path if parts.path.rstrip("/") else WEBHOOK_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class Command(BaseCommand):
    help = "Point Telegram at this portal's webhook (with TELEGRAM_WEBHOOK_SECRET) and publish the bot's commands."

    def add_arguments(self, parser):
        parser.add_argument("--url", help="Public https URL of the portal or of its /telegram/webhook/")
        parser.add_argument("--delete", action="store_true", help="Remove the webhook instead")

    def handle(self, *args, url: str | None, delete: bool, **options):
        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError("TELEGRAM_BOT_TOKEN is not set: the bot is off.")
        if delete:
            asyncio.run(self._call(lambda bot: bot.delete_webhook()))
            self.stdout.write("Webhook removed: Telegram no longer sends updates to this portal.")
            return
        if not url:
            raise CommandError("Give --url https://<public address of the portal> (or --delete).")
        secret = settings.TELEGRAM_WEBHOOK_SECRET
        if not SECRET_OK.match(secret or ""):
            raise CommandError("Set TELEGRAM_WEBHOOK_SECRET to 1-256 characters of A-Z, a-z, 0-9, _ or - first: "
                               "the webhook refuses every update without it.")
        target = webhook_url(url)
        asyncio.run(self._call(lambda bot: self._register(bot, target, secret)))
        self.stdout.write(f"Webhook set: Telegram now posts updates to {target}; commands published: "
                          + ", ".join(f"/{name}" for name, _ in COMMANDS))

    @staticmethod
    async def _register(bot: Bot, url: str, secret: str) -> None:
        await bot.set_webhook(url=url, secret_token=secret, allowed_updates=UPDATES)
        await bot.set_my_commands([BotCommand(name, description) for name, description in COMMANDS])

    @staticmethod
    async def _call(action) -> None:
        bot = Bot(settings.TELEGRAM_BOT_TOKEN, base_url=settings.TELEGRAM_API_BASE_URL)
        try:
            async with bot:
                await action(bot)
        except TelegramError as exc:
            raise CommandError(f"Telegram refused: {exc}") from None
