"""Two models of one node holding the same bytes share one info-hash: one torrent, seeded while either wants it."""
from __future__ import annotations

import shutil

import pytest

from models_app.models import AIModel, Status
from models_app.selectors import model_to_dict
from models_app.services import model_delete, model_import_local
from tests.torrents_app.helpers import copy_on, pump, refreshed, status_on
from torrents_app.sharing import magnet_download_start, torrent_set_seeding
from tests.factories import model_make

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def twins(settings, tmp_path, small_gguf, alpha):
    """The same file imported twice (like the local demo and a Hub download of it); (holder, rider)."""
    settings.NODE_NAME = "alpha"
    models = []
    for model_id in ("twin-a", "twin-b"):
        folder = tmp_path / "library" / model_id
        folder.mkdir(parents=True)
        shutil.copy(small_gguf, folder / small_gguf.name)
        models.append(model_import_local(path=folder / small_gguf.name, model_id=model_id))
    assert models[0].info_hash == models[1].info_hash
    pump([alpha], lambda: len(alpha.p2p.tracked()) == 1 and len(alpha.riders) == 1)
    rider = next(iter(alpha.riders))
    return AIModel.objects.get(pk=alpha.riders[rider]), AIModel.objects.get(pk=rider)


def _fetch(alpha, beta, settings, model: AIModel) -> AIModel:
    """Download `model` by magnet on node beta, with alpha as its only peer."""
    settings.NODE_NAME, settings.AI_MODEL_DIR = "beta", settings.AI_MODEL_DIR / "beta"
    copy = magnet_download_start(magnet_uri=f"{model.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}")
    pump([alpha, beta], lambda: status_on(copy, "beta") in {Status.READY, Status.ERROR})
    return refreshed(copy)


def test_it_reports_both_models_seeding_one_shared_torrent(twins, alpha):
    holder, rider = twins
    pump([alpha], lambda: alpha.p2p.stats(holder.pk).is_seeding)
    assert alpha.p2p.tracked() == [holder.pk] and not alpha.p2p.is_paused(holder.pk)
    assert (model_to_dict(refreshed(holder))["seeding"], model_to_dict(refreshed(rider))["seeding"]) == (True, True)


def test_it_hands_the_torrent_over_when_its_holder_pauses(twins, alpha, beta, settings):
    holder, rider = twins
    torrent_set_seeding(model_id=holder.pk, enabled=False)
    pump([alpha], lambda: alpha.p2p.tracked() == [rider.pk])
    assert not alpha.p2p.is_paused(rider.pk)
    assert (model_to_dict(refreshed(holder))["seeding"], model_to_dict(refreshed(rider))["seeding"]) == (False, True)
    copy = _fetch(alpha, beta, settings, holder)
    assert (status_on(copy, "beta"), copy.sha256) == (Status.READY, holder.sha256)
    pump([alpha], lambda: copy_on(rider, "alpha").uploaded_bytes >= holder.size)  # the bytes went out from the rider


def test_it_pauses_the_shared_torrent_only_when_no_model_wants_it(twins, alpha):
    holder, rider = twins
    torrent_set_seeding(model_id=holder.pk, enabled=False)
    pump([alpha], lambda: alpha.p2p.tracked() == [rider.pk])
    torrent_set_seeding(model_id=rider.pk, enabled=False)
    pump([alpha], lambda: alpha.p2p.is_paused(rider.pk))
    torrent_set_seeding(model_id=holder.pk, enabled=True)
    pump([alpha], lambda: alpha.p2p.tracked() == [holder.pk] and not alpha.p2p.is_paused(holder.pk))
    assert (model_to_dict(refreshed(holder))["seeding"], model_to_dict(refreshed(rider))["seeding"]) == (True, False)


def test_it_keeps_seeding_from_the_other_model_when_the_holder_is_deleted(twins, alpha, beta, settings):
    holder, rider = twins
    model_delete(model_id=holder.pk)
    pump([alpha], lambda: alpha.p2p.tracked() == [rider.pk])
    copy = _fetch(alpha, beta, settings, rider)
    assert (status_on(copy, "beta"), copy.sha256) == (Status.READY, rider.sha256)


@pytest.mark.parametrize("status", [Status.QUEUED, Status.DOWNLOADING, Status.VERIFYING, Status.ERROR])
def test_it_does_not_report_seeding_for_a_model_without_complete_files(status):
    model = model_make(id=f"not-{status}", name="x", status=status, seeding=True)
    assert model_to_dict(model)["seeding"] is False
