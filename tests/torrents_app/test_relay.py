"""SPEC §8, the relay: the download job's half. While another portal fetches the file from the Hub, this
node's daemon leaves each segment it received in the relay's folder, marked complete; the job joins them
into its partial file, and the Hub's bytes decide at the end.

Here the daemon's side is played by the test: it writes the segments (good, false, or only some) and the
waiting row's state, as the engine would. The engines' side runs in test_swarm_portals and bench/swarm.py.
"""
from __future__ import annotations

import hashlib
import shutil
import time
import types
from pathlib import Path

import pytest

from aiportal.nodes import node_heartbeat
from models_app.hub import client
from models_app.hub.runner import download_run
from models_app.hub.services import download_start
from models_app.models import AIModel, Status
from tests.factories import model_make
from tests.fakes.fake_hub import FakeHub
from torrents_app import creation, node_services, swarm
from torrents_app import services as torrent_services
from torrents_app.relay import Relay, Segments, relay_dir, segment_done, segment_name

pytestmark = pytest.mark.django_db
MIB = 1024 * 1024
REPO = "org/Tiny-GGUF"
NODE = "beta"


@pytest.fixture
def hub(settings, small_gguf):
    hub = FakeHub().start()
    settings.HF_ENDPOINT, settings.HF_TOKEN, settings.NODE_NAME = hub.url, None, NODE
    client._info_cache.clear()
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    node_heartbeat(name=NODE, address="127.0.0.1", facts={
        "p2p_port": 6881, "disk_free": 50 * 2**30, "model_dir": str(settings.AI_MODEL_DIR), "cpus": 2,
        "memory_total": 8 * 2**30, "memory_free": 4 * 2**30})
    yield hub
    hub.stop()


def _relayed(small_gguf: Path, *, count: int | None = None, spoil: bool = False) -> str:
    """Leave the first `count` segments (all by default) where the daemon leaves them; returns the sha256."""
    data = small_gguf.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    folder = relay_dir(NODE, sha256)
    folder.mkdir(parents=True)
    segments = swarm.relay_segments(len(data))
    for index, (offset, length) in enumerate(segments[:count]):
        part = bytearray(data[offset:offset + length])
        if spoil and index == 1:
            part[100] ^= 0xFF  # what a portal that lies would send: its own pieces, false bytes
        (folder / segment_name(sha256, index)).write_bytes(part)
        segment_done(folder, index).touch()
    return sha256


def _start_and_run(monkeypatch, hub, *, missing_after: int | None = None):
    model = download_start(url=f"{hub.url}/{REPO}", node=NODE)
    looks = []

    def pause(seconds: float) -> None:
        looks.append(seconds)
        if missing_after is not None and len(looks) > missing_after:
            node_services.torrent_record_missing(model_id=model.pk, node=NODE, reason="the relay stopped")
        else:
            node_services.torrent_await(model_id=model.pk, node=NODE, done=1, total=model.size)
        time.sleep(seconds)

    monkeypatch.setattr(torrent_services, "pause", pause)
    return model, download_run(model_id=model.pk)


def _on_disk(model: AIModel) -> bytes:
    folder = Path(model.lead.path)
    assert not list(folder.glob(f"*{client.PARTIAL_SUFFIX}"))
    return (folder / model.file_name).read_bytes()


def test_a_file_the_relay_brought_whole_is_verified_and_costs_the_hub_nothing(monkeypatch, hub, small_gguf, caplog):
    _relayed(small_gguf)
    hub.reset_counters()
    caplog.set_level("INFO", logger="aiportal.torrents")
    model, result = _start_and_run(monkeypatch, hub)
    assert result == "ready"
    model, size = AIModel.objects.get(pk=model.pk), small_gguf.stat().st_size
    assert model.status == Status.READY and _on_disk(model) == small_gguf.read_bytes()
    assert (model.peer_bytes, model.http_bytes, model.web_seed_bytes) == (size, 0, 0)
    assert hub.bytes_served < MIB, f"the Hub sent {hub.bytes_served} bytes"  # metadata only, no file body
    assert "all of it came through the relay" in caplog.text


def test_a_relay_that_stops_half_way_is_resumed_from_the_hub_where_it_stopped(monkeypatch, hub, small_gguf, caplog):
    _relayed(small_gguf, count=3)
    hub.reset_counters()
    caplog.set_level("INFO", logger="aiportal.torrents")
    model, result = _start_and_run(monkeypatch, hub, missing_after=3)
    assert result == "ready"
    model, size = AIModel.objects.get(pk=model.pk), small_gguf.stat().st_size
    relayed = 3 * swarm.relay_segment_size(size)
    assert model.status == Status.READY and _on_disk(model) == small_gguf.read_bytes()
    assert (model.peer_bytes, model.http_bytes) == (relayed, size - relayed)
    assert size - relayed <= hub.bytes_served < size, f"the Hub sent {hub.bytes_served} bytes"
    assert f"downloading it from the Hub, from byte {relayed} on" in caplog.text


def test_false_segments_cost_a_download_from_the_hub_not_the_file(monkeypatch, hub, small_gguf, caplog):
    _relayed(small_gguf, spoil=True)
    caplog.set_level("INFO")
    model, result = _start_and_run(monkeypatch, hub)
    assert result == "ready"
    model, size = AIModel.objects.get(pk=model.pk), small_gguf.stat().st_size
    assert model.status == Status.READY and model.error == ""
    assert _on_disk(model) == small_gguf.read_bytes()
    assert model.sha256 == hashlib.sha256(small_gguf.read_bytes()).hexdigest()
    assert (model.peer_bytes, model.http_bytes) == (0, size)
    assert "Checksum mismatch" in caplog.text and "Fetching it from the Hub instead" in caplog.text


def test_relay_items_are_ours_only_when_well_formed():
    total = 256 * MIB + 192
    assert swarm.relay_segment_size(total) == 8 * MIB and len(swarm.relay_segments(total)) == 33
    assert swarm.relay_segment_size(6 * MIB) == MIB
    assert len(swarm.relay_segments(100 * 2**30)) <= swarm.RELAY_MAX_SEGMENTS
    hashes = [bytes([i]) * 20 for i in range(33)]  # a space (0x20) among them must not split the value
    value = swarm.relay_value(total=total, endpoint="10.0.0.5:6881", info_hashes=hashes)
    assert len(value) < 1000
    assert swarm.relay_parse(value) == (total, "10.0.0.5:6881", hashes)
    assert swarm.relay_parse(swarm.relay_value(total=total, endpoint="", info_hashes=[])) == (total, "", [])
    for bad in (b"", b"aiportal1-relay", b"aiportal1-relay x - ", b"aiportal1-relay 10 - " + bytes(40),
                b"aiportal1-relay 100 ; " + bytes(20), b"aiportal1-relay 100 - " + bytes(19),
                b"aiportal1 " + value[16:]):
        assert swarm.relay_parse(bad) is None, bad
    with pytest.raises(ValueError):
        swarm.relay_value(total=total, endpoint="", info_hashes=[b"short"])
    assert swarm.is_relay_salt(swarm.relay_salt("ab" * 32)) and not swarm.is_relay_salt(swarm.claim_salt("ab" * 32))


def test_a_node_without_room_for_the_segments_does_not_relay_and_says_why(settings, monkeypatch, caplog):
    """Segments take as much room again as the file: a node that lacks it waits for the record (or, fetching,
    relays nothing), and says so once, not at every pass."""
    settings.NODE_NAME = NODE
    sha256 = "cd" * 32
    model = model_make(id="org_Big-GGUF", name="Big", file_name="big.gguf", size=10 * 2**30, sha256=sha256,
                       status="downloading", path=str(settings.AI_MODEL_DIR / "org_Big-GGUF"))
    usage = shutil.disk_usage(settings.AI_MODEL_DIR)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=15 * 2**30))
    relay = Relay(p2p=None, node_name=NODE, clock=time.monotonic, named_dht=True)  # no session: nothing is added
    caplog.set_level("INFO", logger="aiportal.torrents")
    for _ in range(3):
        relay.once(fetching={}, waiting={model.pk: sha256})
    assert relay.files == {} and not relay_dir(NODE, sha256).exists()
    assert caplog.text.count("no room for a relay of it beside the file") == 1
    assert f"{15 * 2**30} bytes free, {20 * 2**30} wanted); waiting for its record instead" in caplog.text


@pytest.mark.parametrize("chunk", [1000, 256 * 1024, 3 * MIB + 7])
def test_hashes_taken_as_the_bytes_are_joined_are_those_of_the_file(small_gguf, chunk):
    data = small_gguf.read_bytes()
    hasher = creation.Hasher(256 * 1024)
    for at in range(0, len(data), chunk):
        hasher.update(data[at:at + chunk])
    assert hasher.result() == creation.file_hashes(small_gguf, piece_size=256 * 1024)


@pytest.mark.parametrize("address, dht_nodes, named", [
    ("192.168.1.20", [], "192.168.1.20:6881"),  # its x.pe: any portal may read the item
    ("127.0.0.1", [("127.0.0.1", 7000), ("127.0.0.1", 7001)], "127.0.0.1:6881"),  # every reader on this machine
    ("127.0.0.1", [("127.0.0.1", 7000), ("192.168.1.5", 7001)], ""),  # a reader elsewhere could not reach it
    ("127.0.0.1", [], ""),  # the public DHT
    ("127.0.0.1", [("portal-b.lan", 7000)], ""),
])
def test_the_relay_names_the_fetchers_address_only_where_its_readers_reach_it(settings, address, dht_nodes, named):
    settings.NODE_ADDRESS = address
    session = types.SimpleNamespace(listen_port=lambda: 6881, dht_nodes=dht_nodes)
    assert Relay(p2p=session, node_name=NODE, clock=time.monotonic, named_dht=bool(dht_nodes))._endpoint() == named


def test_a_waiter_that_takes_the_fetch_over_keeps_the_segments_it_has_from_the_first_on(settings, tmp_path):
    """Its fetcher stalled: it fetches the rest itself and relays it. The item lists segments in order, so it keeps
    those complete from the first on and cuts the others afresh from its own fetch."""
    settings.NODE_NAME = NODE
    sha256 = "ef" * 32
    model = model_make(id="org_Taken-GGUF", name="Taken", file_name="taken.gguf", size=6 * MIB, sha256=sha256,
                       status="downloading", path=str(tmp_path / "org_Taken-GGUF"))
    removed, puts = [], []
    session = types.SimpleNamespace(remove=removed.append, listen_port=lambda: 6881, dht_nodes=[("127.0.0.1", 7000)],
                                    dht_put_record=lambda **item: puts.append(item))
    relay = Relay(p2p=session, node_name=NODE, clock=time.monotonic, named_dht=True)
    hashes = {index: bytes([index + 1]) * 20 for index in range(4)}
    relay.files[sha256] = Segments(sha256=sha256, total=6 * MIB, folder=relay_dir(NODE, sha256), feeding=False,
                                   model_id=model.pk, hashes=dict(hashes), ready={0, 1, 3})
    relay.once(fetching={model.pk: sha256}, waiting={})
    taken = relay.files[sha256]
    assert taken.feeding and taken.hashes == {0: hashes[0], 1: hashes[1]}
    assert sorted(removed) == [f"relay/{sha256}/2", f"relay/{sha256}/3"]
    relay._put(taken, now=0.0)
    assert swarm.relay_parse(puts[-1]["value"]) == (6 * MIB, "127.0.0.1:6881", [hashes[0], hashes[1]])
