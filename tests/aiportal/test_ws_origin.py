from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from aiportal.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def cookie(admin_user) -> bytes:
    client = Client()
    client.force_login(admin_user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(origin: bytes | None, cookie: bytes) -> bool:
    headers = [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/models/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


async def test_it_refuses_a_logged_in_socket_opened_from_another_site(cookie):
    assert await connect(b"http://evil.example", cookie) is False


async def test_it_refuses_the_same_host_on_another_port(cookie):
    assert await connect(b"http://127.0.0.1:9999", cookie) is False


async def test_it_accepts_a_socket_from_the_portals_own_pages(cookie):
    assert await connect(b"http://127.0.0.1:8000", cookie) is True


async def test_it_accepts_a_trusted_proxy_origin(cookie, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.org"]
    assert await connect(b"https://portal.example.org", cookie) is True
