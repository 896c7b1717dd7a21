from __future__ import annotations

import pytest

from torrents_app.magnets import BadMagnet, advertised_peers, magnet_build, magnet_parse

V1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
V1_B32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"
V2 = "2f4b5957bfe34e6186f22d1b73bf092482e631ae5c55b8a4447d1520b664b3e2"


def test_it_reads_every_part_of_a_hybrid_magnet():
    magnet = magnet_parse(
        f"magnet:?xt=urn:btih:{V1.upper()}&xt=urn:btmh:1220{V2}&dn=Tiny%20Model.gguf&xl=1234"
        "&ws=https%3A%2F%2Fhub.example%2Fa%2Fresolve%2Fmain%2Ft.gguf&tr=udp%3A%2F%2Ftracker.example%3A80"
        "&x.pe=127.0.0.1:6881&x.pe=[::1]:6882"
    )
    assert (magnet.info_hash_v1, magnet.info_hash_v2, magnet.name, magnet.size) == (V1, V2, "Tiny Model.gguf", 1234)
    assert magnet.web_seeds == ["https://hub.example/a/resolve/main/t.gguf"]
    assert magnet.trackers == ["udp://tracker.example:80"]
    assert magnet.peers == ["127.0.0.1:6881", "[::1]:6882"]


def test_it_reads_a_base32_v1_hash():
    assert magnet_parse(f"magnet:?xt=urn:btih:{V1_B32}").info_hash_v1 == V1


def test_it_accepts_a_v2_only_magnet():
    magnet = magnet_parse(f"magnet:?xt=urn:btmh:1220{V2}")
    assert (magnet.info_hash_v1, magnet.info_hash_v2, magnet.size) == ("", V2, None)


def test_it_builds_magnets_it_can_read_back():
    uri = magnet_build(info_hash_v1=V1, info_hash_v2=V2, name="a b&c.gguf", size=10, web_seeds=["http://h/x?y=1"])
    magnet = magnet_parse(uri)
    assert (magnet.name, magnet.size, magnet.web_seeds) == ("a b&c.gguf", 10, ["http://h/x?y=1"])


@pytest.mark.parametrize(("uri", "says"), [
    ("", "starts with 'magnet:?'"),
    ("http://example.org/x.torrent", "starts with 'magnet:?'"),
    ("magnet:?dn=nothing", "no BitTorrent info-hash"),
    ("magnet:?xt=urn:btih:1234", "not a v1 info-hash"),
    (f"magnet:?xt=urn:btih:{V1[:-1]}g", "not a v1 info-hash"),
    (f"magnet:?xt=urn:btih:{V1}&xt=urn:btih:{V1}", "more than one v1"),
    (f"magnet:?xt=urn:btmh:1114{V2}", "urn:btmh:1220"),
    (f"magnet:?xt=urn:btmh:1220{V2[:-2]}", "urn:btmh:1220"),
    (f"magnet:?xt=urn:btih:{V1}&xl=-5", "not a whole number"),
    (f"magnet:?xt=urn:btih:{V1}&xl=12kb", "not a whole number"),
    (f"magnet:?xt=urn:btih:{V1}&ws=ftp%3A%2F%2Fh%2Fx", "is not a valid URL"),
    (f"magnet:?xt=urn:btih:{V1}&tr=javascript:alert(1)", "is not a valid URL"),
    (f"magnet:?xt=urn:btih:{V1}&x.pe=127.0.0.1", "is not host:port"),
    (f"magnet:?xt=urn:btih:{V1}&x.pe=127.0.0.1:70000", "is not host:port"),
    (f"magnet:?xt=urn:btih:{V1}&x.pe=[zz::1]:80", "malformed IPv6"),
    (f"magnet:?xt=urn:btih:{V1}&dn=a%0Ab", "control characters"),
    ("magnet:?xt=urn:btih:" + "a" * 20000, "longer than"),
])
def test_it_refuses_a_malformed_magnet_with_a_clear_message(uri, says):
    with pytest.raises(BadMagnet, match=".*") as raised:
        magnet_parse(uri)
    assert (raised.value.status, raised.value.code) == (400, "invalid_magnet")
    assert says in raised.value.message


@pytest.mark.parametrize(("address", "port", "peers"), [
    ("192.168.1.20", 6881, ["192.168.1.20:6881"]),
    ("fd00::20", 6881, ["[fd00::20]:6881"]),
    ("desktop.lan", 7000, ["desktop.lan:7000"]),
    ("127.0.0.1", 6881, []),  # no other machine reaches a loopback address
    ("::1", 6881, []),
    ("localhost", 6881, []),
    ("0.0.0.0", 6881, []),
    ("192.168.1.20", None, []),  # the port is not known yet
])
def test_magnets_carry_this_nodes_address_only_when_others_can_reach_it(address, port, peers):
    assert advertised_peers(address, port) == peers
    assert magnet_parse(magnet_build(info_hash_v1=V1, peers=peers)).peers == peers
