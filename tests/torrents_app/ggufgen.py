"""Generate GGUF-shaped files of any size (a real GGUF header, one F32 tensor of filler data)."""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CHUNK = 1 << 20


def make_gguf(path: Path, size: int, *, name: str = "Generated") -> Path:
    """A valid GGUF of about `size` bytes whose chunks all differ (no two pieces alike)."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(name)
    writer.add_context_length(2048)
    count = max(size // 4, 1)
    writer.add_tensor_info("filler", [count], np.dtype(np.float32), count * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    fh = writer.fout[0]
    fh.write(b"\0" * ((-fh.tell()) % writer.data_alignment))
    left, n = count * 4, 0
    while left:
        step = min(left, CHUNK)
        fh.write((n.to_bytes(8, "little") * (CHUNK // 8))[:step])
        left, n = left - step, n + 1
    writer.close()
    return path
