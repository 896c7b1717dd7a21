from __future__ import annotations

import os
import socket

import pytest

from models_app.models import AIModel, ServedInstance, Source, Status
from tests.factories import model_make


def assert_nothing_served(model_id: str = "tiny") -> None:
    assert AIModel.objects.get(pk=model_id).status == "ready"
    assert not ServedInstance.objects.filter(model_id=model_id).exists()


def test_it_answers_404_for_an_unknown_model(api, fake_llama, tiny_model):
    response = api.post("/api/ai/serve", {"modelId": "no-such-model"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"] == {"code": "model_not_found", "message": "No model with id 'no-such-model'."}


def test_it_refuses_to_serve_a_model_that_is_still_downloading(api, fake_llama, db):
    model_make(id="half", name="half", source=Source.HUGGINGFACE, status=Status.DOWNLOADING)

    response = api.post("/api/ai/serve", {"modelId": "half"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "model_not_ready"
    assert "downloading" in response.json()["error"]["message"]
    assert AIModel.objects.get(pk="half").status == "downloading"


@pytest.mark.parametrize(("field", "value"), [("contextSize", 64), ("contextSize", 2_000_000), ("threads", 0),
                                              ("threads", 5000), ("gpuLayers", -1)])
def test_it_rejects_options_out_of_range_with_400(api, fake_llama, tiny_model, field, value):
    response = api.post("/api/ai/serve", {"modelId": "tiny", field: value}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert f"{field} must be between" in response.json()["error"]["message"]
    assert_nothing_served()


def test_it_rejects_a_non_numeric_option_with_400(api, fake_llama, tiny_model):
    response = api.post("/api/ai/serve", {"modelId": "tiny", "threads": "many"}, format="json")

    assert response.status_code == 400
    assert "threads" in response.json()["error"]["message"]
    assert_nothing_served()


def test_it_refuses_a_port_in_use_with_409_naming_it(api, fake_llama, tiny_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        response = api.post("/api/ai/serve", {"modelId": "tiny", "port": port}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "port_in_use"
    assert f"Port {port} is in use" in response.json()["error"]["message"]
    assert_nothing_served()


def test_it_answers_503_naming_the_path_when_llama_server_is_missing(api, settings, tiny_model, tmp_path):
    settings.LLAMA_SERVER_BIN = str(tmp_path / "nowhere" / "llama-server")

    response = api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "llama_server_missing"
    assert str(tmp_path / "nowhere" / "llama-server") in response.json()["error"]["message"]
    assert_nothing_served()


def test_it_answers_503_when_llama_server_cannot_run(api, settings, tiny_model, tmp_path):
    broken = tmp_path / "llama-server"
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries: libllama.so' >&2\nexit 127\n")
    os.chmod(broken, 0o755)
    settings.LLAMA_SERVER_BIN = str(broken)

    response = api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "llama_server_broken"
    assert f"llama-server at {broken} does not run: exit code 127: error while loading shared libraries" in \
        response.json()["error"]["message"]
    assert_nothing_served()


def test_it_refuses_with_507_when_the_model_needs_more_memory_than_allowed(api, fake_llama, settings, tiny_model):
    settings.LLAMA_MEMORY_LIMIT = 100 * 1024 * 1024

    response = api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    assert response.status_code == 507
    assert response.json()["error"]["code"] == "not_enough_memory"
    assert "Try a smaller contextSize or stop another model" in response.json()["error"]["message"]
    assert_nothing_served()


def test_it_answers_409_when_chatting_with_a_model_that_is_not_served(api, fake_llama, tiny_model):
    response = api.post("/api/ai/chat", {"modelId": "tiny", "messages": [{"role": "user", "content": "hi"}]},
                        format="json")

    assert response.status_code == 409
    assert response.json()["error"] == {"code": "model_not_serving",
                                        "message": "Model tiny is ready, not serving: serve it first."}


def test_it_rejects_a_chat_without_messages_with_400(api, fake_llama, tiny_model):
    response = api.post("/api/ai/chat", {"modelId": "tiny", "messages": []}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert "messages" in response.json()["error"]["message"]


def test_it_rejects_a_chat_message_with_an_unknown_role_with_400(api, fake_llama, tiny_model):
    response = api.post("/api/ai/chat", {"modelId": "tiny", "messages": [{"role": "robot", "content": "hi"}]},
                        format="json")

    assert response.status_code == 400
    assert "robot" in response.json()["error"]["message"]


def test_it_answers_401_to_anonymous_serve_requests(anon_api, tiny_model):
    response = anon_api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    assert response.status_code == 401
    assert_nothing_served()


def test_it_refuses_to_serve_a_model_whose_file_is_gone_with_409(api, fake_llama, tiny_model):
    gone = tiny_model.lead.path + "/tiny.gguf"
    os.remove(gone)

    response = api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == {"code": "model_file_missing",
                                        "message": f"The file of model tiny is missing: {gone}."}
    assert_nothing_served()
