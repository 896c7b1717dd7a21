"""Resume data files in AI_TORRENT_DIR: one `<model id>.resume` per torrent, written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class ResumeStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.resume"

    def read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes() or None
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        # A daemon killed mid-write must leave the previous file, never half of a new one.
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
