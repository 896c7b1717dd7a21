from __future__ import annotations

from pathlib import Path

import pytest

from aiportal.errors import Unavailable
from models_app.inference.process import free_port
from models_app.inference.services import serve_ensure
from models_app.models import AIModel, ServedInstance
from models_app.services import model_import_local
from tests.models_app.inference.helpers import drive, serve_failed, write_tiny_gguf


def status_of(model_id: str) -> str:
    return AIModel.objects.get(pk=model_id).status


def serve(api, engine, model_id: str = "tiny", **options) -> dict:
    response = api.post("/api/ai/serve", {"modelId": model_id, **options}, format="json")
    assert response.status_code == 202, response.json()
    drive(engine, lambda: status_of(model_id) == "serving", what=f"{model_id} serving")
    return api.get(f"/api/ai/models/{model_id}").json()["result"]


def test_it_serves_a_model_and_shows_its_server(api, fake_llama, tiny_model, engine):
    response = api.post("/api/ai/serve", {"modelId": "tiny", "contextSize": 512, "threads": 1}, format="json")

    assert response.status_code == 202
    assert response.json()["result"]["status"] == "starting"
    drive(engine, lambda: status_of("tiny") == "serving", what="tiny serving")
    server = api.get("/api/ai/models/tiny").json()["result"]["server"]
    assert server["contextSize"] == 512
    assert server["threads"] == 1
    assert server["gpuLayers"] == 0
    assert server["url"] == f"http://127.0.0.1:{server['port']}"


def test_it_passes_the_model_file_and_options_to_llama_server(api, fake_llama, tiny_model, engine, settings,
                                                              monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_LOAD_SECONDS", "1")
    api.post("/api/ai/serve", {"modelId": "tiny", "contextSize": 1024, "threads": 1, "gpuLayers": 0}, format="json")
    drive(engine, lambda: "tiny" in engine.children, what="spawn")

    child = engine.children["tiny"]
    assert child.popen.args[1:] == [
        "--host", "127.0.0.1", "--port", str(child.spec.port), "-m", str(Path(tiny_model.lead.path) / "tiny.gguf"),
        "-c", "1024", "-t", "1", "-ngl", "0", "--alias", "tiny", "--no-webui",
        "--embeddings", "--pooling", "mean", "--metrics",  # a chat model names no pooling of its own
        "--api-key-file", str(settings.RUN_DIR / "keys" / "llama-tiny.key"),
    ]
    # The key file is the instance's own key, for this user's eyes only.
    key_file = settings.RUN_DIR / "keys" / "llama-tiny.key"
    assert key_file.read_text().strip() == ServedInstance.objects.get(model_id="tiny").api_key != ""
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Read when the server started; once it answers, only the portal's database holds the key.
    drive(engine, lambda: status_of("tiny") == "serving", what="tiny serving")
    assert not key_file.exists()


def test_it_keeps_a_slowly_loading_model_starting_until_its_health_is_ok(api, fake_llama, tiny_model, engine, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_LOAD_SECONDS", "1.5")
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    drive(engine, lambda: "tiny" in engine.children, what="spawn")
    engine.step()
    assert status_of("tiny") == "starting"
    drive(engine, lambda: status_of("tiny") == "serving", what="serving after the slow load")


def test_it_shows_the_log_tail_when_llama_server_dies_while_loading(api, fake_llama, tiny_model, engine, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_CRASH_AT_LOAD", "1")
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    drive(engine, lambda: serve_failed("tiny"), what="error")
    model = api.get("/api/ai/models/tiny").json()["result"]
    assert "exited with code 1 while loading the model" in model["error"]
    assert "failed to load model" in model["error"]
    assert model["server"] is None
    assert (model["status"], model["copies"][0]["status"], model["instances"][0]["status"]) == ("ready", "ready", "error")
    assert "failed to load model" in model["instances"][0]["error"]


def test_it_says_how_to_rebuild_a_llama_server_that_dies_of_sigill(api, settings, tiny_model, engine, tmp_path):
    binary = tmp_path / "llama-server"
    binary.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "version: 1 (fake)"; exit 0; fi\n'
                      'echo "load_tensors: CPU_REPACK model buffer size"\nkill -ILL $$\n')
    binary.chmod(0o755)
    settings.LLAMA_SERVER_BIN = str(binary)
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    drive(engine, lambda: serve_failed("tiny"), what="error")
    error = api.get("/api/ai/models/tiny").json()["result"]["error"]
    assert error.startswith("llama-server was killed by SIGILL while loading the model. This llama-server was built "
                            "for CPU instructions this machine cannot run; `make llama-rebuild` rebuilds it")
    assert "CPU_REPACK model buffer size" in error


def test_it_restarts_a_crashed_server_after_a_backoff(api, fake_llama, tiny_model, engine, clock, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_CRASH_AFTER", "0.5")
    serve(api, engine)
    first_pid = engine.children["tiny"].pid

    drive(engine, lambda: serve_failed("tiny"), what="crash noticed")
    model = AIModel.objects.get(pk="tiny")
    assert "exited with code 3 while serving" in model.error
    assert "GGML_ASSERT failed: simulated crash" in model.error
    engine.step()
    assert "tiny" not in engine.children
    clock.advance(1.1)
    drive(engine, lambda: status_of("tiny") == "serving", what="restarted")
    assert engine.children["tiny"].pid != first_pid
    assert ServedInstance.objects.get(model_id="tiny").restarts == 1


def test_it_gives_up_after_five_crashes_in_a_row(api, fake_llama, tiny_model, engine, clock, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_CRASH_AT_LOAD", "1")
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")

    for _ in range(6):
        drive(engine, lambda: "tiny" not in engine.children and serve_failed("tiny"), what="crash")
        clock.advance(61)
        engine.step()
    model = AIModel.objects.get(pk="tiny")
    assert "Gave up after 5 restarts" in model.error
    assert model.served.desired == "stopped"
    assert "tiny" not in engine.children


def test_it_stops_a_model_and_stopping_again_is_no_error(api, fake_llama, tiny_model, engine):
    serve(api, engine)
    child = engine.children["tiny"]

    response = api.delete("/api/ai/serve?modelId=tiny")
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "stopping"
    drive(engine, lambda: status_of("tiny") == "ready", what="stopped")
    assert child.exit_code() is not None
    again = api.delete("/api/ai/serve?modelId=tiny")
    assert again.status_code == 200
    assert again.json()["result"]["status"] == "ready"


def test_it_stops_the_server_of_a_deleted_model(api, fake_llama, tiny_model, engine):
    serve(api, engine)
    child = engine.children["tiny"]

    assert api.delete("/api/ai/models/tiny").status_code == 200
    drive(engine, lambda: child.exit_code() is not None and not engine.stopping, what="orphan stopped")
    assert engine.children == {}


def test_it_restarts_the_server_when_serve_asks_for_other_options(api, fake_llama, tiny_model, engine):
    serve(api, engine, contextSize=512)
    first = engine.children["tiny"]

    api.post("/api/ai/serve", {"modelId": "tiny", "contextSize": 1024}, format="json")
    drive(engine, lambda: status_of("tiny") == "serving" and engine.children.get("tiny") not in (None, first),
          what="restarted with the new context")
    assert engine.children["tiny"].spec.context_size == 1024
    assert first.exit_code() is not None


def test_it_serves_on_the_port_asked_for(api, fake_llama, tiny_model, engine):
    port = free_port()
    server = serve(api, engine, port=port)["server"]

    assert server["port"] == port


def test_it_refuses_the_port_of_another_served_model_with_409(api, fake_llama, tiny_model, engine, tmp_path, settings):
    port = serve(api, engine)["server"]["port"]
    model_import_local(path=write_tiny_gguf(tmp_path / "other.gguf"), model_id="other")

    response = api.post("/api/ai/serve", {"modelId": "other", "port": port}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"Port {port} is in use on node {settings.NODE_NAME}; pick another port or leave it empty.")
    assert status_of("other") == "ready"
    assert status_of("tiny") == "serving"


def test_it_waits_for_a_starting_model_on_demand_without_changing_its_options(api, fake_llama, tiny_model, engine):
    api.post("/api/ai/serve", {"modelId": "tiny", "contextSize": 512}, format="json")
    engine.step()

    with pytest.raises(Unavailable, match="did not start within 0 seconds"):
        serve_ensure(model_id="tiny", timeout=0)
    drive(engine, lambda: status_of("tiny") == "serving", what="serving")
    assert serve_ensure(model_id="tiny", timeout=5).served.context_size == 512


def test_it_keeps_a_served_model_running_when_serve_is_asked_again_without_options(api, fake_llama, tiny_model,
                                                                                   engine):
    serve(api, engine, contextSize=512, threads=1)
    running = engine.children["tiny"]

    response = api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")
    engine.step()

    assert response.status_code == 202
    assert response.json()["result"]["status"] == "serving"
    assert response.json()["result"]["server"]["contextSize"] == 512
    assert engine.children["tiny"] is running


def test_it_rotates_a_llama_server_log_that_grew_too_big(api, fake_llama, tiny_model, engine, settings):
    settings.LOG_MAX_BYTES, settings.LOG_BACKUPS = 10_000, 2
    log = Path(settings.LOG_DIR) / "llama-tiny.log"
    for n in (2, 1):
        log.with_name(f"llama-tiny.log.{n}").write_text(f"backup {n}\n")
    log.write_text("old line\n" * 2000)

    serve(api, engine)
    assert log.with_name("llama-tiny.log.1").read_text().startswith("old line")
    assert log.with_name("llama-tiny.log.2").read_text() == "backup 1\n"
    assert not log.with_name("llama-tiny.log.3").exists()
    assert "old line" not in log.read_text() and "fake llama-server: loading" in log.read_text()
