"""The sha256 record (SPEC §8): how a portal finds, in the DHT, a torrent of a Hub file it is about to download.

A record is a BEP 44 mutable item under one key pair fixed here, so that every portal can read it and
every seeder can refresh it; its salt is the file's sha256 (32 bytes) and its value names the
torrent's info-hashes. The secret half is public on purpose: a record only says where to look, and
whatever the peers send is checked against the Hub's sha256 before it counts, so a false or stale
record costs a downloader the bounded lookup and nothing else.
"""
from __future__ import annotations

import re
import time

# ed25519, derived from sha256(b"aiportal sha256 records, BEP 44, public by design") as the seed. The
# secret key is in libtorrent's expanded 64-byte form (sha512 of the seed, clamped).
PUBLIC_KEY = bytes.fromhex("3207041f81861905546e2038f977f0b28fe1663bca7c0f6a2f4c9039ba7f1463")
SECRET_KEY = bytes.fromhex(
    "20f8f23a97a528dbd83f168c9b65a6d73b960b98b20a6f303039450adf1ae575"
    "9ee69a744f9eea053fb5238af790ca9182fa9397baa38fb33973893d1b1d7af0")

PREFIX = b"aiportal1"
_V1 = re.compile(rb"^[0-9a-f]{40}$")
_V2 = re.compile(rb"^[0-9a-f]{64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    return bool(_SHA256.match(text or ""))


def record_salt(sha256: str) -> bytes:
    if not is_sha256(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return bytes.fromhex(sha256)


def record_value(*, info_hash_v1: str, info_hash_v2: str) -> bytes:
    """`aiportal1 <v1 or -> <v2 or ->`: well under BEP 44's 1,000 bytes."""
    return b" ".join([PREFIX, (info_hash_v1 or "-").encode(), (info_hash_v2 or "-").encode()])


def record_parse(value: bytes) -> tuple[str, str] | None:
    """(v1, v2) info-hashes named by a record; None for anything that is not a record of ours."""
    parts = value.split(b" ")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    v1, v2 = (b"" if part == b"-" else part for part in parts[1:])
    if (v1 and not _V1.match(v1)) or (v2 and not _V2.match(v2)) or not (v1 or v2):
        return None
    return v1.decode(), v2.decode()


# -- the fetch claim ------------------------------------------------------------------------------
# A Hub file nobody seeds yet, wanted by several portals at once, would cost the Hub one copy each. The
# first to look finds no record and no claim, so it puts a claim (same key, salt: the sha256 and a suffix)
# and reads it back once its put is out: BEP 44 keeps the highest sequence number and libtorrent's put
# takes the stored one plus one, so of the claims put together the last one stored names the fetcher for
# all of them. The others wait for the sha256 record, reading the claim meanwhile: the fetcher rewrites it
# with its byte count every few seconds, and a claim whose count stops moving (or, once every byte is in,
# whose beat stops) is given up on. A fetcher that gives up itself overwrites its claim with a release,
# so that its waiters take the fetch over at once instead of after the stall.
CLAIM = b"aiportal1-fetch"
CLAIM_OFF = b"aiportal1-fetch-off"
_CLAIM_SUFFIX = b"/fetch"


def claim_salt(sha256: str) -> bytes:
    return record_salt(sha256) + _CLAIM_SUFFIX


def is_claim_salt(salt: bytes) -> bool:
    return len(salt) == 32 + len(_CLAIM_SUFFIX) and salt.endswith(_CLAIM_SUFFIX)


def claim_value(*, claimant: str, done: int, total: int, beat: int = 0, at: int | None = None) -> bytes:
    """`aiportal1-fetch <claimant> <bytes done> <bytes in all> <beat> <unix time>`: the claimant is a random
    token per claim, the beat counts its refreshes (what shows it alive once every byte is in and it
    verifies), the time says when it was written (what shows a claim left by a portal that died long ago)."""
    at = int(time.time()) if at is None else at
    return b" ".join([CLAIM, claimant.encode(), *(str(n).encode() for n in (done, total, beat, at))])


def claim_release(*, claimant: str) -> bytes:
    """`aiportal1-fetch-off <claimant>`: the fetcher gave its fetch up (failed, cancelled, deleted)."""
    return b" ".join([CLAIM_OFF, claimant.encode()])


def claim_released(value: bytes) -> bool:
    parts = value.split(b" ")
    return len(parts) == 2 and parts[0] == CLAIM_OFF and bool(re.match(rb"^[0-9a-f]{8,32}$", parts[1]))


def claim_parse(value: bytes) -> tuple[str, int, int, int, int] | None:
    """(claimant, done, total, beat, unix time) of a claim; None for anything that is not one of ours."""
    parts = value.split(b" ")
    if len(parts) != 6 or parts[0] != CLAIM or not re.match(rb"^[0-9a-f]{8,32}$", parts[1]):
        return None
    if not all(part.isdigit() for part in parts[2:]):
        return None
    return parts[1].decode(), int(parts[2]), int(parts[3]), int(parts[4]), int(parts[5])


# -- the relay ------------------------------------------------------------------------------------
# A fetch from the Hub ends before its torrent can exist (piece hashes need every byte), so portals that
# wait on a claim would start only when the fetcher is done: the whole file twice over, one after the
# other. Instead the fetcher cuts its download into segments as the bytes arrive, makes a small v1 torrent
# of each and seeds it, and names them, in order, in a third item (salt: the sha256 and `/relay`). The
# waiters fetch the segments from it and from each other while it goes on, and join them into the file,
# which is checked against the Hub's sha256 at the end as every download is: a segment is as trustworthy
# as the fetcher that cut it, and a file made of false ones is fetched again from the Hub.
RELAY = b"aiportal1-relay"
_RELAY_SUFFIX = b"/relay"
RELAY_MAX_SEGMENTS = 40  # 40 info-hashes of 20 bytes and the header stay under BEP 44's 1,000 bytes
RELAY_MIN_SEGMENT = 1024 * 1024


def relay_salt(sha256: str) -> bytes:
    return record_salt(sha256) + _RELAY_SUFFIX


def is_relay_salt(salt: bytes) -> bool:
    return len(salt) == 32 + len(_RELAY_SUFFIX) and salt.endswith(_RELAY_SUFFIX)


def relay_segment_size(total: int) -> int:
    """Depends on the file's size only (fetcher and waiters agree without saying): a power of two of at
    least 1 MiB, so that the file has at most RELAY_MAX_SEGMENTS segments."""
    size = RELAY_MIN_SEGMENT
    while -(-total // size) > RELAY_MAX_SEGMENTS:
        size *= 2
    return size


def relay_segments(total: int) -> list[tuple[int, int]]:
    """(offset, length) of each segment of a file of `total` bytes."""
    size = relay_segment_size(total)
    return [(offset, min(size, total - offset)) for offset in range(0, total, size)]


def relay_value(*, total: int, endpoint: str, info_hashes: list[bytes]) -> bytes:
    """`aiportal1-relay <bytes in all> <fetcher's address:port or -> <v1 info-hash of each segment so far,
    20 bytes each, in order>`."""
    if len(info_hashes) > RELAY_MAX_SEGMENTS or any(len(h) != 20 for h in info_hashes):
        raise ValueError("a relay names at most 40 segments by their 20-byte v1 info-hash")
    return b" ".join([RELAY, str(total).encode(), (endpoint or "-").encode(), b"".join(info_hashes)])


def relay_parse(value: bytes) -> tuple[int, str, list[bytes]] | None:
    """(total, endpoint or '', info-hashes) of a relay; None for anything that is not one of ours."""
    parts = value.split(b" ", 3)
    if len(parts) != 4 or parts[0] != RELAY or not parts[1].isdigit():
        return None
    total, endpoint, hashes = int(parts[1]), parts[2], parts[3]
    if not total or len(hashes) % 20 or len(hashes) // 20 > len(relay_segments(total)):
        return None
    if endpoint != b"-" and not re.match(rb"^[0-9A-Za-z.:\[\]-]{1,80}:[0-9]{1,5}$", endpoint):
        return None
    return total, "" if endpoint == b"-" else endpoint.decode(), [hashes[i:i + 20] for i in range(0, len(hashes), 20)]
