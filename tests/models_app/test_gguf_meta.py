from __future__ import annotations

import struct

import pytest
from gguf import GGUFReader

from models_app.gguf_meta import NotGGUF, read_metadata


def test_it_reads_the_same_metadata_as_the_gguf_packages_own_reader(demo_gguf):
    reader = GGUFReader(demo_gguf)
    meta = read_metadata(demo_gguf)
    assert meta["architecture"] == reader.fields["general.architecture"].contents()
    assert meta["contextLength"] == reader.fields["llama.context_length"].contents()
    assert meta["headCountKv"] == reader.fields["llama.attention.head_count_kv"].contents()
    assert meta["parameters"] == sum(int(t.n_elements) for t in reader.tensors)
    assert meta["quantization"] == "Q4_1"


@pytest.mark.parametrize("keep", [8, 24, 4096, 1_000_000])
def test_it_calls_a_truncated_header_damaged(tmp_path, demo_gguf, keep):
    cut = tmp_path / "cut.gguf"
    with open(demo_gguf, "rb") as src:
        cut.write_bytes(src.read(keep))
    with pytest.raises(NotGGUF, match="cut.gguf has a damaged GGUF header"):
        read_metadata(cut)


def test_it_refuses_a_header_that_claims_a_giant_string(tmp_path):
    evil = tmp_path / "evil.gguf"
    evil.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62))
    with pytest.raises(NotGGUF, match="damaged GGUF header: a string of"):
        read_metadata(evil)


def test_it_refuses_an_unknown_version(tmp_path):
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    with pytest.raises(NotGGUF, match="unsupported GGUF version 9"):
        read_metadata(odd)
