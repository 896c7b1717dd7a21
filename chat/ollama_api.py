"""The Ollama-compatible API (SPEC §5): the endpoints Ollama clients and Open WebUI call, in Ollama's shapes.

Chat and generate are translated to llama-server's OpenAI endpoints and back: the request's `options`
become sampling fields, the answer's server-sent events become Ollama's NDJSON lines, and
llama-server's own timings become Ollama's nanosecond durations. Pull is the portal's usual Hub
download (verified, then seeded), its progress read from the model row as the worker writes it.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from aiportal.errors import ApplicationError, NotFound
from chat import llm
from chat.openai_api import bearer_user, serving_endpoint
from models_app.hub.refs import hub_ref_parse
from models_app.hub.services import download_start
from models_app.inference.services import serve_stop
from models_app.models import AIModel, ServeState, Status
from models_app.selectors import model_get, model_list
from models_app.services import model_delete

# The Ollama release whose API these endpoints follow (clients such as Open WebUI gate features on it).
OLLAMA_VERSION = "0.12.0"
NDJSON = "application/x-ndjson"
PULL_POLL_SECONDS = 0.25
FOREVER = "9999-12-31T23:59:59Z"
# Ollama's `options` that have a llama-server field of their own; the others (num_ctx, num_thread, …)
# belong to how the instance was started and are ignored, as Ollama ignores options it does not know.
OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
           "stop": "stop", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
           "repeat_penalty": "repeat_penalty", "repeat_last_n": "repeat_last_n", "typical_p": "typical_p",
           "mirostat": "mirostat", "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta",
           "num_keep": "n_keep"}


def ollama_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _now() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ApplicationError("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApplicationError("The body must be a JSON object.", code="invalid_json")
    return body


def _name(body: dict) -> str:
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApplicationError("model is required", code="missing_model")
    name = name.strip()
    return name[: -len(":latest")] if name.endswith(":latest") else name


def _resolve(name: str) -> AIModel:
    """A model id, or the Hub reference it was pulled by (`hf.co/owner/repo[:quant]`)."""
    try:
        return model_get(model_id=name)
    except NotFound:
        pass
    try:
        ref = hub_ref_parse(name, endpoint=settings.HF_ENDPOINT)
    except ApplicationError:
        ref = None
    if ref is not None:
        for model in model_list().filter(repo_id=ref.repo_id):
            if ref.quant is None or ref.quant in model.file_name.upper():
                return model
    raise NotFound(f"model '{name}' not found", code="model_not_found")


def _guarded(handler):
    """Bearer auth, then the handler; portal errors become Ollama's `{"error": …}` with their status."""

    @csrf_exempt
    async def view(request: HttpRequest) -> HttpResponse:
        try:
            request.api_user = await sync_to_async(bearer_user)(request)
            return await handler(request)
        except AuthenticationFailed as exc:
            return ollama_error(f"unauthorized: {exc.detail}", 401)
        except ApplicationError as exc:
            return ollama_error(exc.message, exc.status)

    return view


def _only(method: str, handler):
    async def view(request: HttpRequest) -> HttpResponse:
        if request.method != method:
            return ollama_error(f"method not allowed: use {method}", 405)
        return await handler(request)

    return view


# Model descriptions

def _details(model: AIModel) -> dict:
    gguf = model.gguf or {}
    arch = gguf.get("architecture") or ""
    return {"parent_model": "", "format": model.format or "gguf", "family": arch, "families": [arch] if arch else [],
            "parameter_size": gguf.get("sizeLabel") or _size_label(gguf.get("parameters")),
            "quantization_level": gguf.get("quantization") or ""}


def _size_label(parameters: int | None) -> str:
    if not parameters:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= scale:
            return f"{parameters / scale:.1f}{unit}".replace(".0", "")
    return str(parameters)


def _summary(model: AIModel) -> dict:
    return {"name": model.id, "model": model.id, "modified_at": model.updated_at.isoformat(), "size": model.size,
            "digest": model.sha256, "details": _details(model)}


def _tags() -> dict:
    return {"models": [_summary(model) for model in model_list() if model.is_available]}


def _running() -> dict:
    keep = settings.LLAMA_KEEP_ALIVE_SECONDS
    rows = []
    for model in model_list().filter(instances__state=ServeState.SERVING).distinct():
        instance = model.served  # a serving one comes first
        expires = FOREVER
        if keep and instance.last_used_at:
            expires = (instance.last_used_at + timedelta(seconds=keep)).isoformat()
        rows.append({**_summary(model), "expires_at": expires, "context_length": instance.context_size,
                     "size_vram": model.size if instance.gpu_layers else 0})
    return {"models": rows}


def _show(name: str) -> dict:
    model = _resolve(name)
    gguf = model.gguf or {}
    arch = gguf.get("architecture") or "llama"
    info = {"general.architecture": arch, "general.name": gguf.get("name") or model.name,
            "general.parameter_count": gguf.get("parameters"), "general.size_label": gguf.get("sizeLabel"),
            f"{arch}.context_length": gguf.get("contextLength"), f"{arch}.embedding_length": gguf.get("embeddingLength"),
            f"{arch}.block_count": gguf.get("blockCount"), f"{arch}.attention.head_count": gguf.get("headCount"),
            f"{arch}.attention.head_count_kv": gguf.get("headCountKv")}
    instance = model.served
    parameters = f"num_ctx {instance.context_size}" if instance is not None else ""
    return {"modelfile": f"# Served by aiportal (model {model.id})\nFROM {model.file_name or model.name}\n",
            "parameters": parameters, "template": "", "license": "", "details": _details(model),
            "model_info": {key: value for key, value in info.items() if value is not None},
            "capabilities": ["completion", "embedding"] if settings.LLAMA_EMBEDDINGS else ["completion"],
            "modified_at": model.updated_at.isoformat()}


async def version_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"version": OLLAMA_VERSION})


async def tags_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse(await sync_to_async(_tags)())


async def ps_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse(await sync_to_async(_running)())


async def show_view(request: HttpRequest) -> HttpResponse:
    body = _body(request)
    return JsonResponse(await sync_to_async(_show)(_name(body)))


async def delete_view(request: HttpRequest) -> HttpResponse:
    def delete(name: str) -> None:
        model_delete(model_id=_resolve(name).id, delete_files=True)

    await sync_to_async(delete)(_name(_body(request)))
    return HttpResponse(status=200)


# Chat and generate

def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 for m in messages):
        raise ApplicationError("messages must be a list of {role, content} objects", code="invalid_messages")
    out = []
    for message in messages:
        if message.get("images"):
            raise ApplicationError("this portal's models read text only; images are not supported",
                                   code="images_unsupported")
        item = {"role": message["role"], "content": message.get("content") or ""}
        if message.get("tool_calls"):
            item["tool_calls"] = [
                {"id": f"call_{n}", "type": "function",
                 "function": {"name": (call.get("function") or {}).get("name", ""),
                              "arguments": json.dumps((call.get("function") or {}).get("arguments") or {})}}
                for n, call in enumerate(message["tool_calls"])]
        out.append(item)
    return out


def _sampling(body: dict) -> dict:
    """Ollama's `options`, `format` and `think` as llama-server's OpenAI request fields."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ApplicationError("options must be an object", code="invalid_options")
    fields = {target: options[name] for name, target in OPTIONS.items() if options.get(name) is not None}
    predict = options.get("num_predict")
    if isinstance(predict, int) and predict >= 0:
        fields["max_tokens"] = predict
    fmt = body.get("format")
    if fmt == "json":
        fields["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        fields["response_format"] = {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    elif fmt not in (None, ""):
        raise ApplicationError('format must be "json" or a JSON schema', code="invalid_format")
    if body.get("think") is False:
        fields["chat_template_kwargs"] = {"enable_thinking": False}
    if body.get("tools"):
        fields["tools"] = body["tools"]
    return fields


def _unload_asked(body: dict) -> bool:
    keep = body.get("keep_alive")
    return keep in (0, "0", "0s", "0m")


class _Turn:
    """One chat or generate request: the model, its llama-server and how long starting it took."""

    def __init__(self, request: HttpRequest, *, kind: str):
        self.started = time.perf_counter_ns()
        self.body = _body(request)
        self.kind = kind
        self.name = _name(self.body)
        self.stream = self.body.get("stream", True) is not False
        self.load_ns = 0
        self.endpoint: llm.Endpoint | None = None

    def prepare(self) -> None:
        """In a worker thread: the model (started on demand) and the upstream request."""
        self.model_id = _resolve(self.name).id
        self.path, self.upstream = self._upstream()
        if self.upstream is None and _unload_asked(self.body):
            serve_stop(model_id=self.model_id)
            return
        begun = time.perf_counter_ns()
        self.endpoint = serving_endpoint(self.model_id)
        self.load_ns = time.perf_counter_ns() - begun

    def _upstream(self) -> tuple[str, dict | None]:
        body = self.body
        if self.kind == "chat":
            messages = _messages(body.get("messages") or [])
            if not messages:
                return "", None
            return "/v1/chat/completions", {"messages": messages, **_sampling(body)}
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise ApplicationError("prompt must be a string", code="invalid_prompt")
        if body.get("images"):
            raise ApplicationError("this portal's models read text only; images are not supported",
                                   code="images_unsupported")
        if body.get("suffix"):
            raise ApplicationError("suffix (fill-in-the-middle) is not supported", code="suffix_unsupported")
        if not prompt:
            return "", None
        if body.get("raw"):
            return "/v1/completions", {"prompt": prompt, **_sampling(body)}
        system = body.get("system")
        messages = ([{"role": "system", "content": system}] if isinstance(system, str) and system else []) + [
            {"role": "user", "content": prompt}]
        return "/v1/chat/completions", {"messages": messages, **_sampling(body)}

    def line(self, text: str = "", *, thinking: str = "", tool_calls: list | None = None, **final) -> dict:
        line = {"model": self.name, "created_at": _now()}
        if self.kind == "chat":
            message = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            line["message"] = message
        else:
            line["response"] = text
            if thinking:
                line["thinking"] = thinking
        return {**line, "done": bool(final), **final}

    def final(self, reason: str, timings: dict, usage: dict) -> dict:
        return {"done_reason": reason, "total_duration": time.perf_counter_ns() - self.started,
                "load_duration": self.load_ns,
                # the whole prompt, as Ollama counts it; llama-server's prompt_n leaves out its cached prefix
                "prompt_eval_count": int(usage.get("prompt_tokens") or timings.get("prompt_n") or 0),
                "prompt_eval_duration": int(float(timings.get("prompt_ms") or 0) * 1e6),
                "eval_count": int(timings.get("predicted_n") or usage.get("completion_tokens") or 0),
                "eval_duration": int(float(timings.get("predicted_ms") or 0) * 1e6)}

    async def open(self) -> None:
        """Send the request to llama-server; a refusal is still an HTTP error here, before any line is sent."""
        self.response = await llm.openai_open(endpoint=self.endpoint, path=self.path,
                                              body={"model": self.model_id, **self.upstream, "stream": True,
                                                    "stream_options": {"include_usage": True}})

    async def lines(self) -> AsyncIterator[dict]:
        """Ollama's lines for llama-server's streamed answer: deltas, then one `done` line with the figures."""
        reason, timings, usage, calls = "stop", {}, {}, {}
        try:
            async for raw in llm.openai_lines(endpoint=self.endpoint, response=self.response):
                if not raw.startswith("data:") or raw[5:].strip() == "[DONE]":
                    continue
                try:
                    event = json.loads(raw[5:])
                except ValueError:
                    raise llm.upstream_unreadable(self.model_id) from None
                if isinstance(event.get("error"), dict):
                    yield {"error": llm.upstream_message(raw[5:].encode())}
                    return
                timings = event.get("timings") or timings
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or choice.get("text") or ""
                    thinking = delta.get("reasoning_content") or ""
                    for call in delta.get("tool_calls") or []:
                        _gather(calls, call)
                    if choice.get("finish_reason"):
                        reason = "length" if choice["finish_reason"] == "length" else "stop"
                    if text or thinking:
                        yield self.line(text, thinking=thinking)
        except ApplicationError as exc:
            yield {"error": exc.message}
            return
        yield self.line(tool_calls=_tool_calls(calls), **self.final(reason, timings, usage))


def _gather(calls: dict, delta: dict) -> None:
    call = calls.setdefault(delta.get("index", 0), {"name": "", "arguments": ""})
    function = delta.get("function") or {}
    call["name"] += function.get("name") or ""
    call["arguments"] += function.get("arguments") or ""


def _tool_calls(calls: dict) -> list[dict]:
    out = []
    for index in sorted(calls):
        try:
            arguments = json.loads(calls[index]["arguments"] or "{}")
        except ValueError:
            arguments = {}
        out.append({"function": {"index": index, "name": calls[index]["name"], "arguments": arguments}})
    return out


async def _answer(request: HttpRequest, kind: str) -> HttpResponse:
    turn = _Turn(request, kind=kind)
    await sync_to_async(turn.prepare, thread_sensitive=False)()
    if turn.upstream is None:  # Ollama's load and unload requests: no prompt, only the model's state changes
        reason = "load" if turn.endpoint is not None else "unload"
        return JsonResponse(turn.line(done_reason=reason))
    await turn.open()
    if turn.stream:
        return _ndjson(_encoded(turn.lines()))
    merged: dict = {}
    text, thinking = [], []
    async for line in turn.lines():
        if "error" in line:
            return ollama_error(line["error"], 502)
        part = line.get("message") or {}
        text.append(part.get("content") if kind == "chat" else line.get("response") or "")
        thinking.append(part.get("thinking") or line.get("thinking") or "")
        merged = line
    merged = {**merged}
    if kind == "chat":
        merged["message"] = {**merged["message"], "content": "".join(filter(None, text))}
        if any(thinking):
            merged["message"]["thinking"] = "".join(thinking)
    else:
        merged["response"] = "".join(filter(None, text))
        if any(thinking):
            merged["thinking"] = "".join(thinking)
    return JsonResponse(merged)


async def _encoded(lines: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield (json.dumps(line) + "\n").encode()


def _ndjson(chunks: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=NDJSON)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def chat_view(request: HttpRequest) -> HttpResponse:
    return await _answer(request, "chat")


async def generate_view(request: HttpRequest) -> HttpResponse:
    return await _answer(request, "generate")


# Embeddings: the model's own llama-server (started with --embeddings) answers them

def _embed_prepare(body: dict, key: str) -> tuple[str, llm.Endpoint, list, int]:
    texts = body.get(key)
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise ApplicationError(f"{key} must be a text or a non-empty list of texts", code="invalid_input")
    model_id = _resolve(_name(body)).id
    begun = time.perf_counter_ns()
    endpoint = serving_endpoint(model_id)
    return model_id, endpoint, texts, time.perf_counter_ns() - begun


async def _embeddings(body: dict, key: str) -> tuple[list[list[float]], dict]:
    started = time.perf_counter_ns()
    model_id, endpoint, texts, load_ns = await sync_to_async(_embed_prepare, thread_sensitive=False)(body, key)
    response = await llm.openai_open(endpoint=endpoint, path="/v1/embeddings", body={"model": model_id, "input": texts})
    data = await llm.openai_json(endpoint=endpoint, response=response)
    try:
        vectors = [row["embedding"] for row in sorted(data["data"], key=lambda row: row["index"])]
    except (KeyError, TypeError):
        raise llm.upstream_unreadable(model_id) from None
    dimensions = body.get("dimensions")
    if isinstance(dimensions, int) and 0 < dimensions:
        vectors = [vector[:dimensions] for vector in vectors]
    figures = {"total_duration": time.perf_counter_ns() - started, "load_duration": load_ns,
               "prompt_eval_count": int((data.get("usage") or {}).get("prompt_tokens") or 0)}
    return vectors, figures


async def embed_view(request: HttpRequest) -> HttpResponse:
    body = _body(request)
    vectors, figures = await _embeddings(body, "input")
    return JsonResponse({"model": _name(body), "embeddings": vectors, **figures})


async def embeddings_view(request: HttpRequest) -> HttpResponse:
    """The older `/api/embeddings` (one `prompt`, one `embedding`) that some clients still call."""
    vectors, _figures = await _embeddings(_body(request), "prompt")
    return JsonResponse({"embedding": vectors[0]})


# Pull: the portal's Hub download, its progress as Ollama prints it

def _pull_start(request: HttpRequest) -> str:
    name = _name(_body(request))
    user = request.api_user
    return download_start(url=name, requested_by=getattr(user, "username", "")).id


async def _progress(model_id: str) -> AsyncIterator[dict]:
    yield {"status": "pulling manifest"}
    last = None
    while True:
        model = await sync_to_async(model_list().filter(pk=model_id).first)()
        if model is None:
            yield {"error": f"the download of {model_id} was cancelled (the model was deleted)"}
            return
        if model.status == Status.ERROR:
            yield {"error": model.error or f"the download of {model_id} failed"}
            return
        done = model.is_available or model.status == Status.VERIFYING
        completed = model.size if done else min(model.downloaded_bytes, model.size)
        if completed != last:
            last = completed
            yield {"status": f"pulling {model.sha256[:12] or model_id}", "digest": f"sha256:{model.sha256}",
                   "total": model.size, "completed": completed}
        if done:
            yield {"status": "verifying sha256 digest"}
            while not model.is_available:
                await asyncio.sleep(PULL_POLL_SECONDS)
                model = await sync_to_async(model_list().filter(pk=model_id).first)()
                if model is None or model.status == Status.ERROR:
                    yield {"error": (model.error if model else "") or f"verifying {model_id} failed"}
                    return
            yield {"status": "writing manifest"}
            yield {"status": "success"}
            return
        await asyncio.sleep(PULL_POLL_SECONDS)


async def pull_view(request: HttpRequest) -> HttpResponse:
    stream = _body(request).get("stream", True) is not False
    model_id = await sync_to_async(_pull_start, thread_sensitive=False)(request)
    if stream:
        return _ndjson(_encoded(_progress(model_id)))
    last: dict = {}
    async for line in _progress(model_id):
        last = line
    if "error" in last:
        return ollama_error(last["error"], 500)
    return JsonResponse(last)


urlpatterns = [
    path("version", _only("GET", version_view), name="ollama-version"),
    path("tags", _guarded(_only("GET", tags_view)), name="ollama-tags"),
    path("ps", _guarded(_only("GET", ps_view)), name="ollama-ps"),
    path("show", _guarded(_only("POST", show_view)), name="ollama-show"),
    path("chat", _guarded(_only("POST", chat_view)), name="ollama-chat"),
    path("generate", _guarded(_only("POST", generate_view)), name="ollama-generate"),
    path("embed", _guarded(_only("POST", embed_view)), name="ollama-embed"),
    path("embeddings", _guarded(_only("POST", embeddings_view)), name="ollama-embeddings"),
    path("pull", _guarded(_only("POST", pull_view)), name="ollama-pull"),
    path("delete", _guarded(_only("DELETE", delete_view)), name="ollama-delete"),
]
