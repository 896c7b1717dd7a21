"""SPEC §8 between two independent portals: own databases, own folders, DHT bootstrapping from each other.

No tracker, no magnet handed over, no shared database: portal b learns that portal a seeds the Hub file
it is about to download from the sha256 record a published in the DHT.
"""
from __future__ import annotations

import json
import re
import urllib.request

import pytest
import redis

from tests.conftest import free_port, wait_for
from tests.fakes.fake_hub import FakeHub
from tests.torrents_app.ggufgen import make_gguf
from tests.web.portal import ARTIFACTS, TOKEN, manage, portal_env, portal_start

pytestmark = pytest.mark.slow
REPO = "swarm-org/Swarm-GGUF"
MODEL_ID = "swarm-org_Swarm-GGUF"
MIB = 1024 * 1024


def _api(portal, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{portal.url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["result"]


def _model(portal) -> dict:
    return _api(portal, "GET", f"/api/ai/models/{MODEL_ID}")


def _ready(portal) -> dict | None:
    model = _model(portal)
    assert model["status"] != "error", model["error"]
    return model if model["status"] == "ready" and model["seeding"] and model["magnetUri"] else None


@pytest.fixture
def swarm_file(tmp_path):
    return make_gguf(tmp_path / "swarm.Q4_0.gguf", 12 * MIB + 4321, name="Swarm")


@pytest.fixture
def hub(swarm_file):
    hub = FakeHub().start()
    hub.add_repo(REPO, {swarm_file.name: swarm_file, "README.md": b"# swarm\n"})
    hub.slow_bps = 3 * MIB  # a slow origin, as the Hub is beside a LAN
    yield hub
    hub.stop()


@pytest.fixture
def portals(tmp_path, redis_url, hub):
    """Portals a and b, each naming only the other as its DHT node."""
    p2p = {"a": free_port(), "b": free_port()}
    started = []
    for name, other, db in (("a", "b", 10), ("b", "a", 11)):
        url = redis_url.rsplit("/", 1)[0] + f"/{db}"
        redis.Redis.from_url(url).flushdb()
        (tmp_path / name).mkdir()
        env = portal_env(base=tmp_path / name, redis_url=url, hf_endpoint=hub.url)
        env.update({"NODE_NAME": f"portal-{name}", "P2P_LISTEN": f"127.0.0.1:{p2p[name]}", "P2P_DHT": "on",
                    "P2P_DHT_BOOTSTRAP": f"127.0.0.1:{p2p[other]}", "P2P_LSD": "off"})
        manage(env, "migrate", "--noinput", "-v", "0")
        ARTIFACTS.mkdir(exist_ok=True)
        log = ARTIFACTS / f"swarm-portal-{name}.log"
        log.write_text("")
        started.append(portal_start(env=env, log=log))
    yield started
    for portal in started:
        portal.stop()


def test_a_portal_downloads_a_hub_file_mostly_from_another_portal_that_seeds_it(portals, hub, swarm_file):
    a, b = portals
    size = swarm_file.stat().st_size
    _api(a, "POST", "/api/ai/download", {"url": f"{hub.url}/{REPO}"})
    seeded = wait_for(lambda: _ready(a), what="portal a's download, seeded", timeout=120)
    assert seeded["bytesFrom"]["http"] == size  # the first portal found nobody: plain HTTP from the Hub
    wait_for(lambda: "sha256 record is stored" in a.log.read_text(), what="a's sha256 record in the DHT",
             timeout=60)

    hub.reset_counters()
    _api(b, "POST", "/api/ai/download", {"url": f"{hub.url}/{REPO}"})
    fetched = wait_for(lambda: _ready(b), what="portal b's download, verified and seeded", timeout=120)
    assert fetched["sha256"] == seeded["sha256"]
    assert hub.bytes_served < size / 2, f"the Hub sent {hub.bytes_served} of {size} bytes to b"
    assert fetched["bytesFrom"]["http"] == 0
    # libtorrent's byte counters catch up once a second: the figures right after `ready` are refined then.
    wait_for(lambda: _model(b)["bytesFrom"]["peers"] >= size / 2, what="b's bytes from peers, at least half",
             timeout=10)
    assert fetched["infoHash"] == seeded["infoHash"]  # the very torrent a seeds
    assert "the DHT names a torrent of its sha256" in b.log.read_text()
    # a sees b among its peers' uploads: the bytes really went from a to b.
    wait_for(lambda: _model(a)["uploadedBytes"] >= size / 2, what="a's upload count", timeout=30)


def test_two_portals_that_start_the_same_hub_file_at_once_cost_the_hub_one_copy(portals, hub, swarm_file):
    """Neither seeds it yet: one claims the fetch in the DHT and downloads it over HTTP, the other waits for
    its sha256 record and takes the file from it."""
    a, b = portals
    size = swarm_file.stat().st_size
    for portal in (a, b):
        _api(portal, "POST", "/api/ai/download", {"url": f"{hub.url}/{REPO}"})
    # The one that waits says so, with how far the other is.
    note = wait_for(lambda: next((n for p in (a, b) if (n := _model(p)["note"])), None), what="a waiting note",
                    timeout=60)
    assert re.fullmatch(r"Waiting for another portal, which is downloading it from the Hub \(\d+%\)", note), note
    seen = []  # (a's copy, b's copy) as the pages show them, while the fetch goes on

    def both_ready():
        models = [_model(a), _model(b)]
        seen.append([(m["copies"][0]["status"], m["copies"][0]["downloadedBytes"]) for m in models])
        return (_ready(a), _ready(b)) if _ready(a) and _ready(b) else None

    done = wait_for(both_ready, what="both downloads, verified and seeded", timeout=180)
    assert done[0]["sha256"] == done[1]["sha256"] == hub.repo(REPO).files[swarm_file.name].sha256
    fetcher, waiter = sorted(done, key=lambda model: -model["bytesFrom"]["http"])
    assert fetcher["bytesFrom"]["http"] == size and waiter["bytesFrom"]["http"] == 0, (fetcher, waiter)
    waiting = a if waiter is done[0] else b
    # The relay: the waiter received part of the file while the fetcher was still downloading it.
    fetching_at, waiting_at = (0, 1) if waiting is b else (1, 0)
    during = [pair[waiting_at][1] for pair in seen if pair[fetching_at][0] == "downloading"]
    assert any(0 < got < size for got in during), seen
    # Refined once a second after `ready`, as libtorrent's counters catch up.
    wait_for(lambda: _model(waiting)["bytesFrom"]["peers"] >= size / 2,
             what="the waiter's bytes from peers, at least half", timeout=10)
    assert hub.bytes_served < 1.5 * size, f"the Hub sent {hub.bytes_served} bytes for a file of {size}"
    assert fetcher["note"] == waiter["note"] == ""
    logs = a.log.read_text() + b.log.read_text()
    assert "this node fetches it from the Hub for the swarm" in logs
    assert "another portal is fetching it from the Hub" in logs
    assert "relaying its Hub fetch to the portals that wait on it" in logs
    assert "all of it came through the relay of the portal fetching it from the Hub" in logs
