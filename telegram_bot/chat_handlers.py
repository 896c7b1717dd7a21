"""Chatting: `/ai` (pick a running model), plain messages to the model, `/ai-clear`, `/start`, help."""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from telegram import MessageEntity, Update
from telegram.constants import ChatAction, ChatType
from telegram.ext import ContextTypes

from aiportal.errors import ApplicationError
from chat.services import session_clear, session_for_telegram, session_send
from models_app.models import Status
from models_app.selectors import model_list
from telegram_bot import send, texts
from telegram_bot.access import is_admin
from telegram_bot.downloads import cmd_download
from telegram_bot.keyboards import keyboard, value_resolve
from telegram_bot.streaming import stream_to_chat

log = logging.getLogger("aiportal.telegram")

EDIT_INTERVAL_PRIVATE = 1.0  # Telegram allows about one message per second in a chat…
EDIT_INTERVAL_GROUP = 3.0  # …and twenty a minute in a group.
NOT_SERVING_CODES = {"model_not_serving", "session_without_model", "model_not_found"}


async def cmd_start(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    await send.say(context.bot, update.effective_chat.id, texts.GREETING)


async def cmd_help(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    help_text = texts.HELP.format(timeout=settings.CHAT_SESSION_TIMEOUT_MINUTES)
    await send.say(context.bot, update.effective_chat.id, help_text)


async def cmd_ai(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    if args:
        await cmd_download(update, context, args)
        return
    await offer_models(update, context)


async def offer_models(update: Update, context: ContextTypes.DEFAULT_TYPE, *, intro: str = "") -> None:
    """The keyboard of running models (and, for admins, of ready ones to start)."""
    served, ready = await sync_to_async(_choices)()
    admin = is_admin(update.effective_user.id)
    rows = [(f"💬 {m}", "chat", m) for m in served] + ([(f"▶️ Start {m}", "serve", m) for m in ready] if admin else [])
    if served:
        text = "Pick a model to chat with:"
    elif admin and ready:
        text = texts.NO_SERVED + " Start one:"
    elif admin:
        text = texts.NO_SERVED + " No model is ready either: download one with /ai <Hugging Face URL>."
    else:
        text = texts.NO_SERVED_MEMBER
    await send.say(context.bot, update.effective_chat.id, f"{intro}\n\n{text}" if intro else text,
                   markup=keyboard(rows))


def _choices() -> tuple[list[str], list[str]]:
    models = list(model_list())
    return ([m.id for m in models if m.status == Status.SERVING],
            [m.id for m in models if m.status == Status.READY])


async def on_pick(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str) -> None:
    chat, user = update.effective_chat, update.effective_user
    served, _ = await sync_to_async(_choices)()
    model_id = value_resolve(value, served)
    if model_id is None:
        await offer_models(update, context, intro="That model is not running any more.")
        return
    await sync_to_async(session_for_telegram)(chat_id=chat.id, user_id=user.id, model_id=model_id)
    who = "You are" if chat.type == ChatType.PRIVATE else f"{user.first_name} is"
    text = f"{who} now chatting with {model_id}. Write a message; /ai-clear ends the conversation."
    message = update.callback_query.message
    if message is not None and message.chat.id == chat.id:
        await send.edit(context.bot, chat.id, message.message_id, text)
    else:
        await send.say(context.bot, chat.id, text)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat, user, message = update.effective_chat, update.effective_user, update.message
    text = message.text
    if chat.type != ChatType.PRIVATE:
        # In a group the bot answers what is said to it: a mention of it, or a reply to one of its messages.
        text = _addressed_text(message, context)
        if text is None:
            return
    session = await sync_to_async(session_for_telegram)(chat_id=chat.id, user_id=user.id)
    if session is None:
        await offer_models(update, context, intro="You are not chatting with a model yet.")
        return
    if not text.strip():
        await send.say(context.bot, chat.id, f"Yes? Write your question after @{context.bot.username}.")
        return
    if session.was_expired:
        minutes = settings.CHAT_SESSION_TIMEOUT_MINUTES
        await send.say(context.bot, chat.id,
                       f"Our last conversation ended after {minutes} minutes of silence, so {session.model_id} "
                       "starts afresh.")
    await send.quietly(lambda: context.bot.send_chat_action(chat_id=chat.id, action=ChatAction.TYPING))
    try:
        deltas = await sync_to_async(session_send, thread_sensitive=False)(
            session=session, text=text, max_tokens=settings.TELEGRAM_MAX_TOKENS)
    except ApplicationError as exc:
        await _cannot_send(update, context, session.model_id, exc)
        return
    interval = EDIT_INTERVAL_PRIVATE if chat.type == ChatType.PRIVATE else EDIT_INTERVAL_GROUP
    try:
        await stream_to_chat(context.bot, chat.id, deltas, interval=interval)
    except ApplicationError as exc:
        log.warning("answer of %s broke off: %s", session.model_id, exc.message)


async def _cannot_send(update: Update, context: ContextTypes.DEFAULT_TYPE, model_id: str | None,
                       exc: ApplicationError) -> None:
    status = await sync_to_async(_status)(model_id)
    if status == Status.STARTING:
        await send.say(context.bot, update.effective_chat.id,
                       f"{model_id} is still starting. Send your message again in a moment.")
    elif exc.code in NOT_SERVING_CODES:
        name = model_id or "The model of this conversation"
        await offer_models(update, context, intro=f"{name} is not running any more, so it cannot answer.")
    else:
        await send.say(context.bot, update.effective_chat.id, exc.message)


def _status(model_id: str | None) -> str | None:
    model = model_list().filter(pk=model_id).first() if model_id else None
    return model.status if model is not None else None


def _replies_to_bot(message, context: ContextTypes.DEFAULT_TYPE) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id


def _addressed_text(message, context: ContextTypes.DEFAULT_TYPE) -> str | None:
    """A group message's text without the bot's @mention, when it mentions the bot or replies to it; else None."""
    handle = f"@{context.bot.username}".lower()
    mentions = [(e.offset, e.length) for e in message.entities or ()
                if e.type == MessageEntity.MENTION and message.parse_entity(e).lower() == handle]
    if not mentions and not _replies_to_bot(message, context):
        return None
    text = message.text
    for offset, length in sorted(mentions, reverse=True):  # Telegram's offsets; parse_entity read them right
        start = len(message.text.encode("utf-16-le")[:offset * 2].decode("utf-16-le"))
        end = len(message.text.encode("utf-16-le")[:(offset + length) * 2].decode("utf-16-le"))
        text = f"{text[:start].rstrip(' ')} {text[end:].lstrip(' ')}"
    return text.strip().lstrip(",:").strip()


async def cmd_clear(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    chat, user = update.effective_chat, update.effective_user
    session = await sync_to_async(session_for_telegram)(chat_id=chat.id, user_id=user.id)
    if session is None:
        await send.say(context.bot, chat.id, "There is no conversation to clear. Send /ai to start one.")
        return
    await sync_to_async(session_clear)(session=session)
    await send.say(context.bot, chat.id, f"Done: I forgot our conversation with {session.model_id or 'the model'}. "
                                         "Send /ai to start a new one.")
