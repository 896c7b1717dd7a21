from __future__ import annotations

import httpx
import openai
import pytest

from tests.models_app.inference.helpers import FAKE_SERVER, write_tiny_gguf
from tests.models_app.inference.portal import PARIS, TOKEN, Portal


@pytest.fixture(scope="module")
def client(llama_portal) -> openai.OpenAI:
    llama_portal.api("POST", "/api/ai/serve", json={"modelId": "demo-a"})
    llama_portal.wait_status("demo-a", "serving")
    return openai.OpenAI(base_url=f"{llama_portal.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def test_it_lists_the_models_for_an_openai_client(client):
    ids = [model.id for model in client.models.list()]

    assert {"demo-a", "demo-b", "demo-c"} <= set(ids)


def test_it_answers_a_chat_completion_with_usage(client):
    completion = client.chat.completions.create(model="demo-a", messages=PARIS, temperature=0, max_tokens=32)

    assert "Paris" in completion.choices[0].message.content
    assert completion.model == "demo-a"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


def test_it_answers_a_plain_completion(client):
    completion = client.completions.create(model="demo-a", prompt="The capital of France is", temperature=0,
                                           max_tokens=8)

    assert "Paris" in completion.choices[0].text
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


def test_it_streams_a_plain_completion(client):
    stream = client.completions.create(model="demo-a", prompt="The capital of France is", temperature=0,
                                       max_tokens=8, stream=True)

    pieces = [chunk.choices[0].text for chunk in stream if chunk.choices and chunk.choices[0].text]

    assert len(pieces) > 1 and "Paris" in "".join(pieces)


def test_it_refuses_a_completion_without_a_prompt_as_openai_does(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model="demo-a", prompt=None)

    assert raised.value.code == "invalid_prompt"


def test_it_embeds_texts_with_the_served_model(client):
    result = client.embeddings.create(model="demo-a", input=["The capital of France is Paris.", "Bananas are yellow."])
    again = client.embeddings.create(model="demo-a", input="The capital of France is Paris.")

    first, second = (row.embedding for row in result.data)
    assert [row.index for row in result.data] == [0, 1]
    assert len(first) == len(second) == 576  # SmolLM2-135M's embedding length
    assert first != second
    assert again.data[0].embedding == pytest.approx(first, abs=1e-4)
    assert result.usage.prompt_tokens > 0


def test_it_refuses_embeddings_without_input_as_openai_does(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="demo-a", input=[])

    assert raised.value.code == "invalid_input"


def test_it_streams_a_chat_completion_token_by_token(client):
    stream = client.chat.completions.create(model="demo-a", messages=PARIS, temperature=0, max_tokens=24, stream=True)

    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]

    assert len(pieces) > 5
    assert "Paris" in "".join(pieces)


def test_it_starts_a_ready_model_on_demand(client, llama_portal):
    assert llama_portal.model("demo-c")["status"] == "ready"

    completion = client.chat.completions.create(model="demo-c", messages=PARIS, max_tokens=8)

    assert completion.choices[0].message.content.strip()
    assert llama_portal.model("demo-c")["status"] == "serving"
    llama_portal.api("DELETE", "/api/ai/serve", params={"modelId": "demo-c"})
    llama_portal.wait_status("demo-c", "ready")


def test_it_rejects_a_wrong_api_key_with_401(llama_portal):
    wrong = openai.OpenAI(base_url=f"{llama_portal.url}/v1", api_key="not-the-token", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()

    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"


def test_it_answers_404_for_an_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=PARIS)

    assert caught.value.body["message"] == "No model with id 'no-such-model'."


def test_it_answers_400_for_a_request_without_messages(llama_portal):
    response = httpx.post(f"{llama_portal.url}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"model": "demo-a"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_messages"


def test_it_answers_404_in_openai_shape_for_an_unknown_v1_path(llama_portal):
    response = httpx.get(f"{llama_portal.url}/v1/embeddings-nope", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# Faults: a second portal whose node daemon runs the fake llama-server, one model per failure.

@pytest.fixture(scope="module")
def fake_portal(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fake-portal")
    flags = workdir / "fake-flags"
    portal = Portal(workdir, write_tiny_gguf(workdir / "tiny.gguf"), model_ids=("t-ok", "t-crash", "t-junk", "t-die", "t-cut"),
                    env={"LLAMA_SERVER_BIN": str(FAKE_SERVER), "FAKE_LLAMA_FLAGS_FILE": str(flags),
                         "LLAMA_EMBEDDINGS": "off"})
    portal.flags = flags
    yield portal.start()
    portal.stop()


def ask(portal: Portal, model_id: str, flags: str = "", **extra) -> httpx.Response:
    portal.flags.write_text(flags)
    return httpx.post(f"{portal.url}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"model": model_id, "messages": PARIS, **extra}, timeout=120)


def test_it_relays_the_stream_of_an_on_demand_started_model(fake_portal):
    response = ask(fake_portal, "t-ok", stream=True)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = response.text.split("\n\n")
    assert events[0].startswith('data: {"object": "chat.completion.chunk"')
    assert events[-2] == "data: [DONE]"
    assert fake_portal.model("t-ok")["status"] == "serving"


def test_it_answers_502_with_the_log_when_an_on_demand_start_crashes(fake_portal):
    response = ask(fake_portal, "t-crash", "FAKE_LLAMA_CRASH_AT_LOAD=1")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "serve_failed"
    assert "failed to load model" in response.json()["error"]["message"]
    shown = fake_portal.model("t-crash")
    assert (shown["status"], shown["instances"][0]["status"]) == ("ready", "error")


def test_it_says_why_a_llama_server_without_embeddings_cannot_embed(fake_portal):
    response = httpx.post(f"{fake_portal.url}/v1/embeddings", headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"model": "t-ok", "input": "hello"}, timeout=120)

    assert response.status_code == 501
    error = response.json()["error"]
    assert error["code"] == "not_supported"
    assert "does not support embeddings" in error["message"] and "LLAMA_EMBEDDINGS" in error["message"]


def test_it_answers_502_when_llama_server_sends_garbage(fake_portal):
    response = ask(fake_portal, "t-junk", "FAKE_LLAMA_GARBAGE=1")

    assert response.status_code == 502
    assert response.json()["error"] == {"message": "llama-server for t-junk sent an answer that is not valid OpenAI JSON.",
                                        "type": "server_error", "param": None, "code": "llama_server_garbage"}


def test_it_answers_502_when_llama_server_dies_as_the_chat_arrives(fake_portal):
    response = ask(fake_portal, "t-die", "FAKE_LLAMA_DIE_ON_CHAT=1", stream=True)

    assert response.status_code == 502
    assert "llama-server for t-die is not answering" in response.json()["error"]["message"]
    died = fake_portal.wait(lambda: (m := fake_portal.model("t-die"))["instances"][0]["status"] == "error" and m,
                            "crash noticed")
    assert "simulated crash in the middle of a chat" in died["instances"][0]["error"]


def test_it_ends_a_stream_with_an_error_event_when_llama_server_dies_mid_answer(fake_portal):
    response = ask(fake_portal, "t-cut", "FAKE_LLAMA_DIE_MID_STREAM=1", stream=True)

    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert len(events) == 4
    assert '"content": "Paris"' in events[0]
    assert events[-1].startswith('data: {"error": {"message": "llama-server for t-cut is not answering')
