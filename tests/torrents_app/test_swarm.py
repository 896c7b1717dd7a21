"""SPEC §8: DHT between portals that name each other, and Hub files found in the swarm by their sha256."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from aiportal.nodes import node_heartbeat
from models_app.hub import client
from models_app.hub.runner import download_run
from models_app.hub.services import download_start
from models_app.models import AIModel, CopyStatus, ModelFile, Source, Status
from models_app.states import copy_move, copy_rows
from models_app.services import model_delete, model_import_local
from tests.fakes.fake_hub import FakeHub
from tests.torrents_app.ggufgen import make_gguf
from tests.torrents_app.helpers import pump, refreshed, status_on
from tests.torrents_app.test_discovery import _free_port
from torrents_app import node_services, swarm
from torrents_app import services as torrent_services
from torrents_app.magnets import magnet_build
from torrents_app.models import Torrent
from torrents_app.session import SessionConfig
from torrents_app.sharing import magnet_download_start
from tests.factories import copy_update, model_make

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
MIB = 1024 * 1024
REPO = "org/Tiny-GGUF"


@pytest.fixture
def dht_pair(make_engine):
    """alpha and beta, each naming only the other in P2P_DHT_BOOTSTRAP (no public routers, no LSD)."""
    port_a, port_b = _free_port(), _free_port()
    alpha = make_engine("alpha", SessionConfig(listen=f"127.0.0.1:{port_a}", dht=True, lsd=False,
                                               dht_bootstrap=f"127.0.0.1:{port_b}"))
    beta = make_engine("beta", SessionConfig(listen=f"127.0.0.1:{port_b}", dht=True, lsd=False,
                                             dht_bootstrap=f"127.0.0.1:{port_a}"))
    return alpha, beta


@pytest.fixture
def hub(settings):
    hub = FakeHub().start()
    settings.HF_ENDPOINT, settings.HF_TOKEN = hub.url, None
    client._info_cache.clear()
    yield hub
    hub.stop()


@pytest.fixture
def other_gguf(tmp_path) -> Path:
    return make_gguf(tmp_path / "Other-Test.Q4_0.gguf", 3 * MIB + 777, name="Other")


def _seed(settings, engine, path: Path):
    settings.NODE_NAME = engine.node_name
    model = model_import_local(path=path)
    pump([engine], lambda: engine.p2p.has(model.pk))
    return refreshed(model)


def _heartbeat(settings, engine, *, address: str = "127.0.0.1") -> None:
    node_heartbeat(name=engine.node_name, address=address, facts={
        "p2p_port": engine.listen_port(), "disk_free": 50 * 2**30, "model_dir": str(settings.AI_MODEL_DIR),
        "cpus": 2, "memory_total": 8 * 2**30, "memory_free": 4 * 2**30})


def _hub_download(settings, monkeypatch, engines, node: str):
    """Start a Hub download on `node` and run its job as a q2 worker would, the engines running meanwhile."""
    settings.NODE_NAME = node

    def pause(seconds: float) -> None:
        for engine in engines:
            engine.step()
        time.sleep(seconds)

    monkeypatch.setattr(torrent_services, "pause", pause)
    model = download_start(url=f"{settings.HF_ENDPOINT}/{REPO}", node=node)
    return model, download_run(model_id=model.pk)


def test_two_portals_that_name_each_other_find_each_others_torrents_through_the_dht(settings, small_gguf, other_gguf,
                                                                                   dht_pair):
    alpha, beta = dht_pair
    on_alpha, on_beta = _seed(settings, alpha, small_gguf), _seed(settings, beta, other_gguf)
    settings.NODE_NAME = "beta"
    to_beta = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=on_alpha.info_hash,
                                                            info_hash_v2=on_alpha.info_hash_v2))
    settings.NODE_NAME = "alpha"
    to_alpha = magnet_download_start(magnet_uri=magnet_build(info_hash_v1=on_beta.info_hash,
                                                             info_hash_v2=on_beta.info_hash_v2))
    assert "x.pe" not in to_beta.magnet_uri + to_alpha.magnet_uri  # no peer given: the DHT alone finds it
    pump([alpha, beta], lambda: status_on(to_beta, "beta") == status_on(to_alpha, "alpha") == Status.READY,
         timeout=90)
    assert (refreshed(to_beta).sha256, refreshed(to_alpha).sha256) == (on_alpha.sha256, on_beta.sha256)


def test_a_hub_download_gets_the_file_from_a_portal_that_seeds_it_found_by_its_sha256(settings, monkeypatch, hub,
                                                                                     small_gguf, dht_pair):
    alpha, beta = dht_pair
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    hub.slow_bps = MIB  # the Hub is the slow source; peers are not
    source = _seed(settings, alpha, small_gguf)
    pump([alpha, beta], lambda: source.pk in alpha.stored, timeout=30)  # its sha256 record is in the DHT
    _heartbeat(settings, beta)
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "from the swarm"
    pump([alpha, beta], lambda: refreshed(model).status == Status.READY, timeout=60)
    model, size = refreshed(model), small_gguf.stat().st_size
    assert model.sha256 == source.sha256 and Path(model.lead.path, model.file_name).stat().st_size == size
    assert hub.bytes_served < size / 2, f"the Hub sent {hub.bytes_served} of {size} bytes"
    assert model.peer_bytes >= size / 2 and model.http_bytes == 0
    assert model.peer_bytes + model.web_seed_bytes >= size * 0.9
    assert beta.p2p.stats(model.pk).is_seeding
    # The torrent came from the swarm, and the Hub's URL stays its web seed for whoever comes next.
    assert (model.info_hash, model.info_hash_v2) == (source.info_hash, source.info_hash_v2)
    assert "ws=" in model.magnet_uri
    pump([alpha, beta], lambda: model.pk in beta.stored, timeout=30)  # and beta publishes the record too


def test_a_record_naming_a_wrong_torrent_costs_the_lookup_only(settings, monkeypatch, hub, small_gguf, dht_pair, caplog):
    alpha, beta = dht_pair
    settings.P2P_SWARM_WAIT = 2
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    sha256 = torrent_services.creation.file_hashes(small_gguf, piece_size=MIB).sha256
    salt = swarm.record_salt(sha256)

    def stored() -> bool:  # put again until a DHT node took it (the routing tables fill in the first seconds)
        if salt not in alpha.publishing and "false-record" not in alpha.stored:
            alpha.publishing[salt] = "false-record"
            alpha.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY, salt=salt,
                                     value=swarm.record_value(info_hash_v1="ab" * 20, info_hash_v2=""))
        return "false-record" in alpha.stored

    pump([alpha, beta], stored, timeout=30)
    _heartbeat(settings, beta)
    caplog.set_level("INFO", logger="aiportal.torrents")
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "ready"
    assert "the DHT names a torrent of its sha256 (" + "ab" * 20 in caplog.text  # it was looked up and followed
    model, size = refreshed(model), small_gguf.stat().st_size
    assert (model.status, model.sha256, model.http_bytes, model.peer_bytes) == (Status.READY, sha256, size, 0)
    assert hub.bytes_served >= size
    assert Torrent.objects.get(copy__model_id=model.pk).info_hash_v1 != "ab" * 20  # its own torrent, made from verified bytes


def test_no_record_and_no_peer_leave_the_download_to_http_at_once(settings, monkeypatch, hub, small_gguf, dht_pair):
    alpha, beta = dht_pair
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    _heartbeat(settings, beta)
    started = time.monotonic()
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "ready" and refreshed(model).http_bytes == small_gguf.stat().st_size
    assert time.monotonic() - started < settings.P2P_SWARM_WAIT + 30  # no hang beyond the bound


def test_a_node_of_the_group_that_seeds_the_file_serves_it_without_the_dht(settings, monkeypatch, hub, small_gguf,
                                                                          alpha, beta):
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    hub.slow_bps = MIB
    source = _seed(settings, alpha, small_gguf)
    _heartbeat(settings, alpha)
    _heartbeat(settings, beta)
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "from the swarm"
    torrent = Torrent.objects.get(copy__model_id=model.pk)
    assert f"x.pe=127.0.0.1:{alpha.listen_port()}" in torrent.magnet_source
    pump([alpha, beta], lambda: refreshed(model).status == Status.READY, timeout=60)
    model, size = refreshed(model), small_gguf.stat().st_size
    assert model.sha256 == source.sha256
    assert hub.bytes_served < size / 2 and model.peer_bytes >= size / 2


def test_a_node_of_the_group_whose_copy_is_ready_but_not_shared_yet_is_waited_for(settings, monkeypatch, hub,
                                                                                   small_gguf, alpha, beta):
    """alpha's download has just turned ready; its torrent (made from the file) is not written yet."""
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    settings.NODE_NAME = alpha.node_name
    source = model_import_local(path=small_gguf)
    Torrent.objects.filter(copy__model=source).delete()
    _heartbeat(settings, alpha)
    _heartbeat(settings, beta)
    settings.NODE_NAME = "beta"
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 10:  # a second later alpha's torrent is there, and alpha seeds it
            torrent_services.torrent_create_for_model(model_id=source.pk, node=alpha.node_name)
        for engine in (alpha, beta):
            engine.step()
        time.sleep(seconds)

    monkeypatch.setattr(torrent_services, "pause", pause)
    model = download_start(url=f"{settings.HF_ENDPOINT}/{REPO}", node="beta")
    result = download_run(model_id=model.pk)
    assert len(pauses) >= 10
    assert result == "from the swarm"
    pump([alpha, beta], lambda: refreshed(model).status == Status.READY, timeout=60)
    model = refreshed(model)
    assert model.sha256 == source.sha256 and model.http_bytes == 0
    assert hub.bytes_served < small_gguf.stat().st_size / 2


def test_records_are_ours_only_when_well_formed():
    value = swarm.record_value(info_hash_v1="ab" * 20, info_hash_v2="cd" * 32)
    assert swarm.record_parse(value) == ("ab" * 20, "cd" * 32)
    assert swarm.record_parse(swarm.record_value(info_hash_v1="", info_hash_v2="cd" * 32)) == ("", "cd" * 32)
    for junk in (b"", b"aiportal1 - -", b"aiportal1 zz -", b"other ab ab", b"aiportal1 " + b"ab" * 20,
                 b"aiportal1 " + b"ab" * 21 + b" -"):
        assert swarm.record_parse(junk) is None, junk
    assert swarm.record_salt("0f" * 32) == bytes.fromhex("0f" * 32)
    with pytest.raises(ValueError):
        swarm.record_salt("not a sha256")


def test_a_new_model_under_a_deleted_ones_id_never_inherits_its_torrent(settings, small_gguf, other_gguf, alpha):
    from models_app.models import Source
    from models_app.services import model_delete

    old = _seed(settings, alpha, small_gguf)
    model_delete(model_id=old.pk, delete_files=False)
    # Before the engine noticed, the id is taken again: a Hub download waiting on its swarm lookup.
    new = model_make(id=old.pk, name="new", source=Source.HUGGINGFACE, status=Status.DOWNLOADING,
                     node=alpha.node_name, path=str(settings.AI_MODEL_DIR / "new"), file_name="x.gguf",
                     sha256="0f" * 32)
    Torrent.objects.create(copy=new.copies.get(), desired=Torrent.Desired.LOOKUP, state="looking")
    pump([alpha], lambda: not alpha.p2p.has(old.pk))
    for _ in range(20):
        alpha.step()
    assert refreshed(new).status == Status.DOWNLOADING and refreshed(new).error == ""


def _claim_stored(monkeypatch, engine, *, salt: bytes, value: bytes):
    """A probe for pump(): put `value` under the claim salt from `engine` until a DHT node took it."""
    put = {"out": False, "stored": False}

    def on_put(got: bytes, reached: int) -> None:
        if got == salt:
            put.update(out=False, stored=reached > 0)

    monkeypatch.setattr(engine.claims, "on_put", on_put)

    def stored() -> bool:
        if not put["out"] and not put["stored"]:
            put["out"] = True
            engine.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY, salt=salt, value=value)
        return put["stored"]

    return stored


def test_a_download_waiting_on_a_fetch_that_stalls_fetches_from_the_hub_itself(settings, monkeypatch, hub, small_gguf,
                                                                              dht_pair, caplog):
    """A portal claimed the fetch and died: its claim stays in the DHT with a count that never moves."""
    alpha, beta = dht_pair
    settings.P2P_SWARM_STALL = 3
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    size = small_gguf.stat().st_size
    sha256 = torrent_services.creation.file_hashes(small_gguf, piece_size=MIB).sha256
    dead = swarm.claim_value(claimant="de" * 8, done=12345, total=size)
    pump([alpha, beta], _claim_stored(monkeypatch, alpha, salt=swarm.claim_salt(sha256), value=dead), timeout=30)
    _heartbeat(settings, beta)
    caplog.set_level("INFO", logger="aiportal.torrents")
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "ready"
    assert f"another portal is fetching it from the Hub (12345 of {size} bytes)" in caplog.text
    assert "made no progress for 3 s; fetching it too" in caplog.text
    assert "this node fetches it from the Hub for the swarm" in caplog.text  # its claim replaced the dead one
    model = refreshed(model)
    assert (model.status, model.sha256, model.http_bytes, model.peer_bytes) == (Status.READY, sha256, size, 0)
    assert hub.bytes_served >= size


def test_a_claim_written_long_ago_is_not_waited_on(settings, monkeypatch, hub, small_gguf, dht_pair, caplog):
    """A portal claimed the fetch an hour ago and died; its claim is still in the DHT."""
    alpha, beta = dht_pair
    settings.P2P_SWARM_STALL = 600  # waiting on it at all would outlast the test
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    size = small_gguf.stat().st_size
    sha256 = torrent_services.creation.file_hashes(small_gguf, piece_size=MIB).sha256
    old = swarm.claim_value(claimant="de" * 8, done=12345, total=size, at=int(time.time()) - 3600)
    pump([alpha, beta], _claim_stored(monkeypatch, alpha, salt=swarm.claim_salt(sha256), value=old), timeout=30)
    _heartbeat(settings, beta)
    caplog.set_level("INFO", logger="aiportal.torrents")
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "ready"
    assert re.search(r"a claim on its fetch was last written 360\d s ago, by a portal long gone", caplog.text)
    assert "another portal is fetching it" not in caplog.text
    assert "this node fetches it from the Hub for the swarm" in caplog.text
    assert refreshed(model).http_bytes == size


def test_a_download_deleted_while_it_waits_on_another_portal_leaves_nothing(settings, monkeypatch, hub, small_gguf,
                                                                           dht_pair):
    alpha, beta = dht_pair
    settings.P2P_SWARM_STALL = 600
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    sha256 = torrent_services.creation.file_hashes(small_gguf, piece_size=MIB).sha256
    alive = swarm.claim_value(claimant="ab" * 8, done=1, total=small_gguf.stat().st_size)
    pump([alpha, beta], _claim_stored(monkeypatch, alpha, salt=swarm.claim_salt(sha256), value=alive), timeout=30)
    _heartbeat(settings, beta)

    def delete_when_waiting(**kwargs) -> None:
        real_await(**kwargs)
        model_delete(model_id=kwargs["model_id"], delete_files=True)  # the person gives up on it

    real_await = node_services.torrent_await
    monkeypatch.setattr(node_services, "torrent_await", delete_when_waiting)
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result in {"cancelled", "from the swarm"}
    assert not AIModel.objects.filter(pk=model.pk).exists() and not Torrent.objects.exists()
    assert hub.bytes_served == 0
    assert not (settings.AI_MODEL_DIR / model.pk).exists() or not any((settings.AI_MODEL_DIR / model.pk).iterdir())


def test_claims_are_ours_only_when_well_formed():
    sha256 = "ab" * 32
    salt = swarm.claim_salt(sha256)
    assert swarm.is_claim_salt(salt) and not swarm.is_claim_salt(swarm.record_salt(sha256))
    value = swarm.claim_value(claimant="0123456789abcdef", done=5, total=10, beat=3, at=1_790_000_000)
    assert swarm.claim_parse(value) == ("0123456789abcdef", 5, 10, 3, 1_790_000_000)
    for bad in (b"", b"aiportal1-fetch x 1 2 0 5", b"aiportal1-fetch 0123456789abcdef -1 2 0 5",
                b"aiportal1-fetch 0123456789abcdef 1 2 0",
                swarm.record_value(info_hash_v1="ab" * 20, info_hash_v2=""), value + b" 3"):
        assert swarm.claim_parse(bad) is None, bad


def _claim_read(monkeypatch, engine, *, salt: bytes, want):
    """A probe for pump(): ask the DHT from `engine` for the claim under `salt` until a whole answer satisfies
    `want(value)`."""
    asked = {"out": False}
    real = engine.claims.on_item

    def on_item(got: bytes, value: bytes, authoritative: bool) -> None:
        real(got, value, authoritative)
        if got == salt and authoritative:
            asked.update(out=False, ok=want(value))

    monkeypatch.setattr(engine.claims, "on_item", on_item)

    def read() -> bool:
        if asked.get("ok"):
            return True
        if not asked["out"]:
            asked["out"] = True
            engine.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=salt)
        return False

    return read


def _fetching_on_alpha(sha256: str, *, size: int, done: int) -> AIModel:
    """A Hub download under way over HTTP on node alpha, as its job writes it (no torrent row)."""
    fetch = model_make(id="elsewhere_Tiny-GGUF", node="alpha", source=Source.HUGGINGFACE, repo_id="elsewhere/Tiny-GGUF", file_name="Tiny.gguf", size=size,
                       sha256=sha256, status=CopyStatus.DOWNLOADING, downloaded_bytes=done)
    ModelFile.objects.create(model=fetch, name="Tiny.gguf", size=size, sha256=sha256)
    return fetch


def test_a_node_daemon_restarted_mid_fetch_claims_its_fetch_again_and_releases_it_when_the_fetch_fails(
        settings, monkeypatch, dht_pair, caplog):
    """alpha's daemon starts (no claims held) while its download job fetches a Hub file over HTTP."""
    alpha, beta = dht_pair
    caplog.set_level("INFO", logger="aiportal.torrents")
    sha256 = "cd" * 32
    fetch = _fetching_on_alpha(sha256, size=10 * MIB, done=3 * MIB)
    salt = swarm.claim_salt(sha256)

    def claim_done(value: bytes):
        claim = swarm.claim_parse(value)
        return claim and claim[1:3]

    pump([alpha, beta], _claim_read(monkeypatch, beta, salt=salt, want=lambda v: claim_done(v) == (3 * MIB, 10 * MIB)),
         timeout=30)
    assert "fetching it from the Hub without a claim; claiming it for the swarm" in caplog.text
    copy_update(fetch.pk, downloaded_bytes=7 * MIB)  # its refreshes carry the job's progress
    pump([alpha, beta], _claim_read(monkeypatch, beta, salt=salt, want=lambda v: claim_done(v) == (7 * MIB, 10 * MIB)),
         timeout=30)
    copy_move(copy_rows(model_id=fetch.pk, node="alpha"), CopyStatus.ERROR, error="the Hub answered 500")
    pump([alpha, beta], _claim_read(monkeypatch, beta, salt=salt, want=swarm.claim_released), timeout=30)
    assert not alpha.claims.held


def test_a_download_waiting_on_a_fetch_that_fails_takes_it_over_at_once(settings, monkeypatch, hub, small_gguf,
                                                                          dht_pair, caplog):
    alpha, beta = dht_pair
    settings.P2P_SWARM_STALL = 600  # only the fetcher's release can end the wait before the test's timeout
    hub.add_repo(REPO, {small_gguf.name: small_gguf})
    size = small_gguf.stat().st_size
    sha256 = torrent_services.creation.file_hashes(small_gguf, piece_size=MIB).sha256
    fetch = _fetching_on_alpha(sha256, size=size, done=4096)  # another portal's, as far as beta knows
    pump([alpha, beta], _claim_read(monkeypatch, beta, salt=swarm.claim_salt(sha256), want=swarm.claim_parse),
         timeout=30)
    _heartbeat(settings, beta)
    caplog.set_level("INFO", logger="aiportal.torrents")

    def fail_the_fetch_when_waited_on(**kwargs) -> None:
        real_await(**kwargs)
        copy_move(copy_rows(model_id=fetch.pk, node="alpha"), CopyStatus.ERROR, error="the Hub answered 500")

    real_await = node_services.torrent_await
    monkeypatch.setattr(node_services, "torrent_await", fail_the_fetch_when_waited_on)
    model, result = _hub_download(settings, monkeypatch, [alpha, beta], "beta")
    assert result == "ready"
    assert f"another portal is fetching it from the Hub (4096 of {size} bytes)" in caplog.text
    assert "gave the fetch up; fetching it itself" in caplog.text
    assert "made no progress" not in caplog.text
    model = refreshed(model)
    assert (model.status, model.sha256, model.http_bytes) == (Status.READY, sha256, size)


def _looking_up(model_id: str, node: str, sha256: str) -> Torrent:
    """A Hub download on `node` that has just asked the DHT for the file's sha256 record."""
    model = model_make(id=model_id, node=node, source=Source.HUGGINGFACE, repo_id=f"{node}/Tiny-GGUF",
                       file_name="Tiny.gguf", size=10 * MIB, sha256=sha256, status=CopyStatus.DOWNLOADING)
    return Torrent.objects.create(copy=model.copies.get(), desired=Torrent.Desired.LOOKUP, state=node_services.LOOKING)


@pytest.mark.parametrize("round_", range(8))
def test_two_portals_that_look_for_the_same_file_at_the_same_moment_elect_one_fetcher(dht_pair, caplog, round_):
    """Both find no record and no claim, and both claim the fetch at once: their puts, spread over half a second,
    land one after another, and both read back the one stored last, so exactly one fetches and the other
    waits on it (put at the same instant, each read back its own and both fetched)."""
    alpha, beta = dht_pair
    caplog.set_level("INFO", logger="aiportal.torrents")
    sha256 = f"{round_:02x}" * 32
    rows = [_looking_up("alpha_Tiny-GGUF", "alpha", sha256), _looking_up("beta_Tiny-GGUF", "beta", sha256)]

    def states():
        return sorted(Torrent.objects.filter(pk__in=[row.pk for row in rows]).values_list("state", flat=True))

    for engine in (alpha, beta):
        engine.step()  # each adds the other as its DHT node
    alpha.claims.begin("alpha_Tiny-GGUF", sha256)  # both found no record just now, and ask for a claim
    beta.claims.begin("beta_Tiny-GGUF", sha256)
    pump([alpha, beta], lambda: node_services.LOOKING not in states(), timeout=30)
    assert states() == sorted([node_services.AWAITING, node_services.MISSING])
    assert caplog.text.count("this node fetches it from the Hub for the swarm") == 1
    assert caplog.text.count("another portal is fetching it from the Hub") == 1
