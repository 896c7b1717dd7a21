from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings

from chat.llm import chat_stream
from models_app.inference.engine import LlamaEngine
from models_app.models import AIModel, ServedInstance
from tests.models_app.inference.helpers import drive, serve_failed
from tests.streams import stream_read


def serve(api, engine) -> None:
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")
    drive(engine, lambda: AIModel.objects.get(pk="tiny").status == "serving", what="serving")


def test_it_brings_serving_models_back_when_the_daemon_restarts(api, fake_llama, tiny_model, engine, clock):
    serve(api, engine)
    old = engine.children["tiny"]

    engine.stop()
    assert old.exit_code() is not None
    assert AIModel.objects.get(pk="tiny").status == "starting"
    again = LlamaEngine(node_name=settings.NODE_NAME, now=clock)
    again.start()
    try:
        drive(again, lambda: AIModel.objects.get(pk="tiny").status == "serving", what="served again")
        assert again.children["tiny"].pid == ServedInstance.objects.get(model_id="tiny").pid
    finally:
        again.stop()


def test_it_kills_a_server_left_behind_by_a_daemon_that_died(api, fake_llama, tiny_model, engine, clock):
    serve(api, engine)
    left = engine.children.pop("tiny")

    successor = LlamaEngine(node_name=settings.NODE_NAME, now=clock)
    successor.start()
    try:
        assert left.popen.wait(timeout=10) == -9
        drive(successor, lambda: AIModel.objects.get(pk="tiny").status == "serving", what="served by the successor")
    finally:
        successor.stop()


def test_it_does_not_bring_back_a_model_that_was_stopped(api, fake_llama, tiny_model, engine, clock):
    serve(api, engine)
    api.delete("/api/ai/serve?modelId=tiny")
    drive(engine, lambda: AIModel.objects.get(pk="tiny").status == "ready", what="stopped")

    engine.stop()
    again = LlamaEngine(node_name=settings.NODE_NAME, now=clock)
    again.start()
    again.step()
    assert again.children == {}
    assert AIModel.objects.get(pk="tiny").status == "ready"


def test_it_stops_a_model_idle_longer_than_the_keep_alive(api, fake_llama, tiny_model, engine, clock, settings):
    settings.LLAMA_KEEP_ALIVE_SECONDS = 300
    serve(api, engine)

    clock.advance(200)
    engine.step()
    assert AIModel.objects.get(pk="tiny").status == "serving"
    clock.advance(101)
    drive(engine, lambda: AIModel.objects.get(pk="tiny").status == "ready", what="idle model stopped")
    assert ServedInstance.objects.get(model_id="tiny").desired == "stopped"


def test_it_waits_for_a_copy_still_on_its_way_and_serves_once_it_is_verified(api, fake_llama, tiny_model, engine):
    """A serve that made a copy first (SPEC §9): the instance is wanted before its node holds the file."""
    from models_app.models import ModelCopy

    copy = ModelCopy.objects.get(model=tiny_model)
    ModelCopy.objects.filter(pk=copy.pk).update(status="downloading")
    ServedInstance.objects.create(model=tiny_model, node=settings.NODE_NAME, desired="serving")
    for _ in range(10):
        engine.step()
    instance = ServedInstance.objects.get(model_id="tiny")
    assert engine.children == {} and (instance.state, instance.restarts, instance.error) == ("stopped", 0, "")
    assert AIModel.objects.get(pk="tiny").status == "starting"

    ModelCopy.objects.filter(pk=copy.pk).update(status="ready")
    drive(engine, lambda: AIModel.objects.get(pk="tiny").status == "serving", what="serving once the copy is ready")


def test_it_ignores_rows_of_other_nodes(api, fake_llama, tiny_model, clock):
    api.post("/api/ai/serve", {"modelId": "tiny"}, format="json")
    other = LlamaEngine(node_name="another-node", now=clock)
    other.start()

    other.step()

    assert other.children == {}
    assert AIModel.objects.get(pk="tiny").status == "starting"


@pytest.mark.django_db(transaction=True)  # the answer streams in a thread of its own, with its own connection
def test_it_never_stops_a_model_for_idleness_while_it_streams_an_answer(api, fake_llama, tiny_model, engine, settings,
                                                                       monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_TOKENS", "28")
    monkeypatch.setenv("FAKE_LLAMA_TOKEN_SECONDS", "0.1")  # about 3 s, three times the keep-alive
    settings.LLAMA_KEEP_ALIVE_SECONDS = 1
    serve(api, engine)
    pieces: list[str] = []
    answer = threading.Thread(target=lambda: stream_read(
        chat_stream(model_id="tiny", messages=[{"role": "user", "content": "Capital of France?"}]), into=pieces))

    answer.start()
    while answer.is_alive():
        engine.step()
        assert ServedInstance.objects.get(model_id="tiny").desired == "serving"
        time.sleep(0.05)
    assert len(pieces) == 28
    engine.step()
    assert AIModel.objects.get(pk="tiny").status == "serving"  # the clock started when the answer ended
    drive(engine, lambda: AIModel.objects.get(pk="tiny").status == "ready", what="idle after the answer")


def test_it_restarts_a_llama_server_that_stops_answering(api, fake_llama, tiny_model, clock, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_HANG_AFTER", "1.5")
    engine = LlamaEngine(node_name=settings.NODE_NAME, now=clock, health_every=0.2, health_misses=3)
    engine.start()
    try:
        serve(api, engine)
        hung = engine.children["tiny"]

        drive(engine, lambda: serve_failed("tiny"), what="the hang noticed")
        instance = ServedInstance.objects.get(model_id="tiny")
        assert instance.error.startswith("llama-server stopped answering: /health got no answer within 2 s, 3 times")
        assert (instance.desired, hung.exit_code() is not None) == ("serving", True)
        clock.advance(1.1)
        drive(engine, lambda: "tiny" in engine.children and engine.children["tiny"].pid != hung.pid, what="restart")
    finally:
        engine.stop()
