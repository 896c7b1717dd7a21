"""File locks that tell a running download from one whose worker died (they vanish with the process)."""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings


def _path(name: str) -> Path:
    folder = settings.AI_MODEL_DIR / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.lock"


@contextlib.contextmanager
def model_lock(model_id: str) -> Iterator[bool]:
    """Held for the whole download of one model; yields False when another worker holds it."""
    fd = os.open(_path(f"model-{model_id}"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def model_lock_held(model_id: str) -> bool:
    with model_lock(model_id) as mine:
        return not mine


@contextlib.contextmanager
def node_lock() -> Iterator[None]:
    """Serialises the claim of download slots among this node's workers."""
    fd = os.open(_path("downloads"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
