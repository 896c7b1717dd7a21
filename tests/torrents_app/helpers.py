"""Shared helpers for torrent tests: torrents made with libtorrent, engines driven step by step."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import libtorrent as lt

from models_app.models import AIModel
from torrents_app.magnets import magnet_build
from torrents_app.models import Torrent

PIECE = 256 * 1024


def torrent_bytes(path: Path, *, fmt: str = "hybrid", piece: int = PIECE) -> bytes:
    flags = {"hybrid": 0, "v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}[fmt]
    files = lt.list_files(str(path), flags=lt.create_torrent.no_attributes)
    creator = lt.create_torrent(files, piece, flags=flags)
    creator.set_creation_date(0)
    lt.set_piece_hashes(creator, str(path.parent))
    return lt.bencode(creator.generate())


def share(model: AIModel, *, fmt: str = "hybrid") -> Torrent:
    """Give a ready model its torrent, as torrent creation does on a portal."""
    blob = torrent_bytes(Path(model.path) / model.file_name, fmt=fmt)
    hashes = lt.torrent_info(blob).info_hashes()
    v1 = str(hashes.v1) if hashes.has_v1() else ""
    v2 = str(hashes.v2) if hashes.has_v2() else ""
    model.info_hash, model.info_hash_v2 = v1, v2
    model.magnet_uri = magnet_build(info_hash_v1=v1, info_hash_v2=v2, name=model.file_name, size=model.size)
    model.save()
    return Torrent.objects.create(model=model, node=model.node, info_hash_v1=v1, info_hash_v2=v2, torrent_file=blob)


def pump(engines: list, until: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Step every engine until `until()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for engine in engines:
            engine.step()
        if until():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def refreshed(model: AIModel) -> AIModel:
    return AIModel.objects.get(pk=model.pk)
