from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from models_app.models import AIModel, Source, Status, TransferSample
from models_app.services import transfer_samples_record
from tests.factories import model_make

pytestmark = pytest.mark.django_db


def _model(model_id: str, node: str, **rates) -> AIModel:
    return model_make(id=model_id, name=model_id, source=Source.LOCAL, status=Status.READY, node=node, **rates)


def test_the_node_keeps_an_hour_of_samples_of_what_moves_on_it(api):
    _model("busy", "a", download_rate=5_000_000, upload_rate=1_000, peers=3)
    _model("seeded", "a", peers=1)
    _model("idle", "a")
    _model("elsewhere", "b", download_rate=9)
    start = timezone.now() - timedelta(minutes=70)
    for minute in range(0, 71, 10):
        transfer_samples_record(node="a", now=start + timedelta(minutes=minute))

    assert set(TransferSample.objects.values_list("model_id", flat=True)) == {"busy", "seeded"}
    body = api.get("/api/ai/models/busy/transfers").json()
    assert body["ok"] is True
    samples = body["result"]
    assert len(samples) == 7  # the one taken 70 minutes ago is gone
    assert samples[-1] == {"at": samples[-1]["at"], "downloadRate": 5_000_000, "uploadRate": 1_000, "peers": 3}
    assert [s["at"] for s in samples] == sorted(s["at"] for s in samples)
    assert api.get("/api/ai/models/idle/transfers").json()["result"] == []


def test_the_history_of_an_unknown_model_is_a_clear_404(api, anon_api):
    response = api.get("/api/ai/models/nope/transfers")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")
    assert anon_api.get("/api/ai/models/nope/transfers").status_code in (401, 403)


def test_the_history_of_a_model_on_two_nodes_sums_each_moment(api):
    from models_app.models import ModelCopy

    model = _model("shared", "a", upload_rate=1_000, peers=1)
    ModelCopy.objects.create(model=model, node="b", status="downloading", download_rate=4_000, peers=2)
    start = timezone.now() - timedelta(minutes=5)
    for minute in range(3):
        transfer_samples_record(node="a", now=start + timedelta(minutes=minute))
        transfer_samples_record(node="b", now=start + timedelta(minutes=minute, seconds=1))  # its own heartbeat

    samples = api.get("/api/ai/models/shared/transfers").json()["result"]

    assert [(s["downloadRate"], s["uploadRate"], s["peers"]) for s in samples] == [(4_000, 1_000, 3)] * 3
