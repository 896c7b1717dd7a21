"""The webhook Telegram posts updates to (SPEC §6)."""
from __future__ import annotations

import hmac
import json
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from telegram_bot import app
from telegram_bot.services import update_record, update_summary

log = logging.getLogger("aiportal.telegram")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOT_OFF = "The Telegram bot is off (TELEGRAM_BOT_TOKEN is not set)."


@csrf_exempt
@require_POST
async def webhook(request: HttpRequest) -> JsonResponse:
    if not settings.TELEGRAM_BOT_TOKEN:
        return JsonResponse({"ok": False, "error": BOT_OFF}, status=404)
    if not _secret_ok(request):
        return JsonResponse({"ok": False, "error": "Wrong or missing secret token."}, status=403)
    payload = _payload(request.body)
    # Junk is answered 200 too: an error status only makes Telegram send the same junk again.
    if payload is not None and await sync_to_async(update_record)(update_id=payload["update_id"],
                                                                  **update_summary(payload)):
        app.background(app.update_process(payload))
    return JsonResponse({"ok": True})


def _secret_ok(request: HttpRequest) -> bool:
    expected = settings.TELEGRAM_WEBHOOK_SECRET
    given = request.headers.get(SECRET_HEADER, "")
    # Without a configured secret anyone could post fake updates: refuse rather than trust.
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _payload(body: bytes) -> dict | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        log.warning("Telegram webhook: ignored a body that is not JSON (%d bytes)", len(body))
        return None
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        log.warning("Telegram webhook: ignored JSON without an update_id")
        return None
    return payload
