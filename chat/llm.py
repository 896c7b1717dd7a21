"""The chat client: talks to the llama-server that serves a model (the one importer of httpx for chat).

Every front door (REST, OpenAI-compatible API, web chat, Telegram) chats through these functions.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta

import httpx
from asgiref.sync import sync_to_async
from django.utils import timezone

from aiportal.errors import ApplicationError, Conflict, Unavailable, Upstream
from aiportal.nodes import node_offline, nodes_by_name
from chat.in_flight import InFlight, instance_slot
from models_app.inference.services import serve_touch
from models_app.models import ServeState
from models_app.selectors import model_get

TOUCH_EVERY = timedelta(seconds=5)
TIMEOUT = httpx.Timeout(connect=3.0, read=600.0, write=30.0, pool=30.0)
_client = httpx.Client(timeout=TIMEOUT, limits=httpx.Limits(max_keepalive_connections=32))


@dataclass(frozen=True)
class ChatResult:
    content: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Endpoint:
    """A llama-server that serves the model: where it is, the key it wants, and the request's place in its
    count of requests in flight (`lease`)."""

    model_id: str
    url: str
    key: str
    node: str
    instance_id: int
    slot: str  # what its requests in flight are counted under (chat.in_flight)
    lease: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


in_flight = InFlight()


def model_endpoint(*, model_id: str) -> Endpoint:
    """A llama-server that serves the model, the least busy when several do (SPEC §9 routing); 404 unknown,
    409 not serving, 503 when the nodes that serve it are offline."""
    model = model_get(model_id=model_id)
    wanted = [i for i in model.instance_list() if i.desired == "serving"]
    nodes = nodes_by_name()
    up = [i for i in wanted if i.state == ServeState.SERVING and i.port and not node_offline(i.node, nodes)]
    if not up:
        gone = [i.node for i in wanted if node_offline(i.node, nodes)]
        if gone:
            where = ", ".join(gone)
            raise Unavailable(f"Model {model_id} is served on node {where}, which is offline (no heartbeat); "
                              f"it answers again when that node's daemon is back.", code="model_unavailable",
                              extra={"node": gone[0], "nodes": gone})
        failed = model.served
        reason = f" ({failed.error.splitlines()[0]})" if model.serve_failed and failed.error else ""
        raise Conflict(f"Model {model_id} is {model.status}{reason}, not serving: serve it first.",
                       code="model_not_serving")
    slots = {instance_slot(instance_id=i.pk, url=i.url, api_key=i.api_key): i for i in up}
    chosen, lease = in_flight.take(list(slots))
    instance = slots[chosen]
    if instance.last_used_at is None or instance.last_used_at < timezone.now() - TOUCH_EVERY:
        serve_touch(instance_id=instance.pk)  # the keep-alive clock, written at most every few seconds
    return Endpoint(model_id=model_id, url=instance.url, key=instance.api_key, node=instance.node,
                    instance_id=instance.pk, slot=chosen, lease=lease)


def chat_body(*, model_id: str, messages: list[dict], max_tokens: int, temperature: float, stream: bool) -> dict:
    return {"model": model_id, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
            "stream": stream}


def chat_complete(*, model_id: str, messages: list[dict], max_tokens: int = 512, temperature: float = 0.7) -> ChatResult:
    endpoint = model_endpoint(model_id=model_id)
    body = chat_body(model_id=model_id, messages=messages, max_tokens=max_tokens, temperature=temperature, stream=False)
    data = {}
    try:
        data = _post_json(endpoint, "/v1/chat/completions", body)
    finally:
        request_done(endpoint, generated(data))
    try:
        usage = data.get("usage") or {}
        return ChatResult(content=data["choices"][0]["message"]["content"] or "",
                          prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise upstream_unreadable(model_id) from None


def chat_stream(*, model_id: str, messages: list[dict], max_tokens: int = 512,
                temperature: float = 0.7) -> AsyncIterator[str]:
    """Text deltas as the model generates them: the portal's one chat stream, on the event loop, over the
    same pass-through as the OpenAI and Ollama doors (`openai_open`, `openai_lines`). The instance is
    chosen now, so "not serving" and "offline" raise here, before anything streams."""
    endpoint = model_endpoint(model_id=model_id)
    body = chat_body(model_id=model_id, messages=messages, max_tokens=max_tokens, temperature=temperature,
                     stream=True)
    return _deltas(endpoint, body)


async def _deltas(endpoint: Endpoint, body: dict) -> AsyncIterator[str]:
    try:
        response = await openai_open(endpoint=endpoint, body=body)
    except BaseException:
        await asyncio.shield(sync_to_async(request_done)(endpoint))  # the keep-alive clock, the lease
        raise
    async with aclosing(openai_lines(endpoint=endpoint, response=response)) as lines:
        async for line in lines:
            event = _sse_event(endpoint.model_id, line)
            if event is None:
                continue
            if isinstance(event.get("error"), dict):  # llama-server's own error event mid-stream
                raise Upstream(f"llama-server for {endpoint.model_id} failed: {upstream_message(line[5:].encode())}",
                               code="llama_server_error")
            try:
                choices = event.get("choices") or [{}]
                delta = (choices[0].get("delta") or {}).get("content") or ""
            except (AttributeError, IndexError):
                raise upstream_unreadable(endpoint.model_id) from None
            if delta:
                yield delta


def _send(request: httpx.Request) -> httpx.Response:
    # llama-server closes idle keep-alive connections after 5 s; a request racing that close never
    # reached it and is safe to send once more on a fresh connection.
    try:
        return _client.send(request)
    except httpx.RemoteProtocolError:
        return _client.send(request)


def request_done(endpoint: Endpoint, tokens: int = 0) -> None:
    """A request ended, having generated `tokens`: it is no longer in flight, and the keep-alive clock of
    its instance runs from here."""
    in_flight.give_back(endpoint.lease)
    serve_touch(instance_id=endpoint.instance_id, generated=tokens)


def generated(data: dict) -> int:
    """Tokens an answer generated: llama-server's own count (`timings`), else OpenAI's `usage`."""
    try:
        return int((data.get("timings") or {}).get("predicted_n") or (data.get("usage") or {}).get("completion_tokens")
                   or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


_PREDICTED = re.compile(rb'"predicted_n":\s*(\d+)')


class Tally:
    """The tokens of a stream: llama-server's `predicted_n` in its last event; until that comes (a stream
    cut short), one per event, as llama-server sends one token per event."""

    def __init__(self) -> None:
        self.events = 0
        self.predicted: int | None = None
        self.accounted = False
        self._tail = b""

    @property
    def count(self) -> int:
        return self.events if self.predicted is None else self.predicted

    def feed(self, chunk: bytes) -> None:
        """Raw bytes as they come, split anywhere."""
        window = self._tail + chunk
        self.events += chunk.count(b"data: ") - chunk.count(b"data: [DONE]")
        if b"predicted_n" in window:
            found = _PREDICTED.findall(window)
            if found:
                self.predicted = int(found[-1])
        self._tail = window[-32:]  # a name or number split between chunks is whole in the next window


def _sse_event(model_id: str, line: str) -> dict | None:
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        event = json.loads(payload)
    except ValueError:
        raise upstream_unreadable(model_id) from None
    if not isinstance(event, dict):
        raise upstream_unreadable(model_id)
    return event


def count_tokens(*, model_id: str, text: str) -> int:
    endpoint = model_endpoint(model_id=model_id)
    try:
        data = _post_json(endpoint, "/tokenize", {"content": text})
    finally:
        in_flight.give_back(endpoint.lease)
    try:
        return len(data["tokens"])
    except (KeyError, TypeError):
        raise upstream_unreadable(model_id) from None


def _post_json(endpoint: Endpoint, path: str, body: dict) -> dict:
    model_id = endpoint.model_id
    try:
        response = _send(_client.build_request("POST", endpoint.url + path, json=body, headers=endpoint.headers))
    except httpx.HTTPError as exc:
        raise upstream_down(model_id, exc) from None
    _raise_for_status(model_id, response)
    try:
        data = response.json()
    except ValueError:
        raise upstream_unreadable(model_id) from None
    if not isinstance(data, dict):
        raise upstream_unreadable(model_id)
    return data


def _raise_for_status(model_id: str, response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    message = upstream_message(response.content) or f"HTTP {response.status_code}"
    if response.status_code == 400:
        raise ApplicationError(f"Model {model_id} refused the request: {message}", code="invalid_chat")
    if response.status_code == 501:  # e.g. embeddings from a llama-server started without them
        raise ApplicationError(f"Model {model_id}'s llama-server cannot do this: {message} (the portal starts it "
                               "so when LLAMA_EMBEDDINGS is on; stop and serve the model again after turning it on)",
                               code="not_supported", status=501)
    raise Upstream(f"llama-server for {model_id} failed: {message}", code="llama_server_error")


def upstream_message(content: bytes) -> str:
    try:
        error = json.loads(content).get("error")
        return str(error.get("message") if isinstance(error, dict) else error or "")
    except (ValueError, AttributeError):
        return content.decode(errors="replace")[:200]


def upstream_down(model_id: str, exc: Exception) -> Upstream:
    return Upstream(f"llama-server for {model_id} is not answering (did it crash? see the model's error): "
                    f"{type(exc).__name__}: {exc}", code="llama_server_down")


def upstream_unreadable(model_id: str) -> Upstream:
    return Upstream(f"llama-server for {model_id} sent an answer that is not valid OpenAI JSON.",
                    code="llama_server_garbage")


# The OpenAI-compatible pass-through (chat/openai_api.py): bytes in, bytes out, on the event loop.

_async_clients: dict[int, httpx.AsyncClient] = {}


def _async_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(id(loop))
    if client is None or client.is_closed:
        client = _async_clients[id(loop)] = httpx.AsyncClient(timeout=TIMEOUT)
    return client


async def openai_open(*, endpoint: Endpoint, body: dict, path: str = "/v1/chat/completions") -> httpx.Response:
    """Send an OpenAI request (chat or plain completion) to the model's llama-server; the response's body is
    not read yet."""
    model_id = endpoint.model_id
    client = _async_client()
    request = client.build_request("POST", f"{endpoint.url}{path}", json=body, headers=endpoint.headers)
    try:
        try:
            response = await client.send(request, stream=True)
        except httpx.RemoteProtocolError:  # a keep-alive connection closed as we sent (see _send)
            response = await client.send(request, stream=True)
    except BaseException as exc:  # a cancelled request too: it is not in flight any more
        in_flight.give_back(endpoint.lease)
        if isinstance(exc, httpx.HTTPError):
            raise upstream_down(model_id, exc) from None
        raise
    if response.status_code >= 400:
        in_flight.give_back(endpoint.lease)
        await response.aread()
        await response.aclose()
        _raise_for_status(model_id, response)
    return response


async def openai_json(*, endpoint: Endpoint, response: httpx.Response) -> dict:
    model_id = endpoint.model_id
    data = {}
    try:
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            raise upstream_down(model_id, exc) from None
        finally:
            await response.aclose()
        try:
            data = json.loads(response.content)
        except ValueError:
            raise upstream_unreadable(model_id) from None
        if not isinstance(data, dict):
            raise upstream_unreadable(model_id)
        return data
    finally:
        await sync_to_async(request_done)(endpoint, generated(data))  # 0 for anything not llama-server's


async def openai_relay(*, endpoint: Endpoint, response: httpx.Response):
    """The server-sent events exactly as llama-server writes them, chunk by chunk; an error event on a break."""
    model_id = endpoint.model_id
    tally = Tally()
    try:
        async for chunk in response.aiter_raw():
            tally.feed(chunk)
            yield chunk
            if tally.predicted is not None:
                await _account(endpoint, tally)
    except httpx.HTTPError as exc:
        error = {"error": {"message": upstream_down(model_id, exc).message, "type": "server_error", "code": "llama_server_down"}}
        yield f"data: {json.dumps(error)}\n\n".encode()
    finally:
        await _account(endpoint, tally)
        await response.aclose()


async def openai_lines(*, endpoint: Endpoint, response: httpx.Response):
    """The lines of llama-server's server-sent events; a break is an Upstream error. Closes the response."""
    model_id = endpoint.model_id
    tally = Tally()
    try:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                tally.feed(line.encode())
            yield line
            if tally.predicted is not None:
                await _account(endpoint, tally)
    except httpx.HTTPError as exc:
        raise upstream_down(model_id, exc) from None
    finally:
        await _account(endpoint, tally)
        await response.aclose()


async def _account(endpoint: Endpoint, tally: Tally) -> None:
    """A stream's request_done, once: right after its last event (the one naming its tokens) went out, else
    when it ends; shielded from the cancellation that a client's hang-up brings (the client may hang up as
    soon as it has that last event)."""
    if tally.accounted:
        return
    tally.accounted = True
    await asyncio.shield(sync_to_async(request_done)(endpoint, tally.count))
