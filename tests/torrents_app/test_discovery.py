from __future__ import annotations

import socket

import pytest

from models_app.models import Status
from models_app.services import model_import_local
from tests.torrents_app.helpers import pump, refreshed, status_on
from torrents_app.magnets import magnet_build
from torrents_app.session import SessionConfig
from torrents_app.sharing import magnet_download_start

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
WITH_LSD = SessionConfig(listen="127.0.0.1:0", dht=False, lsd=True)


def test_it_finds_the_other_portal_on_the_lan_by_local_service_discovery(settings, small_gguf, make_engine):
    alpha, beta = make_engine("alpha", WITH_LSD), make_engine("beta", WITH_LSD)
    settings.NODE_NAME = "alpha"
    source = refreshed(model_import_local(path=small_gguf))
    pump([alpha], lambda: alpha.p2p.has(source.pk))
    settings.NODE_NAME = "beta"
    copy = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=source.info_hash, info_hash_v2=source.info_hash_v2))
    pump([alpha, beta], lambda: status_on(copy, "beta") == Status.READY)
    assert refreshed(copy).sha256 == source.sha256


def _free_port() -> int:
    with socket.socket(type=socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_finds_the_other_portal_through_dht_alone(settings, small_gguf, make_engine):
    port_a = _free_port()
    # alpha's only bootstrap node is a dead port (no internet routers); beta bootstraps from alpha.
    alpha = make_engine("alpha", SessionConfig(listen=f"127.0.0.1:{port_a}", dht=True, lsd=False,
                                               dht_bootstrap="127.0.0.1:9"))
    beta = make_engine("beta", SessionConfig(listen="127.0.0.1:0", dht=True, lsd=False,
                                             dht_bootstrap=f"127.0.0.1:{port_a}"))
    settings.NODE_NAME = "alpha"
    source = refreshed(model_import_local(path=small_gguf))
    pump([alpha, beta], lambda: alpha.p2p.has(source.pk))
    settings.NODE_NAME = "beta"
    copy = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=source.info_hash, info_hash_v2=source.info_hash_v2))
    pump([alpha, beta], lambda: status_on(copy, "beta") == Status.READY, timeout=120)
    assert refreshed(copy).sha256 == source.sha256
