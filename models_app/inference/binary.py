"""Where the llama-server binary is: LLAMA_SERVER_BIN, else `llama-server` on PATH, else the per-machine build."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.conf import settings

from aiportal.errors import Unavailable
from models_app.inference import process

VERSION = "11434.0.0"


def cached_build() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"
    return cache / f"llama-server-{VERSION}" / "bin" / "llama-server"


def binary_candidate() -> Path:
    """The one path the portal will run (no fallback past an explicit setting)."""
    if settings.LLAMA_SERVER_BIN:
        return Path(settings.LLAMA_SERVER_BIN).expanduser()
    on_path = shutil.which("llama-server")
    return Path(on_path) if on_path else cached_build()


def binary_path() -> Path:
    """The llama-server to run, checked to start at all; 503 naming the path otherwise."""
    path = binary_candidate()
    if not path.is_file():
        raise Unavailable(f"llama-server not found at {path} (set LLAMA_SERVER_BIN or run `make run` to build it).",
                          code="llama_server_missing", extra={"path": str(path)})
    if not os.access(path, os.X_OK):
        raise Unavailable(f"llama-server at {path} is not executable.", code="llama_server_broken",
                          extra={"path": str(path)})
    problem = process.binary_problem(path)
    if problem:
        raise Unavailable(f"llama-server at {path} does not run: {problem}", code="llama_server_broken",
                          extra={"path": str(path)})
    return path
