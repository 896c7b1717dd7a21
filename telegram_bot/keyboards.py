"""Inline keyboards and their callback data (`<action>:<model id>`, at most 64 bytes).

Model ids too long for Telegram's 64-byte limit travel as `#<hash>` and are found again by
hashing the ids that exist; other values (a repo's file names) are kept per process under a
short key.
"""
from __future__ import annotations

import hashlib

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

MAX_DATA = 64
MAX_BUTTONS = 30


def short_hash(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()[:16]


def data_pack(action: str, value: str) -> str:
    data = f"{action}:{value}"
    return data if len(data.encode()) <= MAX_DATA else f"{action}:#{short_hash(value)}"


def data_unpack(data: str) -> tuple[str, str]:
    action, _, value = (data or "").partition(":")
    return action, value


def value_resolve(value: str, candidates: list[str]) -> str | None:
    """The candidate `value` stands for (itself, or the one whose hash it carries)."""
    if not value.startswith("#"):
        return value if value in candidates else None
    return next((c for c in candidates if short_hash(c) == value[1:]), None)


def keyboard(rows: list[tuple[str, str, str]]) -> InlineKeyboardMarkup | None:
    """One button per row: (label, action, value)."""
    buttons = [[InlineKeyboardButton(label[:60], callback_data=data_pack(action, value))]
               for label, action, value in rows[:MAX_BUTTONS]]
    return InlineKeyboardMarkup(buttons) if buttons else None


def pager(action: str, page: int, pages: int) -> InlineKeyboardMarkup:
    """‹ and › around "page/pages" in one row; `<action>:<page>` (0-based) is what a press sends."""
    row = []
    if page > 0:
        row.append(InlineKeyboardButton("‹ Previous", callback_data=data_pack(action, str(page - 1))))
    row.append(InlineKeyboardButton(f"{page + 1}/{pages}", callback_data=data_pack(action, str(page))))
    if page < pages - 1:
        row.append(InlineKeyboardButton("Next ›", callback_data=data_pack(action, str(page + 1))))
    return InlineKeyboardMarkup([row])
