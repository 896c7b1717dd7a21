"""Write side of P2P sharing: magnet downloads, copies from node to node, and seeding (desired state for the
node daemons).

Re-exported by `torrents_app.services` (the module of the agreed interface).
"""
from __future__ import annotations

import re
import shutil

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from aiportal.errors import ApplicationError, Conflict, NoRoom, NotFound
from aiportal.models import Node
from models_app import placement
from models_app.models import AIModel, CopyStatus, ModelCopy, Source
from models_app.selectors import model_get, model_list
from models_app.services import model_notify, model_unique_id
from models_app.states import copy_create, copy_move
from torrents_app.magnets import Magnet, magnet_build, magnet_parse, peer_text
from torrents_app.models import Torrent
from torrents_app.node_services import GROUP_COPY
from torrents_app.session import torrent_info_hashes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def magnet_download_start(*, magnet_uri: str, metadata: dict | None = None, node: str | None = None) -> AIModel:
    """Queue a download by magnet on a node (SPEC §9 placement). The same info-hash again gives the existing
    model: as it is when that node has it, else with a new copy there (a failed one is started afresh)."""
    magnet = magnet_parse(magnet_uri)
    name, size, sha256 = _metadata(metadata, magnet)
    place = placement.download_place(node=node, size=size or 0)
    existing = _existing(magnet)
    here = existing.copy_on(place.node) if existing is not None else None
    if here is not None and here.status != CopyStatus.ERROR:
        return existing
    with transaction.atomic():
        if existing is None:
            model = AIModel.objects.create(
                id=model_unique_id(base=_strip_gguf(name)), name=name, source=Source.MAGNET, size=size or 0,
                sha256=sha256, magnet_uri=magnet.uri, info_hash=magnet.info_hash_v1, info_hash_v2=magnet.info_hash_v2,
                web_seed=magnet.web_seeds[0] if magnet.web_seeds else "",
            )
        else:
            model = existing
            ModelCopy.objects.filter(model=model, node=place.node).delete()
        _fetch_copy(model, place, magnet=magnet.uri, v1=magnet.info_hash_v1, v2=magnet.info_hash_v2,
                    torrent_file=known_torrent(v1=magnet.info_hash_v1, v2=magnet.info_hash_v2))
    return model_list().get(pk=model.pk)


def _fetch_copy(model: AIModel, place: placement.Place, *, magnet: str, v1: str, v2: str,
                torrent_file: bytes | None, state: str = "") -> ModelCopy:
    """A queued copy on the place's node that its torrent engine downloads over BitTorrent and verifies."""
    copy = copy_create(model=model, node=place.node, path=place.folder(model.pk))
    Torrent.objects.create(copy=copy, info_hash_v1=v1, info_hash_v2=v2, magnet_source=magnet,
                           torrent_file=torrent_file, desired=Torrent.Desired.DOWNLOAD, state=state)
    model_notify(model)
    return copy


def copy_start(*, model_id: str, node: str) -> AIModel:
    """Make a copy of the model's files on `node` over BitTorrent, from the nodes of this group that seed them,
    connecting to them directly; the Hub's web seed (when the torrent has one) joins only if they send nothing
    for a while. The node's torrent engine verifies the copy against the model's sha256 and then seeds it
    (SPEC §9)."""
    model = model_get(model_id=model_id)
    place = placement.download_place(node=node, size=0)
    here = model.copy_on(place.node)
    if here is not None and here.status != CopyStatus.ERROR:
        return model
    holders = _seeding_copies(model, exclude=place.node)
    if not holders:
        raise Conflict(_no_seeder(model), code="no_seeder", extra={"holders": model.holders})
    place = placement.download_place(node=place.node, size=model.size)
    torrent, endpoints = holders[0][0], [endpoint for _, endpoint in holders]
    with transaction.atomic():
        ModelCopy.objects.filter(model=model, node=place.node).delete()  # a failed copy starts afresh
        # The seeders as direct peers; the rest (files, web seeds) is in the group's .torrent.
        magnet = magnet_build(info_hash_v1=torrent.info_hash_v1, info_hash_v2=torrent.info_hash_v2,
                              name=model.file_name, size=model.size, peers=endpoints)
        _fetch_copy(model, place, magnet=magnet, v1=torrent.info_hash_v1, v2=torrent.info_hash_v2,
                    torrent_file=bytes(torrent.torrent_file), state=GROUP_COPY)
    return model_get(model_id=model_id)


def seeders_of(*, model: AIModel, exclude: str) -> list[str]:
    """The online nodes (but `exclude`) that seed the model's files, as address:port."""
    return [endpoint for _, endpoint in _seeding_copies(model, exclude=exclude)]


def _seeding_copies(model: AIModel, *, exclude: str) -> list[tuple[Torrent, str]]:
    """(torrent, address:port) of each online node but `exclude` that seeds the model's files."""
    nodes = {n.name: n for n in Node.objects.exclude(name=exclude) if n.online and n.p2p_port}
    rows = Torrent.objects.filter(copy__model=model, copy__node__in=nodes, copy__status=CopyStatus.READY,
                                  copy__seeding=True, desired=Torrent.Desired.SEED, torrent_file__isnull=False)
    return [(t, peer_text(nodes[t.copy.node].address, nodes[t.copy.node].p2p_port)) for t in rows.select_related("copy")]


def _no_seeder(model: AIModel) -> str:
    if not model.holders:
        return f"Model {model.id} has no complete copy on any node to copy from."
    return (f"No online node seeds {model.id} (it is on {', '.join(model.holders)}): resume its seeding there, "
            "or check that the node's daemon runs with BitTorrent on.")


def copy_remove(*, model_id: str, node: str) -> AIModel:
    """Remove the model's copy on `node`: it turns `removing`, and that node's daemon stops sharing it and
    deletes its files (when it is back, if it is offline now). 409 while it serves there, or when it is
    the only copy left (delete the model instead)."""
    model = model_get(model_id=model_id)
    copy = model.copy_on(node)
    if copy is None:
        raise NotFound(f"Model {model_id} has no copy on node {node}.", code="copy_not_found", extra={"node": node})
    instance = model.instance_on(node)
    if instance is not None and instance.desired == "serving":
        raise Conflict(f"Model {model_id} is served on node {node}: stop it there before removing that copy.",
                       code="copy_serving", extra={"node": node})
    if not [other for other in model.copy_list() if other.node != node and other.status != CopyStatus.REMOVING]:
        raise Conflict(f"Node {node} holds the only copy of {model_id}: delete the model instead.",
                       code="last_copy", extra={"node": node})
    with transaction.atomic():
        # A Hub download job there sees the cancel at its next progress write and stops.
        copy_move(ModelCopy.objects.filter(pk=copy.pk), CopyStatus.REMOVING, cancel_requested=True, download_rate=0,
                  upload_rate=0, peers=0, seeds=0)
        Torrent.objects.filter(copy=copy).update(desired=Torrent.Desired.REMOVE)
        model_notify(model)
    return model_get(model_id=model_id)


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


def torrent_set_seeding(*, model_id: str, enabled: bool, node: str | None = None) -> AIModel:
    """Pause or resume seeding of one model, on every node or on one (a download in progress carries on
    either way)."""
    model = model_get(model_id=model_id)
    copies = model.copies.all() if node is None else model.copies.filter(node=node)
    with transaction.atomic():
        copies.update(seeding=enabled)
        desired = Torrent.Desired.SEED if enabled else Torrent.Desired.PAUSE
        Torrent.objects.filter(copy__in=copies, desired__in=[Torrent.Desired.SEED, Torrent.Desired.PAUSE]).update(
            desired=desired)
        model_notify(model)
    return model_get(model_id=model_id)


def torrent_file_get(*, model_id: str) -> tuple[str, bytes]:
    """The model's .torrent as (file name, bytes)."""
    model = model_get(model_id=model_id)
    torrent = Torrent.objects.filter(copy__model=model, torrent_file__isnull=False).first()
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


def _existing(magnet: Magnet) -> AIModel | None:
    match = Q()
    if magnet.info_hash_v1:
        match |= Q(info_hash=magnet.info_hash_v1)
    if magnet.info_hash_v2:
        match |= Q(info_hash_v2=magnet.info_hash_v2)
    return model_list().filter(match).first()


def _strip_gguf(name: str) -> str:
    return name[:-5] if name.lower().endswith(".gguf") else name


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"
