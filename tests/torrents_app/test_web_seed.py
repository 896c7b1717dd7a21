from __future__ import annotations

import libtorrent as lt
import pytest

from models_app.models import Status
from tests.fakes.fake_hub import FakeHub, resolve_url
from tests.torrents_app.conftest import LOOPBACK
from tests.torrents_app.helpers import pump, refreshed
from torrents_app.creation import torrent_create
from torrents_app.session import P2PSession
from torrents_app.sharing import magnet_download_start

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def hub():
    hub = FakeHub().start()
    yield hub
    hub.stop()


def test_it_downloads_from_the_hubs_web_seed_named_in_the_magnet(settings, hub, small_gguf, beta, tmp_path):
    hub.add_repo("org/tiny-GGUF", {small_gguf.name: small_gguf})
    created = torrent_create(content=small_gguf, fmt="hybrid", web_seed=resolve_url(hub, "org/tiny-GGUF", small_gguf.name))
    holder = P2PSession(LOOPBACK)  # knows the metadata, holds none of the data
    try:
        holder.add("meta", save_path=tmp_path / "empty", torrent=created.data)
        holder.handles["meta"].set_flags(lt.torrent_flags.upload_mode)
        settings.NODE_NAME = "beta"
        model = magnet_download_start(magnet_uri=f"{created.magnet}&x.pe=127.0.0.1:{holder.listen_port()}")
        pump([beta], lambda: refreshed(model).status == Status.READY)
    finally:
        holder.close()
    model = refreshed(model)
    assert hub.bytes_served >= small_gguf.stat().st_size
    assert model.magnet_uri == created.magnet  # ws= included: the next node can use the Hub too
