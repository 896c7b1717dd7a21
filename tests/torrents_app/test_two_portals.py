from __future__ import annotations

from pathlib import Path

import pytest

from models_app.models import Status
from models_app.services import model_import_local
from tests.torrents_app.helpers import copy_on, pump, refreshed, status_on, torrent_bytes
from torrents_app.models import Torrent
from torrents_app.session import SessionConfig
from torrents_app.sharing import known_torrent, magnet_download_start

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _seeded(settings, engine, path: Path, fmt: str = "hybrid"):
    settings.NODE_NAME, settings.P2P_TORRENT_FORMAT = engine.node_name, fmt
    model = model_import_local(path=path)
    pump([engine], lambda: engine.p2p.has(model.pk))
    return refreshed(model)


@pytest.mark.parametrize("fmt", ["hybrid", "v2"])
def test_it_downloads_a_model_from_another_portal_by_magnet_and_seeds_it(settings, api, demo_gguf, alpha, beta, fmt):
    source = _seeded(settings, alpha, demo_gguf, fmt)
    settings.NODE_NAME = "beta"
    magnet = f"{source.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}"
    response = api.post("/api/ai/download", {"magnetUri": magnet}, format="json")
    assert response.status_code == 202
    # The group knows these info-hashes: the magnet makes a second copy of the same model, on beta.
    assert response.json()["result"]["id"] == source.pk
    assert [(c["node"], c["status"]) for c in response.json()["result"]["copies"]] == [("alpha", "ready"),
                                                                                      ("beta", "queued")]
    # Another portal's database would not hold the seed's .torrent: metadata and piece hashes come from the peer.
    Torrent.objects.filter(copy__model_id=source.pk, copy__node="beta").update(torrent_file=None)
    pump([alpha, beta], lambda: status_on(source, "beta") == Status.READY)
    model, copy = refreshed(source), copy_on(source, "beta")
    assert (model.sha256, model.size, model.file_name) == (source.sha256, source.size, demo_gguf.name)
    assert model.gguf["architecture"] == "llama"
    assert Path(copy.path, model.file_name).stat().st_size == source.size
    assert Path(copy.path) != Path(copy_on(source, "alpha").path)
    assert model.magnet_uri == source.magnet_uri
    torrents = Torrent.objects.filter(copy__model_id=source.pk)
    assert {bytes(t.torrent_file) for t in torrents} == {bytes(torrents.get(copy__node="alpha").torrent_file)}
    assert beta.p2p.stats(source.pk).is_seeding


def test_a_node_of_the_same_portal_starts_from_the_torrent_its_database_holds(settings, small_gguf, alpha, beta):
    source = _seeded(settings, alpha, small_gguf)
    settings.NODE_NAME = "beta"
    copy = magnet_download_start(magnet_uri=f"{source.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}")
    seed_torrent = bytes(Torrent.objects.get(copy__model_id=source.pk, copy__node="alpha").torrent_file)
    assert bytes(Torrent.objects.get(copy__model_id=copy.pk, copy__node="beta").torrent_file) == seed_torrent
    pump([alpha, beta], lambda: status_on(source, "beta") == Status.READY)
    assert refreshed(copy).sha256 == source.sha256

    # A stored .torrent that is not the one the magnet names is never handed out for it.
    other = torrent_bytes(small_gguf, fmt="v1")
    Torrent.objects.filter(copy__model_id=source.pk).update(torrent_file=other)
    assert known_torrent(v1=source.info_hash, v2=source.info_hash_v2) is None
    assert known_torrent(v1="", v2="") is None


def test_it_reports_stats_that_match_what_moved(settings, small_gguf, alpha, beta):
    source = _seeded(settings, alpha, small_gguf)
    settings.NODE_NAME = "beta"
    magnet_download_start(magnet_uri=f"{source.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}")
    pump([alpha, beta], lambda: status_on(source, "beta") == Status.READY)
    pump([alpha, beta], lambda: copy_on(source, "alpha").uploaded_bytes >= source.size
         and copy_on(source, "beta").downloaded_bytes >= source.size)
    seed, copy = copy_on(source, "alpha"), copy_on(source, "beta")
    assert copy.downloaded_bytes < source.size * 1.1
    assert seed.uploaded_bytes < source.size * 1.1
    assert seed.uploaded_bytes / source.size >= 1.0
    assert (copy.download_progress, copy.seeding) == (100, True)


def test_it_caps_uploads_to_lan_peers_too(settings, small_gguf, make_engine, beta):
    cap = 2 * 1024 * 1024
    capped = make_engine("alpha", SessionConfig(listen="127.0.0.1:0", dht=False, lsd=False, upload_limit=cap))
    source = _seeded(settings, capped, small_gguf)
    settings.NODE_NAME = "beta"
    magnet_download_start(magnet_uri=f"{source.magnet_uri}&x.pe=127.0.0.1:{capped.listen_port()}")
    rates = []
    pump([capped, beta], lambda: rates.append(copy_on(source, "alpha").upload_rate)
         or status_on(source, "beta") == Status.READY)
    assert 0 < max(rates) < cap * 1.5
