"""Nodes (SPEC §9) inside one process: the heartbeat's facts, online and offline, GET /api/ai/nodes, and
serving placed on another node from what its heartbeat says."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from aiportal.models import Node
from aiportal.node import NodeDaemon
from aiportal.nodes import node_goodbye, node_heartbeat
from models_app.inference import binary
from models_app.inference.engine import LlamaEngine
from models_app.models import AIModel, ModelCopy, ServedInstance, Source, Status
from tests.factories import model_make

pytestmark = pytest.mark.django_db
GIB = 1024 ** 3


def far_node(**facts) -> None:
    """Another machine's heartbeat, as its daemon writes it."""
    values = {"cpus": 16, "memory_total": 64 * GIB, "memory_free": 48 * GIB, "disk_free": 900 * GIB,
              "model_dir": "/srv/far/models", "llama_version": "0.6.0", "llama_backends": ["cpu"], "gpus": []}
    node_heartbeat(name="far", address="10.0.0.7", facts={**values, **facts}, starting=True)


def far_model(model_id: str = "far-model", size: int = 2 * GIB) -> AIModel:
    return model_make(id=model_id, name=model_id, source=Source.LOCAL, file_name="m.gguf", size=size,
                      status=Status.READY, node="far", path=f"/srv/far/models/{model_id}")


def test_the_heartbeat_writes_what_this_machine_and_its_llama_server_have(settings, api):
    if not binary.binary_candidate().is_file():
        pytest.skip("needs the llama-server build (make test builds it first)")
    NodeDaemon(node_name="here", engines=[LlamaEngine(node_name="here")], tick=0.1).heartbeat(starting=True)

    node = Node.objects.get(name="here")
    assert node.address == settings.NODE_ADDRESS and node.online
    assert node.cpus == len(os.sched_getaffinity(0))
    assert 0 < node.memory_free < node.memory_total
    assert node.disk_free > 0 and node.model_dir == str(settings.AI_MODEL_DIR)
    assert node.llama_version and "cpu" in node.llama_backends and node.llama_error == ""
    assert node.gpus == []  # `llama-server --list-devices` lists none on a CPU build
    listed = api.get("/api/ai/nodes").json()["result"]
    assert [n["name"] for n in listed] == ["here"]
    assert listed[0]["memory"] == {"total": node.memory_total, "free": node.memory_free}
    assert listed[0]["llamaServer"]["version"] == node.llama_version and listed[0]["online"] is True


def test_the_heartbeat_says_why_a_node_cannot_run_llama_server(settings, tmp_path):
    settings.LLAMA_SERVER_BIN = str(tmp_path / "no-such-llama-server")
    NodeDaemon(node_name="here", engines=[LlamaEngine(node_name="here")], tick=0.1).heartbeat()

    node = Node.objects.get(name="here")
    assert "no-such-llama-server" in node.llama_error and node.llama_version == ""


def test_a_node_is_offline_when_its_heartbeat_is_old_or_it_said_goodbye(api, settings):
    far_node()
    assert api.get("/api/ai/nodes").json()["result"][0]["online"] is True
    Node.objects.filter(name="far").update(last_seen=timezone.now() - timedelta(seconds=settings.NODE_ONLINE_SECONDS + 1))
    assert api.get("/api/ai/nodes").json()["result"][0]["online"] is False
    far_node()
    node_goodbye(name="far")
    assert api.get("/api/ai/nodes").json()["result"][0]["online"] is False


def test_the_nodes_list_names_the_copies_and_served_models_of_each_node(api):
    far_node()
    far_model("one")
    far_model("two")
    ServedInstance.objects.create(model_id="two", node="far", state="serving", port=9000, host="10.0.0.7")
    node = api.get("/api/ai/nodes").json()["result"][0]
    assert (node["copies"], node["serving"]) == (["one", "two"], ["two"])


def test_a_copy_and_instance_on_an_offline_node_show_offline(api):
    far_node()
    far_model()
    ServedInstance.objects.create(model_id="far-model", node="far", state="serving", port=9000, host="10.0.0.7")
    Node.objects.filter(name="far").update(stopped=True)

    model = api.get("/api/ai/models/far-model").json()["result"]
    assert model["copies"][0]["status"] == "offline" and model["instances"][0]["status"] == "offline"
    assert model["server"] is None


def test_serving_on_another_node_is_written_for_that_node(api):
    far_node(gpus=[{"name": "NVIDIA RTX 4090", "memoryTotal": 24 * GIB, "memoryFree": 23 * GIB}])
    far_model()

    response = api.post("/api/ai/serve", {"modelId": "far-model", "node": "far"}, format="json")

    assert response.status_code == 202, response.json()
    instance = ServedInstance.objects.get(model_id="far-model")
    assert (instance.node, instance.desired) == ("far", "serving")
    assert instance.gpu_layers == 999  # a node whose llama-server lists a GPU offloads by default


def test_serving_on_a_node_without_room_is_507_naming_it_and_the_bytes(api):
    far_node(memory_free=1 * GIB)
    far_model(size=2 * GIB)

    response = api.post("/api/ai/serve", {"modelId": "far-model"}, format="json")

    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "not_enough_memory" and error["node"] == "far" and "node far" in error["message"]
    assert error["needed"] > 2 * GIB and error["available"] == 1 * GIB
    assert not ServedInstance.objects.exists()


def test_serving_on_a_node_that_cannot_run_llama_server_is_503_naming_it(api):
    far_node(llama_error="llama-server not found at /opt/llama-server", llama_version="")
    far_model()

    response = api.post("/api/ai/serve", {"modelId": "far-model"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "llama_server_missing" and "Node far" in response.json()["error"]["message"]


def test_serving_on_an_offline_or_unknown_node_is_refused(api):
    far_node()
    far_model()
    Node.objects.filter(name="far").update(last_seen=timezone.now() - timedelta(minutes=5))

    offline = api.post("/api/ai/serve", {"modelId": "far-model"}, format="json")
    unknown = api.post("/api/ai/serve", {"modelId": "far-model", "node": "mars"}, format="json")

    assert (offline.status_code, offline.json()["error"]["code"]) == (409, "node_offline")
    assert "5 min ago" in offline.json()["error"]["message"]
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "node_not_found")
    assert not ServedInstance.objects.exists()


def test_chat_with_a_model_served_on_an_offline_node_is_503_naming_the_node(api):
    far_node()
    far_model()
    ServedInstance.objects.create(model_id="far-model", node="far", state="serving", desired="serving", port=9000,
                                  host="10.0.0.7", api_key="k")
    node_goodbye(name="far")

    response = api.post("/api/ai/chat", {"modelId": "far-model", "messages": [{"role": "user", "content": "hi"}]},
                        format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable" and response.json()["error"]["node"] == "far"


def _roomy_node(**facts) -> None:
    values = {"cpus": 8, "memory_total": 32 * GIB, "memory_free": 24 * GIB, "disk_free": 500 * GIB,
              "model_dir": "/srv/roomy/models", "llama_version": "0.6.0", "llama_backends": ["cpu"], "gpus": [],
              "p2p_port": 6882}
    node_heartbeat(name="roomy", address="10.0.0.8", facts={**values, **facts}, starting=True)


def _seeded_on_far(model: AIModel) -> None:
    from torrents_app.models import Torrent

    Torrent.objects.create(copy=model.copies.get(node="far"), info_hash_v1="ab" * 20, torrent_file=b"d4:infode",
                           desired=Torrent.Desired.SEED, state="seeding")


def test_serving_with_no_node_copies_the_model_first_to_a_node_with_room(api):
    far_node(memory_free=1 * GIB, p2p_port=6881)  # holds the file but has no room for it
    _roomy_node()
    model = far_model()
    _seeded_on_far(model)

    response = api.post("/api/ai/serve", {"modelId": model.pk}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()["result"]
    assert {c["node"]: c["status"] for c in body["copies"]} == {"far": "ready", "roomy": "queued"}
    assert (body["instances"][0]["node"], body["status"]) == ("roomy", "starting")
    from torrents_app.models import Torrent

    fetch = Torrent.objects.get(copy__model=model, copy__node="roomy")
    assert (fetch.desired, "x.pe=10.0.0.7:6881" in fetch.magnet_source) == ("download", True)


def test_serving_with_no_node_stays_where_the_file_is_when_it_fits_there(api):
    far_node(p2p_port=6881)
    _roomy_node(memory_free=40 * GIB)
    model = far_model()
    _seeded_on_far(model)

    response = api.post("/api/ai/serve", {"modelId": model.pk}, format="json")

    assert response.status_code == 202, response.json()
    assert [c["node"] for c in response.json()["result"]["copies"]] == ["far"]
    assert ServedInstance.objects.get(model_id=model.pk).node == "far"


def test_serving_with_no_node_and_no_room_anywhere_is_507_naming_the_holder(api):
    far_node(memory_free=1 * GIB, p2p_port=6881)
    _roomy_node(memory_free=1 * GIB)
    model = far_model()
    _seeded_on_far(model)

    response = api.post("/api/ai/serve", {"modelId": model.pk}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (507, "not_enough_memory")
    assert response.json()["error"]["node"] == "far" and "node far" in response.json()["error"]["message"]
    assert not ServedInstance.objects.exists() and model.copies.count() == 1


RTX = {"name": "NVIDIA RTX 4090", "memoryTotal": 24 * GIB, "memoryFree": 23 * GIB}


def test_serving_with_no_node_prefers_a_holder_whose_gpus_have_room(api):
    far_node(p2p_port=6881)  # RAM for it, no GPU
    _roomy_node(memory_free=3 * GIB, gpus=[RTX])
    model = far_model()
    ModelCopy.objects.create(model=model, node="roomy", status="ready", path="/srv/roomy/models/far-model")

    response = api.post("/api/ai/serve", {"modelId": model.pk}, format="json")

    assert response.status_code == 202, response.json()
    instance = ServedInstance.objects.get(model_id=model.pk)
    assert (instance.node, instance.gpu_layers) == ("roomy", 999)


def test_serving_on_a_node_whose_ram_is_short_but_whose_gpus_have_room_is_accepted(api):
    far_node(memory_free=1 * GIB, gpus=[RTX])
    far_model(size=2 * GIB)

    response = api.post("/api/ai/serve", {"modelId": "far-model", "node": "far"}, format="json")

    assert response.status_code == 202, response.json()
    assert ServedInstance.objects.get(model_id="far-model").gpu_layers == 999


def test_serving_on_the_cpu_of_a_node_whose_ram_is_short_is_still_507(api):
    far_node(memory_free=1 * GIB, gpus=[RTX])
    far_model(size=2 * GIB)

    response = api.post("/api/ai/serve", {"modelId": "far-model", "node": "far", "gpuLayers": 0}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (507, "not_enough_memory")


def test_a_copy_for_serving_goes_to_the_node_whose_gpus_have_room_before_the_one_with_the_most_ram(api):
    far_node(memory_free=1 * GIB, p2p_port=6881)
    _roomy_node(memory_free=40 * GIB)
    node_heartbeat(name="gpubox", address="10.0.0.9", starting=True, facts={
        "cpus": 8, "memory_total": 16 * GIB, "memory_free": 3 * GIB, "disk_free": 500 * GIB, "p2p_port": 6883,
        "model_dir": "/srv/gpubox/models", "llama_version": "0.6.0", "llama_backends": ["cpu", "cuda"], "gpus": [RTX]})
    model = far_model()
    _seeded_on_far(model)

    response = api.post("/api/ai/serve", {"modelId": model.pk}, format="json")

    assert response.status_code == 202, response.json()
    assert ServedInstance.objects.get(model_id=model.pk).node == "gpubox"
    assert {c["node"] for c in response.json()["result"]["copies"]} == {"far", "gpubox"}
