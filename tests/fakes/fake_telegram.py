"""A small Telegram Bot API server on 127.0.0.1 that records every call.

It speaks the methods python-telegram-bot calls for this project (getMe, sendMessage, sendMessageDraft,
editMessageText, editMessageReplyMarkup, deleteMessage, sendChatAction, answerCallbackQuery, setWebhook, deleteWebhook, setMyCommands,
getWebhookInfo) at `/bot<token>/<method>`, with form, JSON or query parameters, and answers the
way the real API does. Failure flags: `fail(method, ...)` makes the next calls of a method fail
with an error code (429 carries `retry_after`). Texts sent with `parse_mode: HTML` are parsed as
Telegram does (its few tags, balanced, entities counted in the visible text); `refuse_entities`
makes every formatted text fail with Telegram's "can't parse entities".

Run standalone: `python tests/fakes/fake_telegram.py --port 8081` (prints calls as JSON lines).
"""
from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "Portal", "username": "portal_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
_JSON_PARAMS = {"reply_markup", "commands", "allowed_updates", "entities", "link_preview_options",
                "reply_parameters", "scope"}
MAX_TEXT = 4096


@dataclass
class Call:
    method: str
    params: dict
    token: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    code: int
    description: str
    retry_after: int | None
    times: int


class FakeTelegram:
    """The server and what it saw: `calls`, `texts(chat_id)`, `wait_for(...)`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = "123456:TEST-token"):
        self.token = token
        self.calls: list[Call] = []
        self.webhook: dict = {}
        self.commands: list = []
        self._failures: dict[str, Failure] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._ids = itertools.count(1000)
        self.refuse_entities = False
        self.drafts: dict[tuple[int, int], str] = {}
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/bot"

    def start(self) -> FakeTelegram:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._failures.clear()
            self._messages.clear()
            self.refuse_entities = False
            self.drafts.clear()

    def fail(self, method: str, *, code: int = 500, description: str = "Internal Server Error",
             retry_after: int | None = None, times: int = 1) -> None:
        if code == 429 and description == "Internal Server Error":
            description = f"Too Many Requests: retry after {retry_after}"
        with self._lock:
            self._failures[method] = Failure(code, description, retry_after, times)

    # What was recorded
    def calls_of(self, *methods: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method in methods]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """The message as the chat shows it now (after every edit)."""
        with self._lock:
            return self._messages.get((int(chat_id), int(message_id)))

    def messages(self, chat_id: int) -> list[dict]:
        """The chat's messages from the bot (id, text, keyboard), in order, as they read now."""
        with self._lock:
            found = [dict(m) for (chat, _), m in self._messages.items() if chat == int(chat_id)]
        return sorted(found, key=lambda m: m["message_id"])

    def texts(self, chat_id: int) -> list[str]:
        """The chat's messages from the bot, in order, as they read after every edit."""
        with self._lock:
            found = [m for (chat, _), m in self._messages.items() if chat == int(chat_id)]
        return [m["text"] for m in sorted(found, key=lambda m: m["message_id"])]

    def wait_for(self, predicate, timeout: float = 90.0):
        """Block until `predicate(self)` is truthy (re-checked on every call); return its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Telegram: condition not met; calls: {[c.method for c in self.calls]}")
                self._lock.wait(min(left, 0.5))

    # Bot API methods
    def _dispatch(self, method: str, params: dict) -> tuple[int, dict]:
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        return handler(params)

    def _api_getme(self, params: dict) -> tuple[int, dict]:
        return 200, _ok(BOT_USER)

    def _formatted(self, params: dict) -> tuple[str, list[dict], str]:
        """(visible text, entities, problem) of a text as Telegram reads it."""
        text = str(params.get("text", ""))
        if str(params.get("parse_mode", "")).upper() != "HTML":
            return text, [], _text_problem(text)
        if self.refuse_entities:
            return text, [], "Bad Request: can't parse entities: unsupported start tag at byte offset 0"
        parsed = _TelegramHTML()
        try:
            parsed.feed(text)
            parsed.close()
            parsed.finish()
        except ValueError as exc:
            return text, [], f"Bad Request: can't parse entities: {exc}"
        visible = "".join(parsed.out)
        return visible, parsed.entities, _text_problem(visible)

    def _api_sendmessage(self, params: dict) -> tuple[int, dict]:
        text, entities, problem = self._formatted(params)
        if problem:
            return 400, _error(400, problem)
        chat_id = int(params["chat_id"])
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": _chat(chat_id),
                   "from": BOT_USER, "text": text}
        if entities:
            message["entities"] = entities
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self._messages[(chat_id, message["message_id"])] = message
        return 200, _ok(message)

    def _api_sendmessagedraft(self, params: dict) -> tuple[int, dict]:
        """A private chat's ephemeral preview: recorded in `drafts`, never a message of the chat."""
        chat_id, draft_id = int(params["chat_id"]), int(params.get("draft_id", 0))
        if chat_id < 0:
            return 400, _error(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
        if not draft_id:
            return 400, _error(400, "Bad Request: draft_id must be non-zero")
        text, entities, problem = self._formatted(params)
        if problem and text:
            return 400, _error(400, problem)
        self.drafts[(chat_id, draft_id)] = text
        return 200, _ok(True)

    def _api_editmessagetext(self, params: dict) -> tuple[int, dict]:
        text, entities, problem = self._formatted(params)
        if problem:
            return 400, _error(400, problem)
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        message = self._messages.get(key)
        if message is None:
            return 400, _error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if message["text"] == text and message.get("entities", []) == entities and message.get("reply_markup") == markup:
            return 400, _error(400, "Bad Request: message is not modified: specified new message content "
                                    "and reply markup are exactly the same as a current content and reply markup of the message")
        message.update(text=text, edit_date=int(time.time()))
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return 200, _ok(message)

    def _api_editmessagereplymarkup(self, params: dict) -> tuple[int, dict]:
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        message = self._messages.get(key)
        if message is None:
            return 400, _error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if message.get("reply_markup") == markup or (not markup and "reply_markup" not in message):
            return 400, _error(400, "Bad Request: message is not modified")
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return 200, _ok(message)

    def _api_deletemessage(self, params: dict) -> tuple[int, dict]:
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        if self._messages.pop(key, None) is None:
            return 400, _error(400, "Bad Request: message to delete not found")
        return 200, _ok(True)

    def _api_sendchataction(self, params: dict) -> tuple[int, dict]:
        return 200, _ok(True)

    def _api_answercallbackquery(self, params: dict) -> tuple[int, dict]:
        return 200, _ok(True)

    def _api_setwebhook(self, params: dict) -> tuple[int, dict]:
        if not str(params.get("url", "")).startswith("https://"):
            return 400, _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params)
        return 200, _ok(True)

    def _api_deletewebhook(self, params: dict) -> tuple[int, dict]:
        self.webhook = {}
        return 200, _ok(True)

    def _api_getwebhookinfo(self, params: dict) -> tuple[int, dict]:
        return 200, _ok({"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0})

    def _api_setmycommands(self, params: dict) -> tuple[int, dict]:
        self.commands = list(params.get("commands") or [])
        return 200, _ok(True)

    def _api_deletemycommands(self, params: dict) -> tuple[int, dict]:
        self.commands = []
        return 200, _ok(True)

    # HTTP
    def _handle(self, path: str, params: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return 404, _error(404, "Not Found")
        token, method = parts[0][3:], parts[1]
        with self._lock:
            self.calls.append(Call(method, params, token))
            try:
                if token != self.token:
                    return 401, _error(401, "Unauthorized")
                failure = self._failures.get(method)
                if failure is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._failures[method]
                    body = _error(failure.code, failure.description)
                    if failure.retry_after is not None:
                        body["parameters"] = {"retry_after": failure.retry_after}
                    return failure.code, body
                return self._dispatch(method, params)
            finally:
                self._lock.notify_all()

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                self._answer(*fake._handle(urlparse(self.path).path, _params(self.headers, self.path, body)))

            def do_GET(self):  # noqa: N802
                self._answer(*fake._handle(urlparse(self.path).path, _params(self.headers, self.path, b"")))

            def _answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


def _params(headers, path: str, body: bytes) -> dict:
    params: dict = dict(parse_qsl(urlparse(path).query))
    kind = headers.get("Content-Type", "")
    if body and kind.startswith("application/json"):
        params.update(json.loads(body))
    elif body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    for key in _JSON_PARAMS & params.keys():
        if isinstance(params[key], str):
            params[key] = json.loads(params[key])
    return params


class _TelegramHTML(HTMLParser):
    """Telegram's HTML: only these tags, properly nested; the rest must be escaped."""

    TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
            "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "code": "code", "pre": "pre",
            "a": "text_link", "blockquote": "blockquote", "tg-spoiler": "spoiler"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[tuple[str, int, dict]] = []
        self.entities: list[dict] = []

    def _offset(self) -> int:
        return sum(len(part) for part in self.out)

    def handle_starttag(self, tag, attrs):
        if tag not in self.TAGS:
            raise ValueError(f'unsupported start tag "{tag}"')
        self.open.append((tag, self._offset(), dict(attrs)))

    def handle_endtag(self, tag):
        if not self.open or self.open[-1][0] != tag:
            raise ValueError(f'can\'t find end tag corresponding to start tag "{self.open[-1][0] if self.open else tag}"')
        tag, start, attrs = self.open.pop()
        entity = {"type": self.TAGS[tag], "offset": start, "length": self._offset() - start}
        if tag == "a":
            entity["url"] = attrs.get("href", "")
        if tag == "code" and attrs.get("class", "").startswith("language-"):
            entity = {**entity, "type": "pre", "language": attrs["class"].removeprefix("language-")}
        last = self.entities[-1] if self.entities else {}
        if tag == "pre" and last.get("type") == "pre" and (last["offset"], last["length"]) == (start, entity["length"]):
            return  # <pre><code class="language-x">: one pre entity with its language, as Telegram makes it
        self.entities.append(entity)

    def handle_data(self, data):
        self.out.append(data)

    def finish(self) -> None:
        if self.open:
            raise ValueError(f'can\'t find end tag corresponding to start tag "{self.open[-1][0]}"')


def _text_problem(text: str) -> str:
    if not text.strip():
        return "Bad Request: message text is empty"
    if len(text) > MAX_TEXT:
        return "Bad Request: message is too long"
    return ""


def _chat(chat_id: int) -> dict:
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Test group"}
    return {"id": chat_id, "type": "private", "first_name": "Tester"}


def _ok(result) -> dict:
    return {"ok": True, "result": result}


def _error(code: int, description: str) -> dict:
    return {"ok": False, "error_code": code, "description": description}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123456:TEST-token")
    args = parser.parse_args()
    fake = FakeTelegram(args.host, args.port, args.token).start()
    print(f"fake Telegram Bot API at {fake.base_url}  (token {fake.token})", flush=True)
    seen = 0
    try:
        while True:
            with fake._lock:
                fake._lock.wait(1.0)
                new, seen = fake.calls[seen:], len(fake.calls)
            for call in new:
                print(json.dumps({"method": call.method, "params": call.params}), flush=True)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
