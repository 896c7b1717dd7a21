"""Shared helpers for torrent tests: engines driven step by step."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from models_app.models import AIModel, ModelCopy
from torrents_app.creation import torrent_create
from torrents_app.magnets import magnet_build
from torrents_app.session import torrent_info_hashes


def torrent_bytes(path: Path, *, fmt: str = "hybrid") -> bytes:
    return torrent_create(content=path, fmt=fmt).data


def offer(foreign, blob: bytes, folder: Path) -> str:
    """Seed `blob` from a bare session; the magnet to fetch it, with that peer in `x.pe`."""
    v1, v2 = torrent_info_hashes(blob)
    foreign.add("offer", save_path=folder, torrent=blob, seed_mode=True)
    return magnet_build(info_hash_v1=v1, info_hash_v2=v2, peers=[f"127.0.0.1:{foreign.listen_port()}"])


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


def copy_on(model: AIModel, node: str) -> ModelCopy | None:
    """The model's copy on one node, as the database holds it now."""
    return ModelCopy.objects.filter(model_id=model.pk, node=node).first()


def status_on(model: AIModel, node: str) -> str:
    found = copy_on(model, node)
    return found.status if found is not None else ""
