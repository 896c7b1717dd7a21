"""`/ai <hf url> [file]`: start a download through the Hugging Face services and keep one message
up to date with its progress; a repo with several GGUF files offers them as buttons, one with none
offers the GGUF repos the Hub search found."""
from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from telegram import Update
from telegram.ext import ContextTypes

from aiportal.errors import ApplicationError
from models_app.hub.refs import hub_ref_names_file
from models_app.hub.services import download_start, repo_gguf_files
from models_app.models import AIModel
from models_app.selectors import model_list
from telegram_bot import send, texts
from telegram_bot.access import refuse_unless_admin
from telegram_bot.keyboards import keyboard, short_hash

MAGNET_GRACE_POLLS = 5  # the torrent (and its magnet) is created right after the file is verified
PROGRESS_EVERY = 3.0  # at most one edit of a progress message every 3 seconds


def _file_name(entry: dict) -> str:
    return str(entry.get("fileName") or entry.get("name") or entry.get("file_name") or entry.get("path") or "")


def _suggestions(exc: ApplicationError) -> list[str]:
    """Other GGUF repos the Hub search found (for a repo without any GGUF file)."""
    found = exc.extra.get("suggestions")
    return [str(repo) for repo in found] if isinstance(found, list) else []


def _alternatives(exc: ApplicationError) -> list[dict]:
    """The repo's GGUF files (for a file name that is wrong or does not fit)."""
    found = exc.extra.get("alternatives")
    if not isinstance(found, list):
        return []
    return [entry for entry in found if isinstance(entry, dict) and _file_name(entry)]


def _remember(context: ContextTypes.DEFAULT_TYPE, url: str, file_name: str | None) -> str:
    """A short key for a (url, file) choice behind a button (per process; buttons of a restarted portal expire)."""
    key = short_hash(f"{url}\n{file_name or ''}")
    context.bot_data.setdefault("download_choices", {})[key] = (url, file_name)
    return key


async def download_begin(update: Update, context: ContextTypes.DEFAULT_TYPE, *, url: str,
                         file_name: str | None) -> None:
    bot, chat_id = context.bot, update.effective_chat.id
    if file_name is None and not hub_ref_names_file(url, endpoint=settings.HF_ENDPOINT):
        try:
            files = await sync_to_async(repo_gguf_files, thread_sensitive=False)(url=url)
        except ApplicationError as exc:
            await _failed(update, context, url, exc)
            return
        if len(files) > 1:
            rows = [(_file_label(f), "dl", _remember(context, url, _file_name(f))) for f in files]
            await send.say(bot, chat_id, f"{url} has {len(files)} GGUF files. Which one should I download?",
                           markup=keyboard(rows))
            return
    await download_start_and_watch(update, context, url=url, file_name=file_name)


async def download_choice(update: Update, context: ContextTypes.DEFAULT_TYPE, key: str) -> None:
    choice = context.bot_data.get("download_choices", {}).get(key)
    if choice is None:
        await send.say(context.bot, update.effective_chat.id,
                       "That button has expired. Send /ai <Hugging Face URL> again.")
        return
    url, file_name = choice
    if file_name is None:
        await download_begin(update, context, url=url, file_name=None)
    else:
        await download_start_and_watch(update, context, url=url, file_name=file_name)


async def download_start_and_watch(update: Update, context: ContextTypes.DEFAULT_TYPE, *, url: str,
                                   file_name: str | None) -> None:
    bot, chat_id = context.bot, update.effective_chat.id
    try:
        model = await sync_to_async(download_start, thread_sensitive=False)(
            url=url, file_name=file_name, requested_by=f"telegram:{update.effective_user.id}")
    except ApplicationError as exc:
        await _failed(update, context, url, exc)
        return
    message = await send.say(bot, chat_id, texts.download_text(model))
    if _finished(model, polls=MAGNET_GRACE_POLLS):
        return
    polls = {"n": 0}

    def render(current: AIModel | None) -> tuple[str, bool]:
        polls["n"] += 1
        if current is None:
            return f"{model.id} was removed before its download finished.", True
        return texts.download_text(current), _finished(current, polls=polls["n"])

    await watch(lambda: model_list().filter(pk=model.pk).first(), render,
                lambda text: send.quietly(lambda: bot.edit_message_text(
                    chat_id=chat_id, message_id=message.message_id, text=text,
                    link_preview_options=send.NO_PREVIEW)))


def _finished(model: AIModel, *, polls: int) -> bool:
    if model.status == "error":
        return True
    return model.is_available and (bool(model.magnet_uri) or polls >= MAGNET_GRACE_POLLS)


async def _failed(update: Update, context: ContextTypes.DEFAULT_TYPE, url: str, exc: ApplicationError) -> None:
    rows = [(f"⬇️ {repo}", "dl", _remember(context, repo, None)) for repo in _suggestions(exc)]
    text = f"Could not download {url}: {exc.message}"
    if rows:
        text += "\n\nGGUF repos the Hub search found:"
    files = _alternatives(exc)
    if files:
        rows = [(_file_label(f), "dl", _remember(context, url, _file_name(f))) for f in files]
        text += "\n\nThe repo's GGUF files:"
    await send.say(context.bot, update.effective_chat.id, text, markup=keyboard(rows))


def _file_label(entry: dict) -> str:
    return f"{_file_name(entry)} ({texts.human_bytes(entry.get('size') or 0)})"


async def cmd_download(update: Update, context: ContextTypes.DEFAULT_TYPE, args: list[str]) -> None:
    if await refuse_unless_admin(update, context, "download models"):
        return
    await download_begin(update, context, url=args[0], file_name=args[1] if len(args) > 1 else None)


async def on_download_button(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str) -> None:
    if await refuse_unless_admin(update, context, "download models"):
        return
    await download_choice(update, context, value)


async def watch(poll, render, on_change, *, every: float = PROGRESS_EVERY) -> None:
    """Every `every` seconds: `state = poll()`; `render(state)` gives (text, done); show changed texts."""
    last = None
    while True:
        await asyncio.sleep(every)
        state = await sync_to_async(poll)()
        text, done = render(state)
        if text != last:
            await on_change(text)
            last = text
        if done:
            return
