"""The OpenAI and Ollama doors (and /healthz) go through a Django handler with only the middleware they
use (aiportal/doors.py); pages and the REST API keep the full stack."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator

from aiportal.asgi import application
from aiportal.doors import is_door
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db(transaction=True)


async def _get(path: str, token: str = "") -> tuple[int, dict[str, str]]:
    headers = [(b"host", b"localhost")] + ([(b"authorization", f"Bearer {token}".encode())] if token else [])
    response = await HttpCommunicator(application, "GET", path, headers=headers).get_response(timeout=20)
    return response["status"], {name.decode().lower(): value.decode() for name, value in response["headers"]}


def test_only_the_token_doors_and_healthz_take_the_lean_stack():
    assert [path for path in ("/v1/models", "/v1/chat/completions", "/api/tags", "/api/chat", "/healthz",
                              "/api/ai/list", "/api/schema/", "/metrics", "/", "/chat/send/", "/telegram/webhook/",
                              "/admin/") if is_door(path)] == ["/v1/models", "/v1/chat/completions", "/api/tags",
                                                               "/api/chat", "/healthz"]


async def test_a_door_answers_without_the_page_middleware_but_with_its_security_headers(admin_user):
    token = (await sync_to_async(Token.objects.create)(user=admin_user)).key

    status, headers = await _get("/v1/models", token)
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin"
    assert headers["x-request-id"]
    assert "x-frame-options" not in headers and "set-cookie" not in headers

    status, headers = await _get("/v1/models")
    assert status == 401 and headers["x-content-type-options"] == "nosniff"
    status, headers = await _get("/api/version")
    assert status == 200 and "x-frame-options" not in headers


async def test_pages_and_the_rest_api_keep_the_full_stack(admin_user):
    token = (await sync_to_async(Token.objects.create)(user=admin_user)).key
    status, headers = await _get("/login/")
    assert status == 200 and headers["x-frame-options"] == "DENY" and "csrftoken" in headers.get("set-cookie", "")
    status, headers = await _get("/api/ai/list", token)
    assert status == 200 and headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
