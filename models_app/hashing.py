"""Streaming file hashes."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

CHUNK = 8 * 1024 * 1024


def file_key(path: Path) -> tuple:
    """Identifies one version of a file: a rewrite changes its size, mtime or inode."""
    st = Path(path).stat()
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def sha256_file(path: Path) -> str:
    """sha256 of a file; an unchanged file is hashed once per process (imports re-read big files)."""
    return _sha256_cached(file_key(path))


@lru_cache(maxsize=64)
def _sha256_cached(key: tuple) -> str:
    path = key[0]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
