"""Write side of torrents: creating the torrent of a ready model, and (from `sharing`) magnet downloads and seeding."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.db import transaction

from models_app.models import AIModel
from models_app.services import model_notify
from torrents_app import creation
from torrents_app.models import Torrent
from torrents_app.sharing import (  # noqa: F401  (the agreed interface lives in this module)
    disk_space_check,
    magnet_download_start,
    torrent_file_get,
    torrent_set_seeding,
)


def torrent_create_for_model(*, model_id: str) -> None:
    """Create this node's deterministic torrent of the model's files and record its magnet."""
    model = AIModel.objects.get(pk=model_id)
    names = list(model.files.values_list("name", flat=True)) or [model.file_name]
    content, base = _content(Path(model.path), names)
    web_seed = _web_seed(model, base, single=len(names) == 1)
    created = creation.torrent_create(content=content, fmt=settings.P2P_TORRENT_FORMAT, web_seed=web_seed)
    with transaction.atomic():
        Torrent.objects.update_or_create(model=model, defaults={
            "node": model.node or settings.NODE_NAME,
            "info_hash_v1": created.info_hash,
            "info_hash_v2": created.info_hash_v2,
            "torrent_file": created.data,
            "desired": Torrent.Desired.SEED if model.seeding else Torrent.Desired.PAUSE,
            "error": "",
        })
        AIModel.objects.filter(pk=model_id).update(
            magnet_uri=created.magnet, info_hash=created.info_hash, info_hash_v2=created.info_hash_v2, web_seed=web_seed,
        )
        model_notify(model)


def _content(folder: Path, names: list[str]) -> tuple[Path, str]:
    """The file itself, or for split models the deepest folder holding every part (and its repo path)."""
    if len(names) == 1:
        return folder / names[0], names[0]
    parents = {PurePosixPath(name).parent for name in names}
    common = parents.pop() if len(parents) == 1 else PurePosixPath(".")
    if str(common) == ".":
        return folder, ""
    return folder / common, str(common)


def _web_seed(model: AIModel, base: str, *, single: bool) -> str:
    """The Hub's resolve URL at the pinned commit (BEP 19); a folder URL ends with `/`."""
    if model.source != "huggingface" or not model.repo_id or not model.revision or not base:
        return ""
    root = f"{settings.HF_ENDPOINT}/{model.repo_id}/resolve/{model.revision}/"
    if single:
        return root + quote(base)
    parent = str(PurePosixPath(base).parent)
    return root + ("" if parent == "." else quote(parent) + "/")
