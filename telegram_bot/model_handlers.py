"""Models: `/ai-list`, and for admins `/ai-serve`, `/ai-stop` and `/ai <url>` (download).

Each calls the same services as the REST API; slow waits (a model loading, a download) run in
this update's background task and edit one message as they advance.
"""
from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from aiportal.errors import ApplicationError
from models_app.inference.services import serve_start, serve_stop, serve_wait
from models_app.models import AIModel, Status
from models_app.selectors import model_get, model_list
from telegram_bot import send, texts
from telegram_bot.access import refuse_unless_admin
from telegram_bot.keyboards import keyboard, pager, value_resolve

SERVE_TIMEOUT = 600.0
SERVE_POLL = 0.5
LIST_PAGE = 5  # models per /ai-list message when the list is long


def _models() -> list[AIModel]:
    return list(model_list())


async def cmd_list(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    models = await sync_to_async(_models)()
    chat_id = update.effective_chat.id
    if not models:
        await send.say(context.bot, chat_id, "No models yet. An admin can download one with /ai <Hugging Face URL>.")
        return
    text, markup = _list_page(models, 0)
    await send.say(context.bot, chat_id, text, markup=markup)


async def on_list_button(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str) -> None:
    """‹ or › under a long /ai-list: the same message shows that page, as the models are now."""
    models = await sync_to_async(_models)()
    message = update.callback_query.message
    if not models or not value.isdigit() or message is None:
        await cmd_list(update, context, [])
        return
    text, markup = _list_page(models, int(value))
    await send.edit(context.bot, message.chat.id, message.message_id, text, markup=markup)


def _list_page(models: list[AIModel], page: int) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of /ai-list (the whole list when it fits one message) and its ‹ › buttons."""
    count = f"{len(models)} model{'s' if len(models) != 1 else ''}"
    pages = send.blocks_pack([texts.model_block(m) for m in models], send.MAX_TEXT - len(count) - 32,
                             per_message=LIST_PAGE)
    page = min(page, len(pages) - 1)
    if len(pages) == 1:
        return f"{count}:\n\n{pages[0]}", None
    return f"{count}, page {page + 1} of {len(pages)}:\n\n{pages[page]}", pager("list", page, len(pages))


async def cmd_serve(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    if await refuse_unless_admin(update, context, "start models"):
        return
    models = await sync_to_async(_models)()
    ready = [m.id for m in models if m.status == Status.READY]
    rows = [(f"▶️ {m}", "serve", m) for m in ready]
    if args and args[0] in {m.id for m in models}:
        await serve(update, context, args[0])
    elif not ready:
        await send.say(context.bot, update.effective_chat.id, _unknown(args) + "No model is ready to start. "
                       "Download one with /ai <Hugging Face URL>; /ai-list shows them all.")
    else:
        await send.say(context.bot, update.effective_chat.id, _unknown(args) + "Which model should I start?",
                       markup=keyboard(rows))


async def cmd_stop(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    if await refuse_unless_admin(update, context, "stop models"):
        return
    models = await sync_to_async(_models)()
    running = [m.id for m in models if m.status in {Status.SERVING, Status.STARTING}]
    if args and args[0] in {m.id for m in models}:
        await stop(update, context, args[0])
    elif not running:
        await send.say(context.bot, update.effective_chat.id, _unknown(args) + "No model is running.")
    else:
        await send.say(context.bot, update.effective_chat.id, _unknown(args) + "Which model should I stop?",
                       markup=keyboard([(f"⏹ {m}", "stop", m) for m in running]))


def _unknown(args: list[str]) -> str:
    return f"There is no model with the id {args[0]!r}. " if args else ""


async def on_serve_button(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str) -> None:
    if await refuse_unless_admin(update, context, "start models"):
        return
    model_id = value_resolve(value, [m.id for m in await sync_to_async(_models)()])
    if model_id is None:
        await cmd_serve(update, context, [])
        return
    await serve(update, context, model_id)


async def on_stop_button(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str) -> None:
    if await refuse_unless_admin(update, context, "stop models"):
        return
    model_id = value_resolve(value, [m.id for m in await sync_to_async(_models)()])
    if model_id is None:
        await cmd_stop(update, context, [])
        return
    await stop(update, context, model_id)


async def serve(update: Update, context: ContextTypes.DEFAULT_TYPE, model_id: str) -> None:
    """Start the model, then edit the reply to "serving" once it answers (or to the reason it did not)."""
    bot, chat_id = context.bot, update.effective_chat.id
    try:
        model = await sync_to_async(serve_start)(model_id=model_id)
    except ApplicationError as exc:
        await send.say(bot, chat_id, f"Could not start {model_id}: {exc.message}")
        return
    if model.status == Status.SERVING:
        await send.say(bot, chat_id, f"✅ {model_id} is already running. Send /ai to chat with it.")
        return
    message = await send.say(bot, chat_id, f"⏳ Starting {model_id}… I will update this message when it is ready.")
    await send.edit(bot, chat_id, message.message_id, await _serve_outcome(model_id))


async def _serve_outcome(model_id: str) -> str:
    """Wait for the model to serve, asking `serve_wait` without blocking (no thread held for minutes)."""
    deadline = asyncio.get_running_loop().time() + SERVE_TIMEOUT
    while True:
        try:
            await sync_to_async(serve_wait)(model_id=model_id, timeout=0)
            return f"✅ {model_id} is serving. Send /ai to chat with it."
        except ApplicationError as exc:
            if exc.code != "serve_timeout":
                return f"❌ {model_id} did not start: {exc.message}"
        if asyncio.get_running_loop().time() >= deadline:
            return (f"❌ {model_id} did not start within {SERVE_TIMEOUT / 60:.0f} minutes "
                    "(is the node daemon `manage.py runnode` running?).")
        await asyncio.sleep(SERVE_POLL)


async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE, model_id: str) -> None:
    bot, chat_id = context.bot, update.effective_chat.id
    try:
        before = await sync_to_async(model_get)(model_id=model_id)
        if before.status not in {Status.SERVING, Status.STARTING} and not before.serve_failed:
            await send.say(bot, chat_id, f"{model_id} is not running ({before.status}).")
            return
        await sync_to_async(serve_stop)(model_id=model_id)
    except ApplicationError as exc:
        await send.say(bot, chat_id, f"Could not stop {model_id}: {exc.message}")
        return
    await send.say(bot, chat_id, f"⏹ Stopped {model_id}: it no longer answers chats.")
