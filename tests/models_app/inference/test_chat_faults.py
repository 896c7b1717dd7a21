from __future__ import annotations

import pytest

from aiportal.errors import Upstream
from chat import llm
from models_app.models import AIModel
from tests.models_app.inference.helpers import drive, serve_failed
from tests.streams import stream_read

QUESTION = {"modelId": "tiny", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def serve(api, engine) -> None:
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")
    drive(engine, lambda: AIModel.objects.get(pk="tiny").status == "serving", what="serving")


def test_it_answers_a_chat_with_content_and_usage(api, fake_llama, tiny_model, engine):
    serve(api, engine)

    response = api.post("/api/ai/chat", QUESTION, format="json")

    assert response.status_code == 200
    assert response.json()["result"] == {"content": "Paris is the capital of France.",
                                         "usage": {"promptTokens": 9, "completionTokens": 7, "totalTokens": 16}}


def test_it_streams_text_deltas_and_counts_tokens(fake_llama, tiny_model, engine, api):
    serve(api, engine)

    deltas = stream_read(llm.chat_stream(model_id="tiny", messages=QUESTION["messages"], max_tokens=16, temperature=0))

    assert deltas == ["Paris", " is", " the", " capital", " of", " France", "."]
    assert llm.count_tokens(model_id="tiny", text="one two three") == 3


def test_it_answers_502_when_llama_server_sends_garbage(api, fake_llama, tiny_model, engine, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_GARBAGE", "1")
    serve(api, engine)

    response = api.post("/api/ai/chat", QUESTION, format="json")

    assert response.status_code == 502
    assert response.json()["error"] == {"code": "llama_server_garbage",
                                        "message": "llama-server for tiny sent an answer that is not valid OpenAI JSON."}
    assert AIModel.objects.get(pk="tiny").status == "serving"


def test_it_answers_502_and_shows_the_crash_when_llama_server_dies_mid_chat(api, fake_llama, tiny_model, engine,
                                                                             monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_DIE_ON_CHAT", "1")
    serve(api, engine)

    response = api.post("/api/ai/chat", QUESTION, format="json")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "llama_server_down"
    assert "llama-server for tiny is not answering" in response.json()["error"]["message"]
    drive(engine, lambda: serve_failed("tiny"), what="crash noticed")
    assert "simulated crash in the middle of a chat" in AIModel.objects.get(pk="tiny").error


def test_it_raises_upstream_from_a_stream_whose_server_died(fake_llama, tiny_model, engine, api, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_DIE_ON_CHAT", "1")
    serve(api, engine)

    with pytest.raises(Upstream, match="llama-server for tiny is not answering"):
        stream_read(llm.chat_stream(model_id="tiny", messages=QUESTION["messages"]))


def test_it_raises_upstream_when_the_server_dies_in_the_middle_of_a_stream(fake_llama, tiny_model, engine, api,
                                                                           monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_DIE_MID_STREAM", "1")
    serve(api, engine)
    received = []

    with pytest.raises(Upstream, match="llama-server for tiny is not answering"):
        stream_read(llm.chat_stream(model_id="tiny", messages=QUESTION["messages"]), into=received)

    assert received == ["Paris", " is", " the"]
