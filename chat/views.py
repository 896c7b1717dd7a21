"""Web chat: pick a served model, talk to it with the answer streaming in, keep past sessions.

The answer streams as server-sent events over a POST (read by fetch in static/js/chat.js):
`event: session` (the session id), `data: {"delta": …}` per piece, then `event: done`, or
`event: error` with a message for a person.
"""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from aiportal.errors import ApplicationError
from chat.models import ChatSession
from chat.selectors import session_search, session_turns
from chat.services import session_clear, session_for_web_user, session_send
from models_app.models import ServeState, Status
from models_app.selectors import model_list

SESSIONS_SHOWN = 30
SEARCH_MAX = 200
log = logging.getLogger(__name__)


@login_required
@require_GET
def chat_view(request: HttpRequest) -> HttpResponse:
    wanted = request.GET.get("model", "")
    session = None if request.GET.get("new") else session_for_web_user(user=request.user)
    if session is not None and wanted and session.model_id != wanted:
        session = None
    return _page(request, session, wanted or (session.model_id if session else ""))


@login_required
@require_GET
def chat_session_view(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _own_session(request, session_id)
    return _page(request, session, session.model_id or "")


@login_required
@require_POST
def chat_send_view(request: HttpRequest) -> HttpResponse:
    model_id, text = request.POST.get("model", ""), request.POST.get("message", "")
    try:
        session = _session_for_send(request, model_id)
        if session is None:
            session = session_for_web_user(user=request.user, model_id=model_id)
        deltas = session_send(session=session, text=text, replace_last=request.POST.get("replace") == "last")
    except ApplicationError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=exc.status)
    response = StreamingHttpResponse(_sse(session.pk, deltas), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
@require_POST
def chat_clear_view(request: HttpRequest, session_id: int) -> HttpResponse:
    session_clear(session=_own_session(request, session_id))
    return redirect("chat")


def _session_for_send(request: HttpRequest, model_id: str) -> ChatSession | None:
    """The session the page shows, when it still talks to the chosen model."""
    if not model_id:
        raise ApplicationError("Pick a model to chat with.", code="no_model")
    raw = request.POST.get("session", "")
    if not raw.isdigit():
        return None
    session = _own_session(request, int(raw))
    return session if session.model_id == model_id else None


def _own_session(request: HttpRequest, session_id: int) -> ChatSession:
    session = ChatSession.objects.select_related("model").filter(pk=session_id, user=request.user).first()
    if session is None:
        raise Http404("No such chat.")
    return session


def _page(request: HttpRequest, session: ChatSession | None, model_id: str) -> HttpResponse:
    served = [model for model in model_list().filter(instances__state=ServeState.SERVING).distinct()
              if model.status == Status.SERVING]
    query = request.GET.get("q", "").strip()[:SEARCH_MAX]
    context = {
        "session": session,
        "turns": session_turns(session=session) if session else [],
        "served": served,
        "chosen": model_id or (served[0].pk if served else ""),
        "sessions": session_search(user=request.user, query=query, limit=SESSIONS_SHOWN),
        "query": query,
        "expired": bool(session and getattr(session, "was_expired", False)),
    }
    return render(request, "chat/chat.html", context)


def _event(data: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


async def _sse(session_id: int, deltas: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """The answer as server-sent events, on the event loop; an answer cut off by the page (Stop, leaving)
    is saved as far as it was handed to the page (chat.services._stream)."""
    yield _event({"id": session_id}, "session")
    async with aclosing(deltas):
        try:
            async for delta in deltas:
                yield _event({"delta": delta})
        except ApplicationError as exc:
            yield _event({"code": exc.code, "message": exc.message}, "error")
            return
        except Exception:  # the page must learn the answer ended, whatever broke
            log.exception("web chat stream failed")
            yield _event({"code": "chat_failed", "message": "The model stopped answering. Try again."}, "error")
            return
    yield _event({}, "done")
