"""Shared helpers for torrent tests: engines driven step by step."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from models_app.models import AIModel
from torrents_app.creation import torrent_create


def torrent_bytes(path: Path, *, fmt: str = "hybrid") -> bytes:
    return torrent_create(content=path, fmt=fmt).data


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
