"""Where a Hub download goes (SPEC §9): the node asked for, else the online node with the most free disk;
its job waits on that node's own q2 queue; a node without room, unknown or offline is refused."""
from __future__ import annotations

import pytest
from django_q.brokers import get_broker

from aiportal.env import node_queue
from aiportal.models import Node
from aiportal.nodes import node_goodbye, node_heartbeat
from models_app.models import AIModel
from tests.models_app.hub.conftest import DEMO_ID, DEMO_REPO, SMALL_FILE

pytestmark = pytest.mark.django_db
GIB = 1024 ** 3


def heartbeat(name: str, disk_free: int) -> None:
    node_heartbeat(name=name, address="10.0.0.9", facts={"disk_free": disk_free, "model_dir": f"/srv/{name}/models",
                                                         "memory_total": 8 * GIB, "memory_free": 4 * GIB})


def test_a_download_goes_to_the_online_node_with_the_most_free_disk_and_waits_on_its_queue(
        api, hub, django_capture_on_commit_callbacks):
    heartbeat("roomy", 10_000 * GIB)
    heartbeat("cramped", 1 * GIB)
    queue = get_broker(node_queue("roomy"))
    before = queue.queue_size()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/ai/download", {"url": f"{hub.url}/{DEMO_REPO}", "fileName": SMALL_FILE},
                            format="json")

    assert response.status_code == 202, response.json()
    model = AIModel.objects.get(pk=DEMO_ID)
    assert (model.lead.node, model.lead.path) == ("roomy", f"/srv/roomy/models/{DEMO_ID}")
    assert response.json()["result"]["copies"][0]["node"] == "roomy"
    assert queue.queue_size() == before + 1  # only roomy's q2 cluster takes it
    queue.purge_queue()


def test_a_node_without_room_for_the_file_is_507_naming_it_and_the_bytes(api, hub):
    heartbeat("cramped", 1000)

    response = api.post("/api/ai/download", {"url": f"{hub.url}/{DEMO_REPO}", "fileName": SMALL_FILE,
                                             "node": "cramped"}, format="json")

    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage" and error["node"] == "cramped" and error["free"] == 1000
    assert error["needed"] > 1000 and "node cramped" in error["message"]
    assert (AIModel.objects.count(), hub.bytes_served) == (0, 0)


def test_an_unknown_or_offline_node_is_refused_before_anything_is_created(api, hub):
    heartbeat("gone", 100 * GIB)
    node_goodbye(name="gone")

    unknown = api.post("/api/ai/download", {"url": f"{hub.url}/{DEMO_REPO}", "node": "mars"}, format="json")
    offline = api.post("/api/ai/download", {"url": f"{hub.url}/{DEMO_REPO}", "node": "gone"}, format="json")
    magnet = api.post("/api/ai/download", {"magnetUri": "magnet:?xt=urn:btih:" + "ab" * 20, "node": "gone"},
                      format="json")

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "node_not_found")
    assert (offline.status_code, offline.json()["error"]["code"]) == (409, "node_offline")
    assert (magnet.status_code, magnet.json()["error"]["code"]) == (409, "node_offline")
    assert AIModel.objects.count() == 0 and Node.objects.count() == 1
