"""Routing of updates: the gate (who, how often), commands in both spellings, buttons, plain text.

Telegram command names allow only `[a-z0-9_]`, and it marks `/ai-list` as the command `/ai`
followed by "-list"; so commands are parsed here from the text, with `-` and `_` alike.
"""
from __future__ import annotations

import re

from django.conf import settings
from telegram import Update
from telegram.constants import ChatType
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from telegram_bot import chat_handlers, downloads, model_handlers, send, texts
from telegram_bot.access import RateLimiter, is_admin, may_chat
from telegram_bot.keyboards import data_unpack

COMMAND = re.compile(r"^/([A-Za-z0-9_-]+)(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?$", re.S)
OPEN_TO_ALL = {"start", "ai_help", "help"}

COMMANDS = {
    "start": chat_handlers.cmd_start,
    "help": chat_handlers.cmd_help,
    "ai_help": chat_handlers.cmd_help,
    "ai": chat_handlers.cmd_ai,
    "ai_clear": chat_handlers.cmd_clear,
    "ai_list": model_handlers.cmd_list,
    "ai_serve": model_handlers.cmd_serve,
    "ai_stop": model_handlers.cmd_stop,
}
BUTTONS = {
    "chat": chat_handlers.on_pick,
    "serve": model_handlers.on_serve_button,
    "stop": model_handlers.on_stop_button,
    "dl": downloads.on_download_button,
    "list": model_handlers.on_list_button,
}

SPENT_BUTTONS = {"serve", "stop", "dl"}  # admin actions


def handlers_install(app: Application) -> None:
    new_text = filters.UpdateType.MESSAGE & filters.TEXT
    app.add_handler(TypeHandler(Update, gate), group=-1)
    app.add_handler(MessageHandler(new_text & filters.Regex(r"^/[A-Za-z0-9_-]"), on_command))
    app.add_handler(MessageHandler(new_text, chat_handlers.on_text))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE, on_not_text))


def command_parse(text: str, bot_username: str) -> tuple[str, list[str]] | None:
    """(name with `_`, args) of a command meant for this bot, or None."""
    match = COMMAND.match(text.strip())
    if match is None:
        return None
    name, target, rest = match.groups()
    if target and target.lower() != (bot_username or "").lower():
        return None
    return name.lower().replace("-", "_"), (rest or "").split()


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Runs before every handler: ignores edits and unknown update types, refuses strangers, limits the rate."""
    user = update.effective_user
    if user is None or update.effective_chat is None or not (update.message or update.callback_query):
        raise ApplicationHandlerStop
    if not _limiter(context).allow(user.id):
        await _too_fast(update, context)
        raise ApplicationHandlerStop
    if not may_chat(user.id) and not _open_to_all(update, context):
        await _refuse_stranger(update, context)
        raise ApplicationHandlerStop


async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    parsed = command_parse(update.message.text, context.bot.username)
    if parsed is None:
        return
    name, args = parsed
    handler = COMMANDS.get(name)
    if handler is not None:
        await handler(update, context, args)
    elif _for_me(update, name):
        await send.say(context.bot, update.effective_chat.id,
                       f"I don't know the command /{name.replace('_', '-')}. Send /ai-help to see what I can do.")


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await send.quietly(lambda: query.answer())
    action, value = data_unpack(query.data or "")
    handler = BUTTONS.get(action)
    if action in SPENT_BUTTONS and query.message is not None and is_admin(update.effective_user.id):
        # One press is enough: take the keyboard away so a second press cannot repeat the action.
        await send.quietly(lambda: query.edit_message_reply_markup(reply_markup=None))
    if handler is None:
        await send.say(context.bot, update.effective_chat.id,
                       "That button no longer works. Send /ai-help to start again.")
        return
    await handler(update, context, value)


async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send.say(context.bot, update.effective_chat.id,
                   "I can only read text messages. Send /ai-help to see what I can do.")


def _for_me(update: Update, name: str) -> bool:
    """In a group, an unknown command may be another bot's: answer only ours (`/ai…`) or ones addressed to us."""
    private = update.effective_chat.type == ChatType.PRIVATE
    return private or name.startswith("ai") or "@" in update.message.text.split()[0]


def _limiter(context: ContextTypes.DEFAULT_TYPE) -> RateLimiter:
    limiter = context.bot_data.get("limiter")
    if limiter is None:
        limiter = context.bot_data["limiter"] = RateLimiter(limit=settings.TELEGRAM_RATE_LIMIT_PER_MINUTE)
    return limiter


def _open_to_all(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    parsed = command_parse(update.message.text or "", context.bot.username) if update.message else None
    return parsed is not None and parsed[0] in OPEN_TO_ALL


async def _too_fast(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    limiter, user_id = _limiter(context), update.effective_user.id
    text = (f"You are sending messages faster than I can answer. Please wait {limiter.wait_seconds(user_id)} "
            "seconds and try again.")
    if update.callback_query:
        await send.quietly(lambda: update.callback_query.answer(text, show_alert=True))
    elif limiter.first_refusal(user_id):
        await send.say(context.bot, update.effective_chat.id, text)


async def _refuse_stranger(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = texts.NOT_ALLOWED.format(user_id=update.effective_user.id)
    if update.callback_query:
        await send.quietly(lambda: update.callback_query.answer(text, show_alert=True))
    elif update.effective_chat.type == ChatType.PRIVATE or (update.message.text or "").startswith("/"):
        await send.say(context.bot, update.effective_chat.id, text)
