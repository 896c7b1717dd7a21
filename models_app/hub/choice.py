"""Which GGUF file of a repo to download: variants (split parts grouped), and the seed's rule for picking one."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings

from aiportal.errors import ApplicationError, NoRoom, NotFound
from models_app import gguf_meta
from models_app.hub.client import HubFile

SPLIT = gguf_meta.SPLIT_PART
QUANT = re.compile(r"(?:^|[._-])(I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32|FP16)(?=[._-]|$)", re.IGNORECASE)
GIB = 1024 ** 3


@dataclass(frozen=True)
class Variant:
    main: str
    parts: tuple[HubFile, ...]

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    @property
    def quantization(self) -> str:
        found = QUANT.findall(SPLIT.sub(".gguf", PurePosixPath(self.main).name).removesuffix(".gguf"))
        return found[-1].upper() if found else ""

    def as_dict(self) -> dict:
        return {"fileName": self.main, "size": self.size, "parts": len(self.parts), "quantization": self.quantization}


def variants(files: tuple[HubFile, ...]) -> list[Variant]:
    """Every loadable GGUF model of the repo (projectors left out), largest first."""
    groups: dict[str, list[HubFile]] = {}
    for entry in files:
        name = PurePosixPath(entry.name).name.lower()
        if not name.endswith(".gguf") or name.startswith("mmproj"):
            continue
        groups.setdefault(SPLIT.sub("", entry.name), []).append(entry)
    found = [Variant(main=min(parts, key=lambda p: p.name).name, parts=tuple(sorted(parts, key=lambda p: p.name)))
             for parts in groups.values()]
    return sorted(found, key=lambda v: (-v.size, v.main))


def variant_pick(found: list[Variant], *, file_name: str | None, all_files: tuple[HubFile, ...], free_disk: int,
                 quant: str | None = None) -> Variant:
    """The asked-for file (any part of a split model names it) or quantization, else the largest that fits disk
    and memory."""
    if file_name:
        for variant in found:
            if file_name in {part.name for part in variant.parts}:
                return variant
        if any(entry.name == file_name for entry in all_files):
            raise ApplicationError(f"{file_name} is not a GGUF model file; llama-server can only load GGUF.",
                                   code="not_gguf", status=422, extra={"alternatives": [v.as_dict() for v in found]})
        raise ApplicationError(f"The repository has no file {file_name!r}.", code="file_not_found",
                               extra={"alternatives": [v.as_dict() for v in found]})
    if quant:
        return _quant_pick(found, quant)
    room = min(free_disk, memory_total())
    fitting = [v for v in found if v.size <= room]
    if not fitting:
        smallest = min(found, key=lambda v: v.size)
        raise NoRoom(f"No GGUF file of this repository fits this machine: the smallest, {smallest.main}, needs "
                     f"{smallest.size / GIB:.1f} GiB; {free_disk / GIB:.1f} GiB of disk are free and "
                     f"{memory_total() / GIB:.1f} GiB of memory can serve a model.",
                     code="insufficient_storage", extra={"alternatives": [v.as_dict() for v in found]})
    return fitting[0]


def _quant_pick(found: list[Variant], quant: str) -> Variant:
    """The file of that quantization; several (a repo with two Q4_K_M files) give the smallest."""
    matching = [v for v in found if v.quantization == quant.upper()]
    if matching:
        return min(matching, key=lambda v: (v.size, v.main))
    have = sorted({v.quantization for v in found if v.quantization})
    raise NotFound(f"The repository has no {quant} file; its quantizations: {', '.join(have) or 'none named'}.",
                   code="quantization_not_found", extra={"quantizations": have,
                                                         "alternatives": [v.as_dict() for v in found]})


def memory_total() -> int:
    """Memory a served model may use: LLAMA_MEMORY_LIMIT when set, else the machine's RAM."""
    limit = getattr(settings, "LLAMA_MEMORY_LIMIT", 0)
    if limit:
        return limit
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 62
