"""Write side of P2P sharing: magnet downloads and per-model seeding (desired state for the node daemon).

Re-exported by `torrents_app.services` (the module of the agreed interface).
"""
from __future__ import annotations

import re
import shutil

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from aiportal.errors import ApplicationError, NoRoom, NotFound
from models_app import placement
from models_app.models import AIModel, Source, Status
from models_app.selectors import model_get
from models_app.services import model_notify, model_unique_id
from torrents_app.magnets import Magnet, magnet_parse
from torrents_app.models import Torrent
from torrents_app.session import torrent_info_hashes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def magnet_download_start(*, magnet_uri: str, metadata: dict | None = None, node: str | None = None) -> AIModel:
    """Queue a download by magnet on a node (SPEC §9 placement); the same info-hash twice there gives the
    existing model."""
    magnet = magnet_parse(magnet_uri)
    name, size, sha256 = _metadata(metadata, magnet)
    place = placement.download_place(node=node, size=size or 0)
    existing = _existing(magnet, place.node)
    if existing is not None:
        return existing
    with transaction.atomic():
        model_id = model_unique_id(base=_strip_gguf(name))
        model = AIModel.objects.create(
            id=model_id, name=name, source=Source.MAGNET, size=size or 0, sha256=sha256, status=Status.QUEUED,
            node=place.node, path=place.folder(model_id), magnet_uri=magnet.uri,
            info_hash=magnet.info_hash_v1, info_hash_v2=magnet.info_hash_v2,
            web_seed=magnet.web_seeds[0] if magnet.web_seeds else "",
        )
        Torrent.objects.create(model=model, node=place.node, info_hash_v1=magnet.info_hash_v1,
                               info_hash_v2=magnet.info_hash_v2, magnet_source=magnet.uri,
                               torrent_file=known_torrent(v1=magnet.info_hash_v1, v2=magnet.info_hash_v2),
                               desired=Torrent.Desired.DOWNLOAD)
        model_notify(model)
    return model


def known_torrent(*, v1: str, v2: str) -> bytes | None:
    """The complete .torrent of these info-hashes when this group's database already holds it (a copy on
    another node): a download given it fetches neither the metadata nor, for v2 and hybrid torrents, the
    piece hashes from peers (which halved a hybrid's speed on loopback)."""
    match = (Q(info_hash_v1=v1) if v1 else Q()) | (Q(info_hash_v2=v2) if v2 else Q())
    if not match:
        return None
    for blob in Torrent.objects.filter(match, torrent_file__isnull=False).values_list("torrent_file", flat=True):
        blob = bytes(blob)
        got_v1, got_v2 = torrent_info_hashes(blob)
        if (got_v1 or got_v2) and (not v1 or v1 == got_v1) and (not v2 or v2 == got_v2):
            return blob
    return None


def torrent_set_seeding(*, model_id: str, enabled: bool) -> AIModel:
    """Pause or resume seeding of one model (a download in progress carries on either way)."""
    model = model_get(model_id=model_id)
    with transaction.atomic():
        model.seeding = enabled
        model.save(update_fields=["seeding", "updated_at"])
        desired = Torrent.Desired.SEED if enabled else Torrent.Desired.PAUSE
        Torrent.objects.filter(model=model, desired__in=[Torrent.Desired.SEED, Torrent.Desired.PAUSE]).update(
            desired=desired)
        model_notify(model)
    return model


def torrent_file_get(*, model_id: str) -> tuple[str, bytes]:
    """The model's .torrent as (file name, bytes)."""
    model = model_get(model_id=model_id)
    torrent = Torrent.objects.filter(model=model).first()
    if torrent is None or not torrent.torrent_file:
        raise NotFound(f"Model {model_id!r} has no torrent yet: its files are not complete or not shared.",
                       code="torrent_not_found")
    return f"{model.id}.torrent", bytes(torrent.torrent_file)


def disk_space_check(*, size: int) -> None:
    """NoRoom (507) when `size` more bytes would not fit in AI_MODEL_DIR."""
    folder = settings.AI_MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if size > free:
        raise NoRoom(f"Not enough disk space: the model needs {_gib(size)} but {folder} has {_gib(free)} free.",
                     extra={"needed": size, "free": free})


def _metadata(metadata: dict | None, magnet: Magnet) -> tuple[str, int | None, str]:
    metadata = metadata or {}
    if not isinstance(metadata, dict):
        raise ApplicationError("metadata must be an object like {\"name\": …, \"size\": …}.", code="invalid_metadata")
    name = metadata.get("name") or magnet.name or (magnet.info_hash_v1 or magnet.info_hash_v2)[:16]
    size = metadata.get("size", magnet.size)
    sha256 = str(metadata.get("sha256") or "").lower()
    if not isinstance(name, str) or len(name) > 300:
        raise ApplicationError("metadata.name must be a text of at most 300 characters.", code="invalid_metadata")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ApplicationError("metadata.size must be a whole number of bytes.", code="invalid_metadata")
    if sha256 and not _SHA256.match(sha256):
        raise ApplicationError("metadata.sha256 must be 64 hex digits.", code="invalid_metadata")
    return name.strip(), size, sha256


def _existing(magnet: Magnet, node: str) -> AIModel | None:
    match = Q()
    if magnet.info_hash_v1:
        match |= Q(info_hash=magnet.info_hash_v1)
    if magnet.info_hash_v2:
        match |= Q(info_hash_v2=magnet.info_hash_v2)
    return AIModel.objects.filter(match, node=node).exclude(status=Status.ERROR).first()


def _strip_gguf(name: str) -> str:
    return name[:-5] if name.lower().endswith(".gguf") else name


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"
