from __future__ import annotations

from models_app.inference.memory import (
    OVERHEAD_BYTES,
    kv_cache_bytes,
    memory_available,
    memory_needed,
)

SMOLLM2 = {"blockCount": 30, "embeddingLength": 576, "headCount": 9, "headCountKv": 3}


def test_it_sizes_the_kv_cache_from_layers_context_and_grouped_heads():
    assert kv_cache_bytes(SMOLLM2, 2048) == 2 * 30 * 2048 * 192 * 2


def test_it_needs_the_file_the_kv_cache_and_the_overhead():
    assert memory_needed(file_size=98_362_432, meta=SMOLLM2, context_size=2048) == \
        98_362_432 + 2 * 30 * 2048 * 192 * 2 + OVERHEAD_BYTES


def test_it_reads_available_memory_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684240 kB\nMemAvailable:    1000 kB\n")

    assert memory_available(meminfo) == 1000 * 1024


def test_it_knows_nothing_when_meminfo_is_unreadable(tmp_path):
    assert memory_available(tmp_path / "missing") is None
