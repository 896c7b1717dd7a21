"""How much memory a served model needs, against what the machine has free."""
from __future__ import annotations

from pathlib import Path

# Compute buffers and the server itself, measured roughly on CPU builds.
OVERHEAD_BYTES = 256 * 1024 * 1024


def kv_bytes_per_token(meta: dict | None) -> int:
    """K and V in f16 for every layer at one context position (grouped-query heads shrink it)."""
    meta = meta or {}
    layers = int(meta.get("blockCount") or 32)
    embedding = int(meta.get("embeddingLength") or 4096)
    heads = int(meta.get("headCount") or 1)
    kv_heads = int(meta.get("headCountKv") or heads)
    return 2 * layers * (embedding * kv_heads // max(heads, 1)) * 2


def kv_cache_bytes(meta: dict | None, context_size: int) -> int:
    return kv_bytes_per_token(meta) * context_size


def memory_needed(*, file_size: int, meta: dict | None, context_size: int) -> int:
    return file_size + kv_cache_bytes(meta, context_size) + OVERHEAD_BYTES


def memory_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
