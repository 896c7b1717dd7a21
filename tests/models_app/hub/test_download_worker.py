from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from models_app.hub.tasks import download_task
from models_app.models import AIModel
from tests.conftest import wait_for
from tests.models_app.hub.conftest import DEMO_ID, DEMO_REPO, MEDIUM_ID, MEDIUM_REPO, SMALL_FILE
from models_app.models import ModelCopy

MIB = 1024 * 1024
pytestmark = pytest.mark.django_db(transaction=True)


class Worker(threading.Thread):
    """download_task in a thread, as a q2 worker would run it."""

    def __init__(self, model_id: str):
        super().__init__(daemon=True)
        self.model_id, self.result = model_id, None

    def run(self) -> None:
        try:
            self.result = download_task(self.model_id)
        finally:
            connections.close_all()


def downloading(model_id: str, at_least: int = 1):
    return ModelCopy.objects.filter(model_id=model_id, status="downloading", downloaded_bytes__gte=at_least).first()


def test_it_reports_progress_while_downloading_and_stops_and_cleans_up_when_deleted(api, hub, settings, demo_gguf):
    hub.slow_bps = 15 * MIB
    api.post("/api/ai/download", {"url": f"{hub.url}/{DEMO_REPO}"}, format="json")
    worker = Worker(DEMO_ID)
    worker.start()
    first = wait_for(lambda: downloading(DEMO_ID), what="the demo download under way", timeout=30, interval=0.05)
    later = wait_for(lambda: downloading(DEMO_ID, first.downloaded_bytes + 1), what="more bytes of the demo", timeout=30,
                     interval=0.05)
    assert 0 < first.download_progress < later.download_progress < 100
    assert later.download_rate > 0
    response = api.delete(f"/api/ai/models/{DEMO_ID}")
    assert response.status_code == 200
    worker.join(30)
    assert worker.result == "cancelled"
    assert not (settings.AI_MODEL_DIR / DEMO_ID).exists()
    assert hub.bytes_served < demo_gguf.stat().st_size
    assert api.get(f"/api/ai/models/{DEMO_ID}").status_code == 404


def test_it_runs_no_more_downloads_at_once_than_the_setting_allows(api, hub, settings):
    settings.DOWNLOAD_CONCURRENCY = 1
    hub.slow_bps = 20 * MIB
    api.post("/api/ai/download", {"url": f"{hub.url}/{MEDIUM_REPO}"}, format="json")
    second = api.post("/api/ai/download", {"url": f"{hub.url}/{DEMO_REPO}", "fileName": SMALL_FILE},
                      format="json").json()["result"]["id"]
    worker = Worker(MEDIUM_ID)
    worker.start()
    wait_for(lambda: downloading(MEDIUM_ID), what="the medium download under way", timeout=30, interval=0.05)
    assert download_task(second) == "waiting for a slot"
    assert AIModel.objects.get(pk=second).status == "queued"
    worker.join(60)
    assert worker.result == "ready"
    assert download_task(second) == "ready"


def test_it_pushes_progress_to_open_pages_at_most_twice_a_second(api, hub):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    async_to_sync(layer.group_add)("models", "test-page")
    hub.slow_bps = 10 * MIB
    api.post("/api/ai/download", {"url": f"{hub.url}/{MEDIUM_REPO}"}, format="json")
    began = time.monotonic()
    assert download_task(MEDIUM_ID) == "ready"
    seconds = time.monotonic() - began
    pushed = async_to_sync(drain)(layer, "test-page")
    statuses = [event["model"]["status"] for event in pushed if event["type"] == "model.update"]
    assert statuses[0] == "queued" and statuses[-1] == "ready"
    assert statuses.index("downloading") < statuses.index("verifying") < statuses.index("ready")
    progress = [event["model"]["downloadedBytes"] for event in pushed if event["model"]["status"] == "downloading"]
    assert progress == sorted(progress) and len(progress) >= 3
    assert len(progress) <= seconds / 0.5 + 3


async def drain(layer, channel: str) -> list[dict]:
    import asyncio

    events = []
    while True:
        try:
            events.append(await asyncio.wait_for(layer.receive(channel), 0.2))
        except asyncio.TimeoutError:
            return events
