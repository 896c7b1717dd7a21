"""Checks on a torrent's content: safe paths, GGUF-only, and the verification of finished files.

`verify_download` runs in a worker thread (hashing gigabytes must not stall the alert loop); it
touches files only, never the database.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

from models_app import gguf_meta

_UNSAFE_PART = re.compile(r"[\x00-\x1f\\:]")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    code: str = ""
    message: str = ""
    main_file: str = ""
    hashes: dict[str, str] = field(default_factory=dict)
    gguf: dict | None = None


def is_gguf_name(path: str) -> bool:
    return path.lower().endswith(".gguf")


def main_gguf(paths: list[str]) -> str | None:
    """The file llama-server loads: the first split part, else the first GGUF by name."""
    ggufs = sorted(p for p in paths if is_gguf_name(p))
    if not ggufs:
        return None
    firsts = [p for p in ggufs if (m := gguf_meta.SPLIT_PART.search(p)) and int(m.group(1)) == 1]
    return firsts[0] if firsts else ggufs[0]


def safe_relpath(path: str) -> str:
    """A relative path that stays inside its folder: no root, no `..`, no drive or control characters."""
    parts = [_UNSAFE_PART.sub("_", part) for part in PurePosixPath(path.replace("\\", "/")).parts]
    parts = [part for part in parts if part not in {"", "/", ".", ".."}]
    return "/".join(parts) or "file"


def escapes(folder: Path, path: str) -> bool:
    folder = folder.resolve()
    return not (folder / path).resolve().is_relative_to(folder) or safe_relpath(path) != path


def verify_download(*, folder: Path, files: list[tuple[str, int]], expected: dict[str, str]) -> Verdict:
    """Check sizes, GGUF headers and sha256 of finished files (expected hashes where known)."""
    names = [name for name, _ in files]
    main = main_gguf(names)
    if main is None:
        return Verdict(False, "not_gguf", f"The torrent holds no GGUF file ({_listing(names)}).")
    for name, size in files:
        problem = _file_problem(folder / name, size)
        if problem:
            return Verdict(False, "file_incomplete", f"{name} {problem}.")
    for name in names:
        if is_gguf_name(name) and not gguf_meta.is_gguf(folder / name):
            return Verdict(False, "not_gguf", f"{name} is not a GGUF model file (it lacks the GGUF header).")
    try:
        meta = gguf_meta.read_metadata(folder / main)
    except gguf_meta.NotGGUF as exc:
        return Verdict(False, "not_gguf", str(exc))
    hashes = {name: _sha256(folder / name) for name in names}
    for name, digest in expected.items():
        if digest and hashes.get(name) != digest:
            return Verdict(False, "sha256_mismatch",
                           f"{name} has sha256 {hashes.get(name)}, expected {digest} from its source.")
    return Verdict(True, main_file=main, hashes=hashes, gguf=meta)


def file_problem(folder: Path, files: list[tuple[str, int]]) -> str:
    """What is wrong on disk with a seeded model's files ('' when all are there in full)."""
    for name, size in files:
        problem = _file_problem(folder / name, size)
        if problem:
            return f"{name} {problem}"
    return ""


def _file_problem(path: Path, size: int) -> str:
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return f"is missing from {path.parent}"
    if actual < size:
        return f"is truncated: {actual} of {size} bytes on disk"
    return ""


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def save_path(folder: Path, names: list[str], files: list[tuple[str, int]]) -> Path:
    """Where a torrent's paths start: the model folder, or above it for a torrent named after a folder."""
    for path, _ in files:
        parts = PurePosixPath(path).parts
        for name in filter(None, names):
            depth = len(parts) - len(PurePosixPath(name).parts)
            if depth >= 0 and name == "/".join(parts[depth:]):
                return folder.parents[depth - 1] if depth else folder
    return folder


def present_bytes(folder: Path, files: list[tuple[str, int]]) -> int:
    total = 0
    for name, size in files:
        path = folder / name
        total += min(path.stat().st_size, size) if path.is_file() else 0
    return total


def remove_model_folder(folder: Path) -> None:
    """Remove a refused download's folder, only ever inside AI_MODEL_DIR."""
    root = settings.AI_MODEL_DIR.resolve()
    folder = folder.resolve()
    if folder.is_relative_to(root) and folder != root:
        shutil.rmtree(folder, ignore_errors=True)


def _sha256(path: Path) -> str:
    # Not models_app.hashing's per-process cache: a file just written must be read afresh.
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
