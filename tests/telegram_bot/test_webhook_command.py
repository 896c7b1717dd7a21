from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from tests.telegram_bot.conftest import SECRET


def test_it_sets_the_webhook_with_the_secret_and_publishes_the_commands(telegram, capsys):
    call_command("telegram_webhook", "--url", "https://portal.example.org")

    assert telegram.webhook["url"] == "https://portal.example.org/telegram/webhook/"
    assert telegram.webhook["secret_token"] == SECRET
    assert telegram.webhook["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert [c["command"] for c in telegram.commands] == ["ai", "ai_list", "ai_serve", "ai_stop", "ai_clear", "ai_help"]
    assert capsys.readouterr().out.startswith(
        "Webhook set: Telegram now posts updates to https://portal.example.org/telegram/webhook/; commands published: /ai,")


def test_it_keeps_a_full_webhook_url_as_given(telegram):
    call_command("telegram_webhook", "--url", "https://example.org/hooks/tg/")

    assert telegram.webhook["url"] == "https://example.org/hooks/tg/"


def test_it_deletes_the_webhook(telegram, capsys):
    call_command("telegram_webhook", "--url", "https://portal.example.org")

    call_command("telegram_webhook", "--delete")

    assert telegram.webhook == {}
    assert [c.method for c in telegram.calls][-1] == "deleteWebhook"
    assert "Webhook removed" in capsys.readouterr().out


def test_it_refuses_a_plain_http_url(telegram):
    with pytest.raises(CommandError) as caught:
        call_command("telegram_webhook", "--url", "http://portal.example.org")

    assert str(caught.value) == ("--url 'http://portal.example.org' must be a public https:// address "
                                 "(Telegram only calls HTTPS webhooks).")
    assert telegram.calls_of("setWebhook") == []


def test_it_refuses_to_register_without_a_secret(telegram, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = ""

    with pytest.raises(CommandError) as caught:
        call_command("telegram_webhook", "--url", "https://portal.example.org")

    assert "Set TELEGRAM_WEBHOOK_SECRET" in str(caught.value)
    assert telegram.calls == []


def test_it_refuses_when_the_bot_is_off(telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = ""

    with pytest.raises(CommandError) as caught:
        call_command("telegram_webhook", "--delete")

    assert str(caught.value) == "TELEGRAM_BOT_TOKEN is not set: the bot is off."


def test_it_reports_what_telegram_refused(telegram):
    telegram.fail("setWebhook", code=400, description="Bad Request: bad webhook: Failed to resolve host")

    with pytest.raises(CommandError) as caught:
        call_command("telegram_webhook", "--url", "https://portal.example.org")

    assert str(caught.value) == "Telegram refused: Bad webhook: failed to resolve host"
