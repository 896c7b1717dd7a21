"""A finished download's .torrent is rebuilt from its resume data, piece layers included."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.torrents_app.conftest import LOOPBACK
from tests.torrents_app.helpers import offer
from torrents_app.creation import torrent_create, torrent_from_resume
from torrents_app.session import P2PSession, alert_resume_bytes

P = 256 * 1024
NO_SERVER = "http://127.0.0.1:9/o/r/resolve/abc/"  # nothing listens: the web seed never answers


def _random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


def _download_and_save_resume(foreign, magnet: str, folder: Path) -> bytes:
    leecher = P2PSession(LOOPBACK)
    try:
        leecher.add("copy", save_path=folder, magnet=magnet)
        deadline = time.monotonic() + 60
        while not (leecher.has_metadata("copy") and leecher.is_complete("copy")):
            assert time.monotonic() < deadline, "the download did not finish"
            foreign.pop_alerts()
            time.sleep(0.02)
        leecher.save_resume("copy")
        while time.monotonic() < deadline:
            for name, key, alert in leecher.pop_alerts():
                if name == "save_resume_data_alert" and key == "copy":
                    return alert_resume_bytes(alert)
            time.sleep(0.02)
        raise AssertionError("no resume data came")
    finally:
        leecher.close()


@pytest.mark.parametrize("fmt", ["hybrid", "v2", "v1"])
@pytest.mark.parametrize("sizes", [(40 * P + 12345,), (3 * P + 7, 2 * P, 100)], ids=["one file", "split parts"])
def test_it_rebuilds_the_exact_torrent_a_peer_seeded(tmp_path, foreign, fmt, sizes):
    offered = tmp_path / "offered" / "Model-GGUF"
    for n, size in enumerate(sizes, 1):
        _random(offered / f"Model-0000{n}-of-0000{len(sizes)}.gguf", size)
    content = offered / "Model-00001-of-00001.gguf" if len(sizes) == 1 else offered
    web_seed = NO_SERVER + ("Model-00001-of-00001.gguf" if len(sizes) == 1 else "")
    created = torrent_create(content=content, fmt=fmt, web_seed=web_seed)
    magnet = offer(foreign, created.data, content.parent) + "&ws=" + web_seed
    resume = _download_and_save_resume(foreign, magnet, tmp_path / "copy")
    assert torrent_from_resume(resume) == created.data


def test_it_gives_up_on_resume_data_whose_tree_does_not_add_up(tmp_path, foreign):
    import libtorrent as lt

    _random(tmp_path / "offered" / "m.gguf", 40 * P + 1)
    created = torrent_create(content=tmp_path / "offered" / "m.gguf")
    resume = _download_and_save_resume(foreign, offer(foreign, created.data, tmp_path / "offered"), tmp_path / "copy")
    data = lt.bdecode(resume)
    hashes = bytearray(data[b"trees"][0][b"hashes"])
    hashes[40] ^= 0xFF  # one leaf hash flipped
    data[b"trees"][0][b"hashes"] = bytes(hashes)
    assert torrent_from_resume(lt.bencode(data)) is None
    assert torrent_from_resume(b"not bencoded") is None
