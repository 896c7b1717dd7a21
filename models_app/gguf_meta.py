"""Read a GGUF header into plain metadata, with the `gguf` package's type tables.

`gguf.GGUFReader` builds a numpy view of every tokenizer entry (seconds for a large vocabulary);
the metadata a portal shows needs only the scalar keys and the tensor shapes, so this walks the
header once and skips arrays by their sizes.
"""
from __future__ import annotations

import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from gguf import GGUFValueType, LlamaFileType

from models_app.hashing import file_key

GGUF_MAGIC = b"GGUF"
# llama.cpp's gguf-split naming: `<stem>-00001-of-00003.gguf`; llama-server loads the first part.
SPLIT_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_SCALARS = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}
_MAX_STRING = 64 * 1024 * 1024


class NotGGUF(ValueError):
    pass


def is_gguf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == GGUF_MAGIC


def read_metadata(path: Path) -> dict:
    """Architecture, parameter count, quantization and context length (plus sizes for memory estimates)."""
    if not is_gguf(path):
        raise NotGGUF(f"{Path(path).name} is not a GGUF file (it does not start with the GGUF magic bytes)")
    return dict(_read_cached(file_key(path)))


@lru_cache(maxsize=64)
def _read_cached(key: tuple) -> dict:
    path = Path(key[0])
    try:
        with open(path, "rb", buffering=1024 * 1024) as fh:
            fields, parameters = _Header(fh).read()
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        raise NotGGUF(f"{path.name} has a damaged GGUF header: {exc or type(exc).__name__}") from None
    return _summary(fields, parameters)


def _summary(fields: dict, parameters: int) -> dict:
    arch = fields.get("general.architecture") or ""
    file_type = fields.get("general.file_type")
    try:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else ""
    except ValueError:
        quantization = str(file_type)
    return {
        "architecture": arch,
        "name": fields.get("general.name") or "",
        "parameters": parameters,
        "sizeLabel": fields.get("general.size_label") or "",
        "quantization": quantization,
        "contextLength": fields.get(f"{arch}.context_length"),
        "blockCount": fields.get(f"{arch}.block_count"),
        "embeddingLength": fields.get(f"{arch}.embedding_length"),
        "headCount": fields.get(f"{arch}.attention.head_count"),
        "headCountKv": fields.get(f"{arch}.attention.head_count_kv"),
        "splitCount": fields.get("split.count"),
        "poolingType": fields.get(f"{arch}.pooling_type"),
    }


class _Header:
    """One pass over the key/value section and the tensor infos; arrays are skipped, not read."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.order = "<"

    def read(self) -> tuple[dict, int]:
        self.fh.read(4)
        version = self._unpack("I")
        if version > 0xFFFF:  # a big-endian file reads as a huge little-endian version
            self.order = ">"
            version = struct.unpack(">I", struct.pack("<I", version))[0]
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        tensor_count, kv_count = self._unpack("Q"), self._unpack("Q")
        fields = {}
        for _ in range(kv_count):
            name = self._string()
            fields[name] = self._value(GGUFValueType(self._unpack("I")))
        parameters = sum(self._tensor_elements() for _ in range(tensor_count))
        return fields, parameters

    def _unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        data = self.fh.read(size)
        if len(data) != size:
            raise ValueError("the header ends early")
        return struct.unpack(self.order + fmt, data)[0]

    def _string(self) -> str:
        length = self._unpack("Q")
        if length > _MAX_STRING:
            raise ValueError(f"a string of {length} bytes")
        data = self.fh.read(length)
        if len(data) != length:
            raise ValueError("the header ends early")
        return data.decode("utf-8", errors="replace")

    def _value(self, kind: GGUFValueType):
        if kind == GGUFValueType.STRING:
            return self._string()
        if kind == GGUFValueType.ARRAY:
            self._skip_array(GGUFValueType(self._unpack("I")), self._unpack("Q"))
            return None
        return self._unpack(_SCALARS[kind])

    def _skip_array(self, kind: GGUFValueType, count: int) -> None:
        if kind in _SCALARS:
            self.fh.seek(struct.calcsize(_SCALARS[kind]) * count, 1)
            return
        for _ in range(count):
            self._value(kind)

    def _tensor_elements(self) -> int:
        self._string()
        elements = 1
        for _ in range(self._unpack("I")):
            elements *= self._unpack("Q")
        self._unpack("I")  # type
        self._unpack("Q")  # offset
        return elements
