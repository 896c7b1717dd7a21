from __future__ import annotations

import threading

import httpx
import openai
import pytest
from django.db import connection
from django.test import AsyncClient

from models_app.inference.engine import LlamaEngine
from models_app.models import AIModel
from models_app.services import model_import_local
from tests.models_app.inference.helpers import FAKE_SERVER, write_tiny_gguf
from tests.models_app.inference.portal import (
    TOKEN,
    Portal,
    portal_acquire,
    portal_release,
)

PARIS = [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def portal(tmp_path_factory, demo_gguf) -> Portal:
    yield portal_acquire(tmp_path_factory, demo_gguf)
    portal_release()


@pytest.fixture(scope="module")
def client(portal) -> openai.OpenAI:
    portal.api("POST", "/api/ai/serve", json={"modelId": "demo-a"})
    portal.wait_status("demo-a", "serving")
    return openai.OpenAI(base_url=f"{portal.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def test_it_lists_the_models_for_an_openai_client(client):
    ids = [model.id for model in client.models.list()]

    assert {"demo-a", "demo-b", "demo-c"} <= set(ids)


def test_it_answers_a_chat_completion_with_usage(client):
    completion = client.chat.completions.create(model="demo-a", messages=PARIS, temperature=0, max_tokens=32)

    assert "Paris" in completion.choices[0].message.content
    assert completion.model == "demo-a"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


def test_it_streams_a_chat_completion_token_by_token(client):
    stream = client.chat.completions.create(model="demo-a", messages=PARIS, temperature=0, max_tokens=24, stream=True)

    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]

    assert len(pieces) > 5
    assert "Paris" in "".join(pieces)


def test_it_starts_a_ready_model_on_demand(client, portal):
    assert portal.model("demo-c")["status"] == "ready"

    completion = client.chat.completions.create(model="demo-c", messages=PARIS, max_tokens=8)

    assert completion.choices[0].message.content.strip()
    assert portal.model("demo-c")["status"] == "serving"
    portal.api("DELETE", "/api/ai/serve", params={"modelId": "demo-c"})
    portal.wait_status("demo-c", "ready")


def test_it_rejects_a_wrong_api_key_with_401(portal):
    wrong = openai.OpenAI(base_url=f"{portal.url}/v1", api_key="not-the-token", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()

    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"


def test_it_answers_404_for_an_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=PARIS)

    assert caught.value.body["message"] == "No model with id 'no-such-model'."


def test_it_answers_400_for_a_request_without_messages(portal):
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"model": "demo-a"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_messages"


def test_it_answers_404_in_openai_shape_for_an_unknown_v1_path(portal):
    response = httpx.get(f"{portal.url}/v1/embeddings-nope", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# Faults, in-process: the real views and engine against the fake llama-server.

@pytest.fixture
def fake_node(transactional_db, settings, tmp_path):
    """A tiny model and the llama engine stepping in a thread, as the node daemon would."""
    settings.LLAMA_SERVER_BIN = str(FAKE_SERVER)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    model_import_local(path=write_tiny_gguf(tmp_path / "tiny.gguf"), model_id="tiny")
    engine, stop = LlamaEngine(node_name=settings.NODE_NAME), threading.Event()

    def run():
        engine.start()
        while not stop.wait(0.02):
            engine.step()
        engine.stop()
        connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    yield engine
    stop.set()
    thread.join(30)


async def ask(api_token: str, *, stream: bool = False):
    return await AsyncClient().post("/v1/chat/completions", {"model": "tiny", "messages": PARIS, "stream": stream},
                                    content_type="application/json", headers={"Authorization": f"Bearer {api_token}"})


async def status_of(model_id: str) -> str:
    return (await AIModel.objects.aget(pk=model_id)).status


async def test_it_relays_the_stream_of_an_on_demand_started_model(fake_node, api_token):
    response = await ask(api_token, stream=True)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = b"".join([chunk async for chunk in response.streaming_content]).decode().split("\n\n")
    assert events[0].startswith('data: {"object": "chat.completion.chunk"')
    assert events[-2] == "data: [DONE]"
    assert await status_of("tiny") == "serving"


async def test_it_answers_502_with_the_log_when_an_on_demand_start_crashes(fake_node, api_token, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_CRASH_AT_LOAD", "1")

    response = await ask(api_token)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "serve_failed"
    assert "failed to load model" in response.json()["error"]["message"]
    assert await status_of("tiny") == "error"


async def test_it_answers_502_when_llama_server_sends_garbage(fake_node, api_token, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_GARBAGE", "1")

    response = await ask(api_token)

    assert response.status_code == 502
    assert response.json()["error"] == {"message": "llama-server for tiny sent an answer that is not valid OpenAI JSON.",
                                        "type": "server_error", "param": None, "code": "llama_server_garbage"}


async def test_it_answers_502_when_llama_server_dies_as_the_chat_arrives(fake_node, api_token, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_DIE_ON_CHAT", "1")

    response = await ask(api_token, stream=True)

    assert response.status_code == 502
    assert "llama-server for tiny is not answering" in response.json()["error"]["message"]
