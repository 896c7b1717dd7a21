"""Adapter over the `gguf` package: read a GGUF header into plain metadata."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from models_app.hashing import file_key

GGUF_MAGIC = b"GGUF"


class NotGGUF(ValueError):
    pass


def is_gguf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == GGUF_MAGIC


def read_metadata(path: Path) -> dict:
    """Architecture, parameter count, quantization and context length (plus sizes for memory estimates)."""
    if not is_gguf(path):
        raise NotGGUF(f"{Path(path).name} is not a GGUF file (it does not start with the GGUF magic bytes)")
    # Parsing a header walks every tokenizer entry (seconds for big vocabularies): once per file version.
    return dict(_read_cached(file_key(path)))


@lru_cache(maxsize=64)
def _read_cached(key: tuple) -> dict:
    from gguf import GGUFReader, LlamaFileType

    path = Path(key[0])
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises many types on a damaged header
        raise NotGGUF(f"{path.name} has a damaged GGUF header: {exc}") from None
    fields = reader.fields

    def value(key: str):
        field = fields.get(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture") or ""
    file_type = value("general.file_type")
    try:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else ""
    except ValueError:
        quantization = str(file_type)
    return {
        "architecture": arch,
        "name": value("general.name") or "",
        "parameters": int(sum(int(t.n_elements) for t in reader.tensors)),
        "sizeLabel": value("general.size_label") or "",
        "quantization": quantization,
        "contextLength": value(f"{arch}.context_length"),
        "blockCount": value(f"{arch}.block_count"),
        "embeddingLength": value(f"{arch}.embedding_length"),
        "headCount": value(f"{arch}.attention.head_count"),
        "headCountKv": value(f"{arch}.attention.head_count_kv"),
        "splitCount": value("split.count"),
    }
