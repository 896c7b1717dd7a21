"""Parse, validate and build magnet links (BEP 9, BEP 52 `btmh`, BEP 19 `ws`), without libtorrent."""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit

from aiportal.errors import ApplicationError

_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_B32 = re.compile(r"^[A-Za-z2-7]{32}$")
_BTMH = re.compile(r"^1220([0-9a-fA-F]{64})$")
_HOSTPORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")
MAX_LENGTH = 16384


class BadMagnet(ApplicationError):
    status = 400
    code = "invalid_magnet"


@dataclass(frozen=True)
class Magnet:
    uri: str
    info_hash_v1: str = ""
    info_hash_v2: str = ""
    name: str = ""
    size: int | None = None
    web_seeds: list[str] = field(default_factory=list)
    trackers: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)


def magnet_parse(uri: str) -> Magnet:
    """A validated magnet, or `BadMagnet` (400) saying what is wrong with it."""
    uri = (uri or "").strip()
    if len(uri) > MAX_LENGTH:
        raise BadMagnet(f"The magnet link is longer than {MAX_LENGTH} characters.")
    if not uri.lower().startswith("magnet:?"):
        raise BadMagnet("A magnet link starts with 'magnet:?'.")
    pairs = parse_qsl(uri[len("magnet:?"):], keep_blank_values=True)
    v1 = v2 = ""
    for key, value in pairs:
        if key == "xt":
            v1, v2 = _exact_topic(value, v1, v2)
    if not (v1 or v2):
        raise BadMagnet("The magnet link has no BitTorrent info-hash (xt=urn:btih:… or xt=urn:btmh:1220…).")
    values = _grouped(pairs)
    return Magnet(
        uri=uri, info_hash_v1=v1, info_hash_v2=v2, name=_name(values.get("dn", [])), size=_size(values.get("xl", [])),
        web_seeds=[_url(u, "ws", {"http", "https"}) for u in values.get("ws", [])],
        trackers=[_url(u, "tr", {"http", "https", "udp"}) for u in values.get("tr", [])],
        peers=[_peer(p) for p in values.get("x.pe", [])],
    )


def magnet_build(*, info_hash_v1: str = "", info_hash_v2: str = "", name: str = "", size: int | None = None,
                 web_seeds: list[str] | None = None, peers: list[str] | None = None) -> str:
    parts = []
    if info_hash_v1:
        parts.append(f"xt=urn:btih:{info_hash_v1}")
    if info_hash_v2:
        parts.append(f"xt=urn:btmh:1220{info_hash_v2}")
    if name:
        parts.append(f"dn={quote(name, safe='')}")
    if size:
        parts.append(f"xl={int(size)}")
    parts += [f"ws={quote(url, safe='')}" for url in web_seeds or []]
    parts += [f"x.pe={peer}" for peer in peers or []]
    return "magnet:?" + "&".join(parts)


def peer_text(address: str, port: int) -> str:
    """`host:port` as x.pe writes it (`[v6]:port` for IPv6)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def advertised_peers(address: str, port: int | None) -> list[str]:
    """The x.pe this node puts in the magnets it makes (SPEC §8): none for a loopback or unset address,
    which no other machine could reach."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None  # a host name: the person named it for the others to use
    if not port or address == "localhost" or (ip is not None and (ip.is_loopback or ip.is_unspecified)):
        return []
    return [peer_text(address, port)]


def magnet_peer_endpoints(uri: str) -> list[tuple[str, int]]:
    """The magnet's `x.pe` peers as (host, port); none for an empty or unreadable magnet."""
    try:
        peers = magnet_parse(uri).peers if uri else []
    except BadMagnet:
        return []
    return [(peer.rsplit(":", 1)[0].strip("[]"), int(peer.rsplit(":", 1)[1])) for peer in peers]


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _exact_topic(value: str, v1: str, v2: str) -> tuple[str, str]:
    lower = value.lower()
    if lower.startswith("urn:btih:"):
        if v1:
            raise BadMagnet("The magnet link has more than one v1 info-hash (urn:btih).")
        return _btih(value[len("urn:btih:"):]), v2
    if lower.startswith("urn:btmh:"):
        if v2:
            raise BadMagnet("The magnet link has more than one v2 info-hash (urn:btmh).")
        match = _BTMH.match(value[len("urn:btmh:"):])
        if not match:
            raise BadMagnet("A v2 info-hash must be urn:btmh:1220 followed by 64 hex digits (a sha256 multihash).")
        return v1, match.group(1).lower()
    # Other exact topics (ed2k, sha1 of a plain file, …) are allowed beside a BitTorrent one.
    return v1, v2


def _btih(text: str) -> str:
    if _HEX40.match(text):
        return text.lower()
    if _B32.match(text):
        try:
            return binascii.hexlify(base64.b32decode(text.upper())).decode()
        except binascii.Error:
            pass
    raise BadMagnet(f"{text!r} is not a v1 info-hash: expected 40 hex digits or 32 base32 characters.")


def _name(values: list[str]) -> str:
    name = values[0] if values else ""
    if len(name) > 500 or any(ord(c) < 32 for c in name):
        raise BadMagnet("The magnet's name (dn) is too long or holds control characters.")
    return name.strip()


def _size(values: list[str]) -> int | None:
    if not values:
        return None
    if not values[0].isdigit() or len(values[0]) > 18:
        raise BadMagnet(f"The magnet's size (xl={values[0]!r}) is not a whole number of bytes.")
    return int(values[0])


def _url(url: str, key: str, schemes: set[str]) -> str:
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in schemes and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        allowed = ", ".join(sorted(schemes))
        raise BadMagnet(f"The magnet's {key}={url!r} is not a valid URL ({allowed}).")
    return url


def _peer(text: str) -> str:
    match = _HOSTPORT.match(text)
    port = int(match.group("port")) if match else 0
    if not match or not 0 < port < 65536:
        raise BadMagnet(f"The magnet's peer x.pe={text!r} is not host:port.")
    if match.group("v6"):
        try:
            ipaddress.IPv6Address(match.group("v6"))
        except ValueError:
            raise BadMagnet(f"The magnet's peer x.pe={text!r} has a malformed IPv6 address.") from None
    return text
