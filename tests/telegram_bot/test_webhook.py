from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from telegram_bot.models import ProcessedUpdate
from telegram_bot.services import update_forget_old, update_record
from tests.telegram_bot.updates import ADMIN, MEMBER, edited, message

pytestmark = pytest.mark.django_db(transaction=True)


def _count_updates() -> int:
    return ProcessedUpdate.objects.count()


async def test_it_refuses_a_wrong_secret_with_403(webhook, telegram):
    response = await webhook.post(message("/ai-help"), secret="guess")
    assert response.status_code == 403
    assert response.json() == {"ok": False, "error": "Wrong or missing secret token."}
    assert await sync_to_async(_count_updates)() == 0
    assert telegram.calls == []


async def test_it_refuses_a_missing_secret_with_403(webhook, telegram):
    response = await webhook.post(message("/ai-help"), secret=None)
    assert response.status_code == 403
    assert telegram.calls == []


async def test_it_refuses_everything_when_no_secret_is_configured(webhook, telegram, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = ""
    response = await webhook.post(message("/ai-help"), secret="")
    assert response.status_code == 403


async def test_it_answers_junk_with_200_and_ignores_it(webhook, telegram):
    for raw in (b"{not json", b"[1, 2]", b'{"update_id": "7"}', b'{"message": {}}', b"\xff\xfe"):
        response = await webhook.send(None, raw=raw)
        assert response.json() == {"ok": True}
    assert await sync_to_async(_count_updates)() == 0
    assert telegram.calls == []


async def test_it_handles_a_retried_update_once(webhook, telegram):
    update = message("/ai-help", user_id=MEMBER)
    await webhook.send(update)
    await webhook.send(update)
    assert len(telegram.calls_of("sendMessage")) == 1
    assert await sync_to_async(_count_updates)() == 1


async def test_it_answers_help_in_both_spellings(webhook, telegram):
    await webhook.send(message("/ai-help", user_id=MEMBER))
    await webhook.send(message("/ai_help", user_id=MEMBER))
    first, second = telegram.texts(MEMBER)
    assert first == second
    assert "/ai-list" in first and "/ai-serve <id>" in first and "/ai_list" in first
    assert "30 minutes" in first


async def test_it_ignores_edited_messages(webhook, telegram):
    await webhook.send(edited("/ai-help", user_id=MEMBER))
    assert telegram.calls_of("sendMessage") == []
    assert await sync_to_async(_count_updates)() == 1


async def test_it_greets_on_start(webhook, telegram):
    await webhook.send(message("/start", user_id=ADMIN))
    assert telegram.texts(ADMIN) == [
        "Hello! I am this group's AI model portal.\n"
        "Send /ai to chat with a model that is running, or /ai-help to see everything I can do."]


async def test_it_answers_404_when_the_bot_is_off(webhook, telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    response = await webhook.post(message("/ai-help"))
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error": "The Telegram bot is off (TELEGRAM_BOT_TOKEN is not set)."}
    assert telegram.calls == []


def test_it_forgets_updates_too_old_to_be_retried(transactional_db):
    update_record(update_id=1)
    update_record(update_id=2)
    ProcessedUpdate.objects.filter(update_id=1).update(received_at=timezone.now() - timedelta(days=3))

    assert update_forget_old() == 1
    assert list(ProcessedUpdate.objects.values_list("update_id", flat=True)) == [2]
