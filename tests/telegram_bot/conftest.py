from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from telegram_bot import app as bot_app
from tests.fakes.fake_telegram import FakeTelegram
from tests.telegram_bot.updates import ADMIN, MEMBER

SECRET = "webhook-s3cret"


@pytest.fixture(scope="session")
def fake_telegram():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture
def telegram(fake_telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = fake_telegram.token
    settings.TELEGRAM_API_BASE_URL = fake_telegram.base_url
    settings.TELEGRAM_WEBHOOK_SECRET = SECRET
    settings.TELEGRAM_ADMIN_IDS = frozenset({ADMIN})
    settings.TELEGRAM_ALLOWED_IDS = frozenset({MEMBER})
    settings.TELEGRAM_MAX_TOKENS = 48
    fake_telegram.reset()
    return fake_telegram


class Webhook:
    """Posts updates the way Telegram does, then waits for the bot's background work to finish."""

    def __init__(self):
        self.client = AsyncClient()

    async def post(self, payload, *, secret: str | None = SECRET, raw: bytes | None = None):
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        body = raw if raw is not None else json.dumps(payload)
        return await self.client.post("/telegram/webhook/", data=body, content_type="application/json",
                                      headers=headers)

    async def send(self, payload, **kwargs):
        response = await self.post(payload, **kwargs)
        assert response.status_code == 200
        await bot_app.background_idle(timeout=300)
        return response


@pytest.fixture
def webhook(telegram) -> Webhook:
    return Webhook()
