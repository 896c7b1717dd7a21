from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from aiportal.asgi import application
from models_app import services
from tests.web.portal import tiny_gguf

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_layer")]


@pytest.fixture
def session_cookie(admin_user) -> bytes:
    client = Client()
    client.force_login(admin_user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def gguf_file(tmp_path):
    return tiny_gguf(tmp_path / "tiny.gguf", name="Tiny", megabytes=1)


def socket(cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/models/", headers=headers)


async def test_it_refuses_a_socket_without_a_login():
    communicator = socket()
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4401)


async def test_it_sends_a_new_model_to_a_logged_in_page(session_cookie, gguf_file):
    communicator = socket(session_cookie)
    connected, _ = await communicator.connect()
    model = await sync_to_async(services.model_import_local)(path=gguf_file, model_id="tiny")
    event = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert connected
    assert event["type"] == "model.update"
    assert (event["model"]["id"], event["model"]["status"], event["model"]["size"]) == ("tiny", "ready", model.size)


async def test_it_tells_the_page_when_a_model_is_removed(session_cookie, gguf_file):
    await sync_to_async(services.model_import_local)(path=gguf_file, model_id="tiny")
    communicator = socket(session_cookie)
    await communicator.connect()
    await sync_to_async(services.model_delete)(model_id="tiny")
    event = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert event == {"type": "model.removed", "id": "tiny"}


async def test_it_answers_a_ping_and_ignores_other_messages(session_cookie):
    communicator = socket(session_cookie)
    await communicator.connect()
    await communicator.send_json_to({"type": "hello"})
    await communicator.send_json_to({"type": "ping"})
    reply = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert reply == {"type": "pong"}


async def test_it_keeps_an_idle_socket_open_through_the_redis_layer_and_then_delivers(session_cookie, gguf_file):
    communicator = socket(session_cookie)
    connected, _ = await communicator.connect()
    assert connected
    # Longer than redis-py's default read timeout and the layer's blocking pop put together.
    assert await communicator.receive_nothing(timeout=20, interval=0.5)

    await sync_to_async(services.model_import_local)(path=gguf_file, model_id="tiny")
    event = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert (event["type"], event["model"]["id"]) == ("model.update", "tiny")
