from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pytest

from models_app.models import Status
from models_app.services import model_import_local
from tests.conftest import wait_for
from tests.torrents_app.helpers import pump, refreshed, status_on, torrent_bytes
from torrents_app.magnets import magnet_build
from torrents_app.models import Torrent
from torrents_app.session import torrent_info_hashes
from torrents_app.sharing import magnet_download_start

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
PIECE = 256 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def aria2(tmp_path):
    """Start aria2c (Debian's aria2 1.36) on a free port of 127.0.0.1 with DHT, LPD and PEX off."""
    started = []

    def start(torrent: Path, folder: Path, *extra: str) -> tuple[subprocess.Popen, int]:
        port = _free_port()
        args = ["aria2c", f"--dir={folder}", f"--listen-port={port}", "--enable-dht=false", "--enable-dht6=false",
                "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--summary-interval=0",
                "--console-log-level=warn", "--file-allocation=none", f"--log={tmp_path / f'aria2-{port}.log'}",
                "--log-level=info", *extra, str(torrent)]
        started.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Peers are asked only once it listens: libtorrent gives up on a peer after three refused
        # connections, which a busy machine's slow aria2c start (it checks the files first) could cost.
        wait_for(lambda: started[-1].poll() is None and _listening(port), what="aria2c listening", timeout=60)
        return started[-1], port

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _v1_torrent_file(path: Path, folder: Path) -> Path:
    target = folder / f"{path.name}.torrent"
    target.write_bytes(torrent_bytes(path, fmt="v1"))
    return target


def test_it_lets_aria2c_download_a_model_from_the_portal(settings, api, small_gguf, alpha, aria2, tmp_path):
    settings.NODE_NAME, settings.P2P_TORRENT_FORMAT = "alpha", "v1"
    model = model_import_local(path=small_gguf)
    pump([alpha], lambda: alpha.p2p.has(model.pk))
    torrent = tmp_path / "from-portal.torrent"
    torrent.write_bytes(api.get(f"/api/ai/models/{model.pk}/torrent").content)
    proc, port = aria2(torrent, tmp_path / "aria2-out", "--seed-time=0")
    alpha.connect_peer(model.pk, "127.0.0.1", port)  # aria2c ignores x.pe: the seeder calls it
    pump([alpha], lambda: proc.poll() is not None)
    assert proc.returncode == 0
    assert hashlib.sha256((tmp_path / "aria2-out" / small_gguf.name).read_bytes()).hexdigest() == model.sha256
    pump([alpha], lambda: refreshed(model).uploaded_bytes >= model.size)


def test_it_downloads_a_model_that_aria2c_seeds(settings, small_gguf, beta, aria2, tmp_path):
    torrent = _v1_torrent_file(small_gguf, tmp_path)
    _, port = aria2(torrent, small_gguf.parent, "--check-integrity=true", "--seed-ratio=0.0", "--seed-time=600")
    v1, _ = torrent_info_hashes(torrent.read_bytes())
    settings.NODE_NAME = "beta"
    model = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=v1, peers=[f"127.0.0.1:{port}"]))
    pump([beta], lambda: refreshed(model).status == Status.READY)
    pump([beta], lambda: refreshed(model).downloaded_bytes >= model.size)
    model = refreshed(model)
    assert model.sha256 == hashlib.sha256(small_gguf.read_bytes()).hexdigest()
    assert (model.file_name, model.gguf["name"]) == (small_gguf.name, "Tiny")


def test_it_rejects_corrupt_pieces_from_a_peer_and_still_verifies(settings, small_gguf, alpha, beta, aria2, tmp_path):
    settings.NODE_NAME, settings.P2P_TORRENT_FORMAT = "alpha", "v1"
    good = refreshed(model_import_local(path=small_gguf))
    pump([alpha], lambda: alpha.p2p.has(good.pk))
    corrupt = tmp_path / "corrupt" / small_gguf.name
    corrupt.parent.mkdir()
    data = bytearray(small_gguf.read_bytes())
    for offset in range(PIECE // 2, len(data), PIECE):
        data[offset] ^= 0xFF  # every piece but the header's differs from the torrent's hashes
    corrupt.write_bytes(bytes(data))
    torrent = tmp_path / "good.torrent"
    torrent.write_bytes(bytes(Torrent.objects.get(copy__model_id=good.pk).torrent_file))
    _, port = aria2(torrent, corrupt.parent, "--bt-seed-unverified=true", "--seed-ratio=0.0", "--seed-time=600")
    settings.NODE_NAME = "beta"
    copy = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=good.info_hash, peers=[f"127.0.0.1:{port}"]))
    on_beta = Torrent.objects.filter(copy__model_id=copy.pk, copy__node="beta")
    pump([beta], lambda: on_beta.get().failed_bytes > 0)
    beta.connect_peer(copy.pk, "127.0.0.1", alpha.listen_port())
    pump([alpha, beta], lambda: status_on(copy, "beta") == Status.READY)
    assert refreshed(copy).sha256 == good.sha256
    assert on_beta.get().failed_bytes >= PIECE
