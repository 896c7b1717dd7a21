from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import libtorrent as lt
import pytest

from models_app.models import AIModel, Status
from models_app.services import model_delete
from tests.torrents_app.ggufgen import make_gguf
from tests.torrents_app.helpers import offer as _offer
from tests.torrents_app.helpers import pump, refreshed, torrent_bytes
from torrents_app.magnets import magnet_build
from torrents_app.session import torrent_files, torrent_info_hashes
from torrents_app.sharing import magnet_download_start

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
PIECE = 256 * 1024


def _start(settings, magnet: str) -> AIModel:
    settings.NODE_NAME = "beta"
    return magnet_download_start(magnet_uri=magnet)


def test_it_refuses_a_torrent_without_gguf_and_cleans_up(settings, foreign, beta, tmp_path):
    offered = tmp_path / "offered" / "notes.txt"
    offered.parent.mkdir()
    offered.write_bytes(b"not a model\n" * 50000)
    model = _start(settings, _offer(foreign, torrent_bytes(offered), offered.parent))
    pump([beta], lambda: refreshed(model).status == Status.ERROR)
    model = refreshed(model)
    assert "Refused: the torrent holds no GGUF model file (notes.txt)" in model.error
    assert model.lead.torrent.error.startswith("not_gguf")
    assert not Path(model.lead.path).exists() and not beta.p2p.has(model.pk)


def test_it_refuses_a_file_that_only_pretends_to_be_gguf_and_removes_it(settings, foreign, beta, tmp_path):
    offered = tmp_path / "offered" / "fake.gguf"
    offered.parent.mkdir()
    offered.write_bytes(b"PK\x03\x04" + bytes(900_000))
    model = _start(settings, _offer(foreign, torrent_bytes(offered), offered.parent))
    pump([beta], lambda: refreshed(model).status == Status.ERROR)
    model = refreshed(model)
    assert "Refused: fake.gguf is not a GGUF model file" in model.error
    assert not Path(model.lead.path).exists() and not beta.p2p.has(model.pk)


def _escaping_torrent(content: bytes) -> bytes:
    pieces = b"".join(hashlib.sha1(content[i:i + PIECE]).digest() for i in range(0, len(content), PIECE))
    info = {b"name": b"../../outside", b"piece length": PIECE, b"pieces": pieces,
            b"files": [{b"length": len(content), b"path": [b"..", b"..", b"..", b"evil.gguf"]}]}
    return lt.bencode({b"info": info})


def test_it_keeps_files_inside_the_model_folder_whatever_the_torrent_names(settings, foreign, beta, tmp_path):
    content = make_gguf(tmp_path / "src.gguf", 700_000).read_bytes()
    blob = _escaping_torrent(content)
    seeded = tmp_path / "offered"
    (seeded / torrent_files(blob)[0].path).parent.mkdir(parents=True)
    (seeded / torrent_files(blob)[0].path).write_bytes(content)
    model = _start(settings, _offer(foreign, blob, seeded))
    pump([beta], lambda: refreshed(model).status == Status.READY)
    model = refreshed(model)
    landed = Path(model.lead.path, model.file_name)
    assert landed.read_bytes() == content
    assert landed.resolve().is_relative_to(settings.AI_MODEL_DIR.resolve())
    assert [p for p in tmp_path.rglob("*.gguf") if not p.is_relative_to(seeded) and p.name != "src.gguf"] == [landed]


def test_it_refuses_a_download_that_turns_out_too_big_for_the_disk(settings, foreign, beta, tmp_path, monkeypatch):
    (tmp_path / "offered").mkdir()
    offered = make_gguf(tmp_path / "offered" / "big.gguf", 2_000_000)
    magnet = _offer(foreign, torrent_bytes(offered), offered.parent)  # no xl: the size comes with the metadata
    model = _start(settings, magnet)
    free = shutil.disk_usage(settings.AI_MODEL_DIR)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free._replace(free=1_000_000))
    pump([beta], lambda: refreshed(model).status == Status.ERROR)
    model = refreshed(model)
    assert "Not enough disk space: 2000" in model.error and "1000000 free" in model.error
    assert model.lead.torrent.error.startswith("insufficient_storage")
    assert not Path(model.lead.path).exists() and not beta.p2p.has(model.pk)


def test_it_refuses_content_whose_sha256_differs_from_the_known_one(settings, foreign, beta, small_gguf, tmp_path):
    magnet = _offer(foreign, torrent_bytes(small_gguf), small_gguf.parent)
    settings.NODE_NAME = "beta"
    model = magnet_download_start(magnet_uri=magnet, metadata={"name": "Expected", "sha256": "ab" * 32})
    pump([beta], lambda: refreshed(model).status == Status.ERROR)
    model = refreshed(model)
    assert f"{small_gguf.name} has sha256" in model.error and f"expected {'ab' * 32}" in model.error
    assert not beta.p2p.has(model.pk)


def test_it_carries_on_after_a_restart_that_came_before_the_metadata(settings, foreign, beta, small_gguf, tmp_path):
    blob = torrent_bytes(small_gguf)
    v1, v2 = torrent_info_hashes(blob)
    settings.NODE_NAME = "beta"
    magnet = magnet_build(info_hash_v1=v1, info_hash_v2=v2, peers=[f"127.0.0.1:{foreign.listen_port()}"])
    model = magnet_download_start(magnet_uri=magnet)  # the peer does not have it yet
    pump([beta], lambda: beta.p2p.has(model.pk))
    beta.stop()
    assert beta.resume.path(model.pk).exists()
    foreign.add("late", save_path=small_gguf.parent, torrent=blob, seed_mode=True)
    beta.start()
    pump([beta], lambda: refreshed(model).status == Status.READY)
    assert refreshed(model).sha256 == hashlib.sha256(small_gguf.read_bytes()).hexdigest()


def test_it_drops_a_download_whose_model_was_deleted(settings, foreign, beta, small_gguf):
    v1, v2 = torrent_info_hashes(torrent_bytes(small_gguf))
    settings.NODE_NAME = "beta"
    model = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=v1, info_hash_v2=v2, size=1000,
                                                          peers=[f"127.0.0.1:{foreign.listen_port()}"]))
    pump([beta], lambda: beta.p2p.has(model.pk))
    model_delete(model_id=model.pk, delete_files=True)
    pump([beta], lambda: not beta.p2p.has(model.pk))
    assert not AIModel.objects.filter(pk=model.pk).exists() and not beta.resume.path(model.pk).exists()
