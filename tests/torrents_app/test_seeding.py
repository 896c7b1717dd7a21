from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.utils import timezone

from models_app.inference import transitions
from models_app.models import ServedInstance, ServeState, Status
from models_app.selectors import model_get, model_to_dict
from models_app.services import model_delete, model_import_local
from tests.torrents_app.ggufgen import make_gguf
from tests.torrents_app.helpers import copy_on, pump, refreshed, status_on
from torrents_app.sharing import magnet_download_start, torrent_set_seeding

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def local(settings, tmp_path):
    settings.NODE_NAME = "alpha"

    def make(model_id: str):
        folder = tmp_path / "library" / model_id
        folder.mkdir(parents=True)
        return refreshed(model_import_local(path=make_gguf(folder / f"{model_id}.gguf", 1024 * 1024, name=model_id)))

    return make


def test_it_seeds_every_ready_model_of_its_node(local, alpha):
    first, second = local("first"), local("second")
    pump([alpha], lambda: alpha.p2p.has(first.pk) and alpha.p2p.has(second.pk))
    assert alpha.p2p.stats(first.pk).is_seeding and alpha.p2p.stats(second.pk).is_seeding


def test_it_leaves_other_nodes_models_alone(local, beta):
    model = local("theirs")
    beta.step()
    assert not beta.p2p.has(model.pk)


def test_it_pauses_and_resumes_seeding_on_request(local, alpha):
    model = local("pausable")
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    paused = torrent_set_seeding(model_id=model.pk, enabled=False)
    pump([alpha], lambda: alpha.p2p.is_paused(model.pk))
    assert (paused.seeding, refreshed(model).lead.torrent.desired) == (False, "pause")
    torrent_set_seeding(model_id=model.pk, enabled=True)
    pump([alpha], lambda: not alpha.p2p.is_paused(model.pk))


def test_it_stops_seeding_a_model_that_was_removed(local, alpha):
    model = local("doomed")
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    alpha.stop()
    alpha.start()
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    assert alpha.resume.path(model.pk).exists()
    model_delete(model_id=model.pk)
    pump([alpha], lambda: not alpha.p2p.has(model.pk))
    assert not alpha.resume.path(model.pk).exists()


@pytest.mark.parametrize(("damage", "says"), [
    (lambda path: path.unlink(), "is missing from"),
    (lambda path: os.truncate(path, 1000), "is truncated: 1000 of"),
])
def test_it_notices_a_damaged_model_file_at_start_and_seeds_the_others(local, alpha, damage, says):
    broken, healthy = local("broken"), local("healthy")
    damage(Path(broken.lead.path, broken.file_name))
    pump([alpha], lambda: alpha.p2p.has(healthy.pk) and refreshed(broken).status == Status.ERROR)
    broken = refreshed(broken)
    assert says in broken.error and broken.file_name in broken.error
    assert not alpha.p2p.has(broken.pk)
    assert alpha.p2p.stats(healthy.pk).is_seeding


def test_it_puts_a_model_in_error_when_its_file_vanishes_while_seeding(local, alpha, beta, settings):
    model = local("vanishing")
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    Path(model.lead.path, model.file_name).unlink()
    settings.NODE_NAME = "beta"
    magnet_download_start(magnet_uri=f"{model.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}")
    pump([alpha, beta], lambda: status_on(model, "alpha") == Status.ERROR)
    error = copy_on(model, "alpha").error
    assert "Disk error on" in error and model.file_name in error
    assert not alpha.p2p.has(model.pk)


def test_it_keeps_seeding_a_model_whose_llama_server_failed(local, alpha):
    model = local("crashy")
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    instance = ServedInstance.objects.create(model=model, node="alpha", desired="serving", state=ServeState.SERVING)
    for _ in range(transitions.MAX_RESTARTS + 2):  # until it gives up
        transitions.mark_failed(ServedInstance.objects.get(pk=instance.pk), message="killed by SIGKILL", retry=True,
                                now=timezone.now())

    for _ in range(5):
        alpha.step()
    assert alpha.p2p.has(model.pk) and alpha.p2p.stats(model.pk).is_seeding
    shown = model_to_dict(model_get(model_id=model.pk))
    assert (shown["status"], shown["seeding"], shown["copies"][0]["status"]) == ("ready", True, "ready")
    assert shown["instances"][0]["status"] == "error"
    assert "killed by SIGKILL" in shown["instances"][0]["error"]
