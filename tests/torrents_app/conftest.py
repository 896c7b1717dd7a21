from __future__ import annotations

from pathlib import Path

import pytest

from tests.torrents_app.ggufgen import make_gguf
from torrents_app.engine import TorrentEngine
from torrents_app.session import P2PSession, SessionConfig

LOOPBACK = SessionConfig(listen="127.0.0.1:0", dht=False, lsd=False)


@pytest.fixture(scope="session")
def small_gguf(tmp_path_factory) -> Path:
    return make_gguf(tmp_path_factory.mktemp("gguf") / "Tiny-Test.Q8_0.gguf", 6 * 1024 * 1024 + 12345, name="Tiny")


def _engine(name: str, folder: Path, config: SessionConfig = LOOPBACK):
    engine = TorrentEngine(node_name=name, config=config, torrent_dir=folder)
    engine.start()
    return engine


@pytest.fixture
def make_engine(tmp_path):
    engines = []

    def make(name: str, config: SessionConfig = LOOPBACK) -> TorrentEngine:
        engines.append(_engine(name, tmp_path / f"torrents-{name}", config))
        return engines[-1]

    yield make
    for engine in engines:
        engine.stop()


@pytest.fixture
def alpha(make_engine) -> TorrentEngine:
    return make_engine("alpha")


@pytest.fixture
def beta(make_engine) -> TorrentEngine:
    return make_engine("beta")


@pytest.fixture
def foreign():
    """Another BitTorrent client on 127.0.0.1 (a bare libtorrent session, no portal behind it)."""
    session = P2PSession(LOOPBACK)
    yield session
    session.close()
