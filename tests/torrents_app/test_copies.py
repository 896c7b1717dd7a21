"""Copies between the nodes of one portal (SPEC §9 POST/DELETE …/copies): the bytes go node to node over
BitTorrent, the copy is verified and seeded, and a copy is removed only where that loses nothing."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aiportal.nodes import node_goodbye, node_heartbeat
from models_app.models import ServedInstance, Status
from models_app.services import model_import_local
from tests.torrents_app.helpers import copy_on, pump, refreshed, status_on
from torrents_app.models import Torrent
from torrents_app.sharing import torrent_set_seeding

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _beat(engine, model_dir: Path) -> None:
    node_heartbeat(name=engine.node_name, address="127.0.0.1", facts={
        "p2p_port": engine.listen_port(), "disk_free": 50 * 2**30, "model_dir": str(model_dir), "cpus": 2,
        "memory_total": 8 * 2**30, "memory_free": 4 * 2**30})


@pytest.fixture
def seeded(settings, tmp_path, small_gguf, alpha, beta):
    """A model imported on alpha and seeded there; both nodes heartbeating; the portal's process is alpha's."""
    settings.NODE_NAME = "alpha"
    _beat(alpha, settings.AI_MODEL_DIR)
    _beat(beta, tmp_path / "beta-models")
    model = model_import_local(path=small_gguf, copy=True)
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    return refreshed(model)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_copy_goes_node_to_node_over_bittorrent_is_verified_and_seeded(api, tmp_path, seeded, alpha, beta):
    response = api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()["result"]
    assert [(c["node"], c["status"]) for c in body["copies"]] == [("alpha", "ready"), ("beta", "queued")]
    assert body["status"] == "ready"  # the model is usable all along: alpha holds it
    torrent = Torrent.objects.get(copy__model=seeded, copy__node="beta")
    # The group's own .torrent (no metadata from the peer) and alpha as a direct peer.
    assert bytes(torrent.torrent_file) == bytes(Torrent.objects.get(copy__model=seeded, copy__node="alpha").torrent_file)
    assert f"x.pe=127.0.0.1:{alpha.listen_port()}" in torrent.magnet_source

    pump([alpha, beta], lambda: status_on(seeded, "beta") == Status.READY)
    copy = copy_on(seeded, "beta")
    assert Path(copy.path) == tmp_path / "beta-models" / seeded.pk  # beta's folder, from its heartbeat
    assert _sha256(Path(copy.path, seeded.file_name)) == seeded.sha256
    assert copy.peer_bytes >= seeded.size and copy.http_bytes == 0 and copy.seeding
    pump([alpha, beta], lambda: beta.p2p.stats(seeded.pk).is_seeding)
    again = api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")
    assert again.status_code == 202 and len(again.json()["result"]["copies"]) == 2  # already there: nothing new
    listed = {n["name"]: n["copies"] for n in api.get("/api/ai/nodes").json()["result"]}
    assert listed == {"alpha": [seeded.pk], "beta": [seeded.pk]}


def test_a_removed_copy_leaves_its_node_and_its_files_go(api, settings, tmp_path, seeded, alpha, beta):
    api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")
    pump([alpha, beta], lambda: status_on(seeded, "beta") == Status.READY and beta.p2p.has(seeded.pk))
    folder = Path(copy_on(seeded, "beta").path)

    response = api.delete(f"/api/ai/models/{seeded.pk}/copies/beta")

    assert response.status_code == 200, response.json()
    assert [(c["node"], c["status"]) for c in response.json()["result"]["copies"]] == [("alpha", "ready"),
                                                                                      ("beta", "removing")]
    settings.AI_MODEL_DIR = tmp_path / "beta-models"  # as beta's daemon sees it: files go only from its own folder
    pump([beta], lambda: copy_on(seeded, "beta") is None)
    assert not folder.exists() and not beta.p2p.has(seeded.pk)
    assert Path(copy_on(seeded, "alpha").path, seeded.file_name).is_file()  # alpha's copy is untouched
    assert alpha.p2p.has(seeded.pk)


def test_it_refuses_copies_that_cannot_be_made_or_removed(api, settings, seeded, alpha, beta):
    unknown = api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "nowhere"}, format="json")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "node_not_found")
    missing = api.post("/api/ai/models/no-such-model/copies", {"node": "beta"}, format="json")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "model_not_found")
    blank = api.post(f"/api/ai/models/{seeded.pk}/copies", {}, format="json")
    assert (blank.status_code, blank.json()["error"]["code"]) == (400, "invalid_input")
    last = api.delete(f"/api/ai/models/{seeded.pk}/copies/alpha")
    assert (last.status_code, last.json()["error"]["code"]) == (409, "last_copy")
    none = api.delete(f"/api/ai/models/{seeded.pk}/copies/beta")
    assert (none.status_code, none.json()["error"]["code"]) == (404, "copy_not_found")

    # Nobody shares it: nothing to copy from.
    torrent_set_seeding(model_id=seeded.pk, enabled=False)
    unshared = api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")
    assert (unshared.status_code, unshared.json()["error"]["code"]) == (409, "no_seeder")
    assert "resume its seeding" in unshared.json()["error"]["message"]
    torrent_set_seeding(model_id=seeded.pk, enabled=True)

    node_goodbye(name="beta")
    offline = api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")
    assert (offline.status_code, offline.json()["error"]["code"]) == (409, "node_offline")
    assert copy_on(seeded, "beta") is None


def test_a_copy_that_serves_stays(api, seeded, alpha, beta):
    api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")
    pump([alpha, beta], lambda: status_on(seeded, "beta") == Status.READY)
    ServedInstance.objects.create(model=seeded, node="beta", desired="serving", state="serving", port=9)

    response = api.delete(f"/api/ai/models/{seeded.pk}/copies/beta")

    assert (response.status_code, response.json()["error"]["code"]) == (409, "copy_serving")
    assert "stop it there" in response.json()["error"]["message"]
    assert status_on(seeded, "beta") == Status.READY


def test_a_model_deleted_with_its_files_loses_them_on_every_node(api, settings, tmp_path, seeded, alpha, beta,
                                                                 django_capture_on_commit_callbacks):
    api.post(f"/api/ai/models/{seeded.pk}/copies", {"node": "beta"}, format="json")
    pump([alpha, beta], lambda: status_on(seeded, "beta") == Status.READY)
    here, there = Path(copy_on(seeded, "alpha").path), Path(copy_on(seeded, "beta").path)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/ai/models/{seeded.pk}?deleteFiles=true")

    assert response.status_code == 200
    assert not here.exists()  # this machine's at once
    settings.AI_MODEL_DIR = tmp_path / "beta-models"  # as beta's daemon sees it
    pump([beta], lambda: not there.exists() and not beta.p2p.has(seeded.pk))
    from models_app.models import FileRemoval

    assert not FileRemoval.objects.exists()
