"""The OpenAI-compatible API (SPEC §5): `/v1/models`, `/v1/chat/completions`, `/v1/completions` and
`/v1/embeddings`, Bearer token auth.

Async views, so a stream is relayed chunk by chunk from llama-server to the client without
buffering. A ready model that is not served is started on demand and waited for.
"""
from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from aiportal.auth import BearerAuthentication
from aiportal.errors import ApplicationError, Conflict
from chat import llm
from models_app.inference.services import serve_ensure
from models_app.selectors import model_list

ON_DEMAND_TIMEOUT = 180.0


def openai_error(message: str, *, status: int, code: str, kind: str = "invalid_request_error") -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status)


def _from_application_error(exc: ApplicationError) -> JsonResponse:
    kind = "server_error" if exc.status >= 500 else "invalid_request_error"
    return openai_error(exc.message, status=exc.status, code=exc.code, kind=kind)


def bearer_user(request: HttpRequest):
    """The user of the request's `Authorization: Bearer <api token>` (the OpenAI and Ollama front doors)."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <api token>`.")
    user, _token = BearerAuthentication().authenticate_credentials(key.strip())
    return user


async def _guard(request: HttpRequest) -> JsonResponse | None:
    try:
        await sync_to_async(bearer_user)(request)
    except AuthenticationFailed as exc:
        return openai_error(str(exc.detail), status=401, code="invalid_api_key")
    return None


def _model_rows() -> list[dict]:
    return [
        {"id": m.id, "object": "model", "created": int(m.created_at.timestamp()), "owned_by": m.source,
         "status": m.status}
        for m in model_list() if m.is_available
    ]


async def models_view(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return openai_error("Use GET.", status=405, code="method_not_allowed")
    if (denied := await _guard(request)) is not None:
        return denied
    return JsonResponse({"object": "list", "data": await sync_to_async(_model_rows)()})


def _parse(request: HttpRequest, *, kind: str = "chat") -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ApplicationError("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApplicationError("The body must be a JSON object.", code="invalid_json")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApplicationError("`model` is required: a model id from /v1/models.", code="missing_model")
    if kind == "embedding":
        texts = body.get("input")
        if not (isinstance(texts, str) and texts or isinstance(texts, list) and texts
                and all(isinstance(t, (str, int)) or isinstance(t, list) for t in texts)):
            raise ApplicationError("`input` is required: a text, a list of texts, or token ids.", code="invalid_input")
        return body
    if kind == "completion":
        prompt = body.get("prompt")
        if not (isinstance(prompt, str) or isinstance(prompt, list) and prompt
                and all(isinstance(p, (str, int)) or isinstance(p, list) for p in prompt)):
            raise ApplicationError("`prompt` is required: a text, a list of texts, or token ids.",
                                   code="invalid_prompt")
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ApplicationError("`messages` must be a non-empty list of {role, content} objects.", code="invalid_messages")
    return body


def serving_endpoint(model_id: str) -> llm.Endpoint:
    try:
        return llm.model_endpoint(model_id=model_id)
    except Conflict:
        serve_ensure(model_id=model_id, timeout=ON_DEMAND_TIMEOUT)
        return llm.model_endpoint(model_id=model_id)


def _authorized_request(request: HttpRequest, kind: str) -> tuple[dict, llm.Endpoint]:
    """Auth, body and the model's llama-server in one trip to a worker thread (time to first token)."""
    bearer_user(request)
    body = _parse(request, kind=kind)
    return body, serving_endpoint(body["model"])


@csrf_exempt
async def chat_completions_view(request: HttpRequest) -> HttpResponse:
    return await _relay(request, kind="chat", path="/v1/chat/completions")


@csrf_exempt
async def completions_view(request: HttpRequest) -> HttpResponse:
    return await _relay(request, kind="completion", path="/v1/completions")


@csrf_exempt
async def embeddings_view(request: HttpRequest) -> HttpResponse:
    return await _relay(request, kind="embedding", path="/v1/embeddings")


async def _relay(request: HttpRequest, *, kind: str, path: str) -> HttpResponse:
    """The request as the client sent it to the model's llama-server, and its answer (or stream) back."""
    if request.method != "POST":
        return openai_error("Use POST.", status=405, code="method_not_allowed")
    try:
        body, endpoint = await sync_to_async(_authorized_request, thread_sensitive=False)(request, kind)
        upstream = await llm.openai_open(endpoint=endpoint, body=body, path=path)
        if body.get("stream") and kind != "embedding":
            return _event_stream(llm.openai_relay(endpoint=endpoint, response=upstream))
        return JsonResponse(await llm.openai_json(endpoint=endpoint, response=upstream))
    except AuthenticationFailed as exc:
        return openai_error(str(exc.detail), status=401, code="invalid_api_key")
    except ApplicationError as exc:
        return _from_application_error(exc)


def _event_stream(chunks) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def model_view(request: HttpRequest, model_id: str) -> HttpResponse:
    if (denied := await _guard(request)) is not None:
        return denied
    rows = [row for row in await sync_to_async(_model_rows)() if row["id"] == model_id]
    if not rows:
        return openai_error(f"No model with id {model_id!r}.", status=404, code="model_not_found")
    return JsonResponse(rows[0])


async def not_found_view(request: HttpRequest, rest: str = "") -> HttpResponse:
    return openai_error(f"No OpenAI-compatible endpoint at {request.path}.", status=404, code="not_found")


urlpatterns = [
    path("models", csrf_exempt(models_view), name="openai-models"),
    path("models/<str:model_id>", model_view, name="openai-model"),
    path("chat/completions", chat_completions_view, name="openai-chat-completions"),
    path("completions", completions_view, name="openai-completions"),
    path("embeddings", embeddings_view, name="openai-embeddings"),
    re_path(r"^(?P<rest>.*)$", csrf_exempt(not_found_view)),
]
