"""The official `ollama` client against the portal (SPEC §5): the real llama-server behind Ollama's API."""
from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.models_app.inference.portal import PARIS, TOKEN

MODEL = "demo-a"


@pytest.fixture(scope="module")
def client(llama_portal) -> ollama.Client:
    return ollama.Client(host=llama_portal.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


def test_it_tells_its_ollama_version_without_a_key(llama_portal):
    response = httpx.get(f"{llama_portal.url}/api/version")

    assert response.status_code == 200
    assert response.json()["version"].count(".") == 2


def test_it_lists_the_models_as_ollama_tags(client):
    listed = {model.model: model for model in client.list().models}

    assert {"demo-a", "demo-b", "demo-c"} <= set(listed)
    demo = listed[MODEL]
    assert demo.size > 90_000_000
    assert demo.details.format == "gguf"
    assert demo.details.family == "llama"
    assert demo.details.quantization_level == "Q4_1"
    assert demo.details.parameter_size == "135M"


def test_it_shows_a_model_with_its_gguf_facts(client):
    shown = client.show(f"{MODEL}:latest")

    assert shown.details.family == "llama"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelinfo["general.parameter_count"] > 100_000_000
    assert "completion" in shown.capabilities


def test_it_chats_and_reports_ollama_figures(client):
    answer = client.chat(model=MODEL, messages=PARIS, options={"num_predict": 16, "temperature": 0, "seed": 1})

    assert answer.done is True
    assert answer.message.role == "assistant"
    assert "Paris" in answer.message.content
    assert answer.eval_count and 0 < answer.eval_count <= 16
    assert answer.prompt_eval_count > 10
    assert answer.eval_duration > 0 and answer.total_duration >= answer.eval_duration


def test_it_stops_at_num_predict_with_done_reason_length(client):
    answer = client.chat(model=MODEL, messages=[{"role": "user", "content": "Write a long story about a dragon."}],
                         options={"num_predict": 5, "temperature": 0})

    assert answer.done_reason == "length"
    assert answer.eval_count == 5


def test_it_streams_a_chat_as_ndjson_lines(client):
    parts = list(client.chat(model=MODEL, messages=PARIS, stream=True, options={"num_predict": 24, "temperature": 0}))

    assert len(parts) > 3
    assert all(part.done is False for part in parts[:-1])
    assert parts[-1].done is True and parts[-1].done_reason in {"stop", "length"}
    assert "Paris" in "".join(part.message.content for part in parts)
    # llama-server sends a token per event (a few merge where a character spans tokens), never fewer tokens
    assert parts[-1].eval_count >= sum(1 for part in parts[:-1] if part.message.content)


def test_it_answers_in_the_json_schema_the_format_gives(client):
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 24}}, "required": ["capital"]}
    answer = client.chat(model=MODEL, format=schema, options={"num_predict": 64, "temperature": 0},
                         messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}])

    assert set(json.loads(answer.message.content)) == {"capital"}


def test_it_generates_from_a_prompt_plain_and_streamed(client):
    system = PARIS[0]["content"]
    plain = client.generate(model=MODEL, prompt="What is the capital of France?", system=system,
                            options={"num_predict": 16, "temperature": 0})
    streamed = list(client.generate(model=MODEL, prompt="What is the capital of France?", system=system, stream=True,
                                    options={"num_predict": 16, "temperature": 0}))

    assert plain.done and "Paris" in plain.response
    assert streamed[-1].done and len(streamed) > 2
    assert "Paris" in "".join(part.response for part in streamed)


def test_it_continues_a_raw_prompt_without_the_chat_template(client):
    answer = client.generate(model=MODEL, prompt="The capital of France is", raw=True,
                             options={"num_predict": 4, "temperature": 0})

    assert answer.done and answer.response.strip()


def test_it_embeds_one_or_several_texts(client):
    several = client.embed(model=MODEL, input=["The capital of France is Paris.", "Bananas are yellow."])
    one = client.embed(model=MODEL, input="The capital of France is Paris.")
    short = client.embed(model=MODEL, input="Bananas are yellow.", dimensions=64)

    first, second = several.embeddings
    assert len(first) == len(second) == 576 and first != second
    assert one.embeddings[0] == pytest.approx(first, abs=1e-4)
    assert len(short.embeddings[0]) == 64
    assert several.prompt_eval_count > 0 and several.total_duration > 0


def test_it_embeds_through_the_older_embeddings_endpoint(client):
    assert len(client.embeddings(model=MODEL, prompt="Bananas are yellow.").embedding) == 576


def test_it_loads_and_unloads_a_model_as_ollama_does(client, llama_portal):
    assert llama_portal.model("demo-c")["status"] == "ready"

    loaded = client.generate(model="demo-c")
    running = {model.model: model for model in client.ps().models}
    unloaded = client.generate(model="demo-c", keep_alive=0)

    assert loaded.done_reason == "load"
    assert running["demo-c"].context_length == 1024
    assert unloaded.done_reason == "unload"
    llama_portal.wait_status("demo-c", "ready")
    assert "demo-c" not in {model.model for model in client.ps().models}


def test_it_raises_response_error_404_for_an_unknown_model(client):
    with pytest.raises(ollama.ResponseError) as chat_error:
        client.chat(model="no-such-model", messages=PARIS)
    with pytest.raises(ollama.ResponseError) as show_error:
        client.show("no-such-model")

    assert chat_error.value.status_code == 404
    assert chat_error.value.error == "model 'no-such-model' not found"
    assert show_error.value.status_code == 404


def test_it_raises_response_error_401_without_the_bearer_token(llama_portal):
    stranger = ollama.Client(host=llama_portal.url, headers={"Authorization": "Bearer wrong-token"})

    with pytest.raises(ollama.ResponseError) as error:
        stranger.list()

    assert error.value.status_code == 401
    assert "unauthorized" in error.value.error


def test_it_refuses_images_with_a_clear_400(client):
    with pytest.raises(ollama.ResponseError) as error:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "What is this?", "images": ["aGVsbG8="]}])

    assert error.value.status_code == 400
    assert "images are not supported" in error.value.error


def test_it_answers_a_wrong_method_and_bad_json_in_ollama_shape(llama_portal):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wrong_method = httpx.get(f"{llama_portal.url}/api/chat", headers=headers)
    bad_json = httpx.post(f"{llama_portal.url}/api/chat", headers=headers, content=b"{not json")

    assert wrong_method.status_code == 405 and "use POST" in wrong_method.json()["error"]
    assert bad_json.status_code == 400 and bad_json.json() == {"error": "The body is not valid JSON."}
