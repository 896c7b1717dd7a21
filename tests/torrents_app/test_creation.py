from __future__ import annotations

import os
import shutil
from pathlib import Path

import libtorrent as lt
import pytest

from models_app.models import ModelFile
from torrents_app import creation
from torrents_app.models import Torrent
from torrents_app.services import torrent_create_for_model
from tests.factories import model_make

P = 256 * 1024
FLAGS = {"hybrid": 0, "v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}


def libtorrent_reference(path: Path, fmt: str, web_seed: str = "") -> bytes:
    files = lt.list_files(str(path), flags=lt.create_torrent.no_attributes)
    maker = lt.create_torrent(files, creation.piece_size_for(sum(f.size for f in files)), flags=FLAGS[fmt])
    lt.set_piece_hashes(maker, str(path.parent))
    maker.set_creation_date(0)
    if web_seed:
        maker.add_url_seed(web_seed)
    return lt.bencode(maker.generate())


def random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("fmt", ["hybrid", "v1", "v2"])
@pytest.mark.parametrize("size", [1, 16 * 1024, 16 * 1024 + 1, P - 1, P, P + 1, 3 * P + 5000, 8 * P])
def test_it_creates_the_same_bytes_as_libtorrents_own_hashing(tmp_path, fmt, size):
    path = random_file(tmp_path / "model.Q4_0.gguf", size)
    ours = creation.torrent_create(content=path, fmt=fmt, web_seed="https://hub.example/o/r/resolve/abc/model.gguf")
    assert ours.data == libtorrent_reference(path, fmt, "https://hub.example/o/r/resolve/abc/model.gguf")


@pytest.mark.parametrize("fmt", ["hybrid", "v2"])
def test_it_creates_split_model_torrents_like_libtorrent(tmp_path, fmt):
    folder = tmp_path / "Q4_K_M"
    for n, size in ((1, 3 * P + 7), (2, 2 * P), (3, 100)):
        random_file(folder / f"m-0000{n}-of-00003.gguf", size)
    assert creation.torrent_create(content=folder, fmt=fmt).data == libtorrent_reference(folder, fmt)


def test_it_gives_the_same_file_the_same_torrent_wherever_and_whenever_it_lies(tmp_path):
    first = random_file(tmp_path / "a" / "model.gguf", 2 * P + 99)
    second = tmp_path / "b" / "model.gguf"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    os.utime(second, (1, 1))
    second.chmod(0o755)
    one, two = creation.torrent_create(content=first), creation.torrent_create(content=second)
    assert (one.data, one.info_hash, one.info_hash_v2) == (two.data, two.info_hash, two.info_hash_v2)
    assert len(one.info_hash) == 40 and len(one.info_hash_v2) == 64


def test_it_picks_the_piece_size_from_the_file_size_only():
    mib = 1024 * 1024
    sizes = [1, 98_362_432, 511 * mib, 512 * mib, 1024 * mib, 7 * 1024 ** 3, 200 * 1024 ** 3]
    pieces = [creation.piece_size_for(s) for s in sizes]
    assert pieces == [P, P, mib, 2 * mib, 4 * mib, 16 * mib, 32 * mib]
    # Fewer than 512 pieces (libtorrent's fast magnet path for hybrid torrents) up to the largest piece.
    assert all(-(-s // p) <= 511 for s, p in zip(sizes[:-1], pieces[:-1], strict=True))


def test_it_builds_a_magnet_with_both_hashes_the_name_the_size_and_the_web_seed(tmp_path):
    path = random_file(tmp_path / "my model.gguf", P + 1)
    made = creation.torrent_create(content=path, web_seed="https://hf.example/o/r/resolve/c0ffee/my%20model.gguf")
    assert made.magnet == (f"magnet:?xt=urn:btih:{made.info_hash}&xt=urn:btmh:1220{made.info_hash_v2}"
                           f"&dn=my%20model.gguf&xl={P + 1}&ws=https%3A%2F%2Fhf.example%2Fo%2Fr%2Fresolve%2Fc0ffee"
                           "%2Fmy%2520model.gguf")
    parsed = lt.parse_magnet_uri(made.magnet)
    assert (str(parsed.info_hashes.v1), str(parsed.info_hashes.v2)) == (made.info_hash, made.info_hash_v2)
    assert list(parsed.url_seeds) == ["https://hf.example/o/r/resolve/c0ffee/my%20model.gguf"]


def test_it_hashes_for_sha256_and_torrent_in_one_read_of_the_file(tmp_path):
    path = random_file(tmp_path / "model.gguf", 16 * 1024 * 1024 + 5)
    before = _bytes_read()
    digest = creation.file_hashes(path, piece_size=creation.piece_size_for(path.stat().st_size)).sha256
    made = creation.torrent_create(content=path)
    read = _bytes_read() - before
    assert digest == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert made.size <= read < 1.05 * made.size


def _bytes_read() -> int:
    line = next(ln for ln in Path("/proc/self/io").read_text().splitlines() if ln.startswith("rchar:"))
    return int(line.split()[1])


def test_it_refuses_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="v3"):
        creation.torrent_create(content=random_file(tmp_path / "m.gguf", 10), fmt="v3")


@pytest.mark.django_db
def test_it_records_the_torrent_and_magnet_of_a_local_model_without_a_web_seed(tmp_path, settings):
    settings.P2P_TORRENT_FORMAT = "v1"
    path = random_file(tmp_path / "local" / "mine.gguf", P + 3)
    model = model_make(id="mine", name="mine", source="local", file_name=path.name, size=P + 3, status="ready",
                       path=str(path.parent))
    ModelFile.objects.create(model=model, name=path.name, size=P + 3)
    torrent_create_for_model(model_id="mine", node=settings.NODE_NAME)
    model.refresh_from_db()
    torrent = Torrent.objects.get(copy__model=model)
    assert (torrent.copy.node, torrent.desired, torrent.info_hash_v2, model.info_hash_v2) == (settings.NODE_NAME, "seed", "", "")
    assert bytes(torrent.torrent_file) == libtorrent_reference(path, "v1")
    assert model.magnet_uri == f"magnet:?xt=urn:btih:{torrent.info_hash_v1}&dn=mine.gguf&xl={P + 3}"
    assert model.web_seed == ""


@pytest.mark.django_db
def test_a_node_reachable_from_other_machines_puts_itself_in_its_magnets(tmp_path, settings):
    from aiportal.nodes import node_heartbeat

    settings.P2P_TORRENT_FORMAT, settings.NODE_ADDRESS = "v1", "192.168.1.20"
    node_heartbeat(name=settings.NODE_NAME, address="192.168.1.20", facts={"p2p_port": 51413})
    path = random_file(tmp_path / "local" / "mine.gguf", P + 3)
    model = model_make(id="mine", name="mine", source="local", file_name=path.name, size=P + 3, status="ready",
                       path=str(path.parent))
    ModelFile.objects.create(model=model, name=path.name, size=P + 3)
    torrent_create_for_model(model_id="mine", node=settings.NODE_NAME)
    model.refresh_from_db()
    assert model.magnet_uri.endswith("&x.pe=192.168.1.20:51413")  # the port its daemon listens on
