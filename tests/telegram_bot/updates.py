"""Update JSON as Telegram sends it to a webhook (messages, commands, buttons, edits, groups)."""
from __future__ import annotations

import itertools
import re
import time

ADMIN = 1001
MEMBER = 1002
STRANGER = 1003
GROUP = -100123456
_ids = itertools.count(500_000)
_message_ids = itertools.count(1)
_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")


def _user(user_id: int) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "username": f"user{user_id}",
            "language_code": "en"}


def _chat(chat_id: int, user_id: int) -> dict:
    if chat_id < 0:
        return {"id": chat_id, "title": "Model fans", "type": "supergroup"}
    return {"id": chat_id, "first_name": f"User{user_id}", "username": f"user{user_id}", "type": "private"}


def message_body(text: str, *, user_id: int, chat_id: int | None = None, reply_to: dict | None = None) -> dict:
    chat_id = user_id if chat_id is None else chat_id
    body = {"message_id": next(_message_ids), "from": _user(user_id), "chat": _chat(chat_id, user_id),
            "date": int(time.time()), "text": text}
    # Telegram marks only `/[A-Za-z0-9_]+(@bot)?` as the command: "/ai-list" is "/ai" then "-list".
    command = _COMMAND.match(text)
    entities = [{"offset": 0, "length": command.end(), "type": "bot_command"}] if command else []
    # ... and each @username as a mention (offsets in UTF-16 code units, as Telegram counts).
    for found in re.finditer(r"@[A-Za-z0-9_]{5,32}", text):
        if command and found.start() < command.end():
            continue
        offset = len(text[:found.start()].encode("utf-16-le")) // 2
        entities.append({"offset": offset, "length": len(found.group(0)), "type": "mention"})
    if entities:
        body["entities"] = entities
    if reply_to is not None:
        body["reply_to_message"] = reply_to
    return body


def message(text: str, *, user_id: int = MEMBER, chat_id: int | None = None, update_id: int | None = None,
            reply_to: dict | None = None) -> dict:
    return {"update_id": update_id or next(_ids),
            "message": message_body(text, user_id=user_id, chat_id=chat_id, reply_to=reply_to)}


def edited(text: str, *, user_id: int = MEMBER) -> dict:
    body = message_body(text, user_id=user_id) | {"edit_date": int(time.time())}
    return {"update_id": next(_ids), "edited_message": body}


def sticker(*, user_id: int = MEMBER) -> dict:
    body = message_body("", user_id=user_id)
    del body["text"]
    body["sticker"] = {"file_id": "CAACAgIAAxk", "file_unique_id": "AgADxk", "type": "regular", "width": 512,
                       "height": 512, "is_animated": False, "is_video": False}
    return {"update_id": next(_ids), "message": body}


def button(data: str, *, user_id: int = MEMBER, chat_id: int | None = None, message_id: int = 1) -> dict:
    chat_id = user_id if chat_id is None else chat_id
    shown = {"message_id": message_id, "from": {"id": 7000001, "is_bot": True, "first_name": "Portal",
                                                 "username": "portal_test_bot"},
             "chat": _chat(chat_id, user_id), "date": int(time.time()), "text": "Pick a model to chat with:"}
    return {"update_id": next(_ids), "callback_query": {
        "id": str(next(_ids)), "from": _user(user_id), "message": shown, "chat_instance": "-5551212",
        "data": data}}
