"""Write side of torrents: creating the torrent of a ready copy, and (from `sharing`) magnet downloads and seeding."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.db import transaction

from aiportal.models import Node
from models_app.models import AIModel, CopyStatus, ModelCopy, Source
from models_app.states import FETCHING
from models_app.services import PARTIAL_SUFFIX, model_notify
from torrents_app import creation, swarm
from torrents_app.magnets import advertised_peers, magnet_build, peer_text
from torrents_app.models import Torrent
from torrents_app.relay import relay_dir, segment_done, segment_name
from torrents_app.node_services import (
    AWAITING,
    FOUND,
    FOUND_LATE,
    LOOKING,
    MISSING,
    WAITING,
    fetch_note,
    fetch_percent,
    swarm_magnet,
    torrent_rows,
)
from torrents_app.sharing import (  # noqa: F401  (the agreed interface lives in this module)
    copy_remove,
    copy_start,
    disk_space_check,
    known_torrent,
    magnet_download_start,
    torrent_file_get,
    torrent_set_seeding,
)

log = logging.getLogger("aiportal.torrents")
pause = time.sleep  # how swarm_fetch waits between looks at the row
RELAYED = "relayed"  # a wait on the group's fetcher ended with the whole file from its relay
RELAY_QUIET = 2.0  # seconds without a segment after which a relay counts as done moving


def torrent_create_for_model(*, model_id: str, node: str) -> None:
    """Create the deterministic torrent of the model's files on `node` (this machine) and record its magnet
    (the first copy's: every copy of the same files makes the same torrent)."""
    copy = ModelCopy.objects.select_related("model").get(model_id=model_id, node=node)
    model = copy.model
    names = list(model.files.values_list("name", flat=True)) or [model.file_name]
    content, base = _content(Path(copy.path), names)
    web_seed = _web_seed(model, base, single=len(names) == 1)
    created = creation.torrent_create(content=content, fmt=settings.P2P_TORRENT_FORMAT, web_seed=web_seed)
    with transaction.atomic():
        Torrent.objects.update_or_create(copy=copy, defaults={
            "info_hash_v1": created.info_hash,
            "info_hash_v2": created.info_hash_v2,
            "torrent_file": created.data,
            "desired": Torrent.Desired.SEED if copy.seeding else Torrent.Desired.PAUSE,
            "error": "",
        })
        same = model.magnet_uri and (model.info_hash, model.info_hash_v2) == (created.info_hash, created.info_hash_v2)
        if not same:
            AIModel.objects.filter(pk=model_id).update(
                magnet_uri=magnet_with_peers(created.magnet, own_peers()), info_hash=created.info_hash,
                info_hash_v2=created.info_hash_v2, web_seed=web_seed,
            )
        model_notify(model)


def magnet_with_peers(magnet: str, peers: list[str]) -> str:
    """The magnet with `x.pe` peers (BEP 9) to connect to directly."""
    return magnet + "".join(f"&x.pe={peer}" for peer in peers)


def swarm_fetch(*, model_id: str, wait: float | None = None, poll: float = 0.1) -> bool:
    """Try to get a Hub file from peers before the Hub's HTTP (SPEC §8); True when the swarm has taken it over.

    A node of this group that seeds the same sha256 is asked directly; otherwise this node's daemon
    looks the sha256 record up in the DHT. Either way the torrent also lists the Hub's URL as a web
    seed, so peers and the Hub serve it together, and the node daemon verifies the result against the
    Hub's sha256 as it does every download. When no peer has sent the torrent's metadata within `wait`
    seconds the row is withdrawn and the caller downloads over HTTP; nothing was written to disk.

    When nobody has the file yet but another node of this group, or another portal (its claim in the
    DHT, see `claims`), is fetching it from the Hub, the download waits for that one to seed it, for as
    long as it makes progress (P2P_SWARM_STALL); the copy's `note` says what it waits for. Meanwhile it
    joins what that fetch's relay brings (`relay`) into its partial file: False when that made the whole
    file (the caller finds it there and checks it), or when the relay stopped part-way (the caller's HTTP
    resumes after it).
    """
    try:
        return _swarm_fetch(model_id=model_id, wait=wait, poll=poll)
    finally:  # whatever it waited for, it waits no more
        if ModelCopy.objects.filter(model_id=model_id, node=settings.NODE_NAME).exclude(note="").update(note=""):
            model_notify(AIModel(pk=model_id))


def _swarm_fetch(*, model_id: str, wait: float | None, poll: float) -> bool:
    wait = settings.P2P_SWARM_WAIT if wait is None else wait
    node = settings.NODE_NAME
    copy = ModelCopy.objects.select_related("model").filter(model_id=model_id, node=node).first()
    if wait <= 0 or copy is None or not _swarmable(copy.model, node):
        return False
    model = copy.model
    web_seed = _web_seed(model, model.file_name, single=True)
    template = magnet_build(name=model.file_name, size=model.size, web_seeds=[web_seed])
    joiner = RelayJoin(copy)
    peer, waited = None, False
    for _ in range(3):
        waiting = _group_fetch_wait(copy, poll=poll, joiner=joiner)
        if waiting is None:
            return False  # cancelled while it waited: the caller finds out and cleans up
        if waiting == RELAYED:
            log.info("%s: all of it came through the relay of the node of this group fetching it; verifying",
                     model_id)
            return False  # the caller finds the whole file there, and checks it
        peer, waited = _group_copy(model, node), waited or waiting
        if peer is not None or not waiting:
            break
        # It waited for a node of the group and finds no seed of it listed at the moment it looks (its rows
        # changing as it starts to seed): look again rather than fetch the file from the Hub a second time.
        log.info("%s: the node of this group it waited for lists no seed of it yet; looking again", model_id)
    if peer is not None:
        joiner.hand_over()  # what the relay brought is the beginning of the torrent's file, checked as it is added
        v1, v2, endpoint = peer
        magnet = swarm_magnet(magnet_with_peers(template, [endpoint]), v1=v1, v2=v2)
        values = {"info_hash_v1": v1, "info_hash_v2": v2, "magnet_source": magnet, "desired": Torrent.Desired.DOWNLOAD,
                  "state": FOUND_LATE if waited else FOUND, "torrent_file": known_torrent(v1=v1, v2=v2)}
        log.info("%s: node at %s of this group seeds the same sha256; fetching it from there", model_id, endpoint)
    else:
        values = {"magnet_source": template, "desired": Torrent.Desired.LOOKUP, "state": LOOKING}
    AIModel.objects.filter(pk=model_id).update(web_seed=web_seed)
    Torrent.objects.update_or_create(copy=copy, defaults={"torrent_file": None, "error": "", "info_hash_v1": "",
                                                          "info_hash_v2": "", **values})
    rows = torrent_rows(model_id=model_id, node=node)
    deadline = time.monotonic() + wait
    relayed = False
    while time.monotonic() < deadline:
        state = rows.values_list("state", flat=True).first()
        if state not in WAITING:
            if state is not None:
                joiner.hand_over()
            return state is not None  # metadata came: the node daemon downloads and verifies it
        if state == MISSING:
            break
        if state == AWAITING:
            # Another portal fetches it from the Hub: the node daemon watches that fetch's progress and
            # gives up on it when it stalls; this job waits as long as the daemon and the copy are there,
            # joining the segments the relay brings meanwhile.
            relayed = joiner.step()
            if relayed or not _still_wanted(copy):
                break
            deadline = time.monotonic() + wait  # the record it waits for: its metadata has `wait` to come
        pause(poll)
    last = rows.values_list("state", "error").first()
    withdrawn, _ = rows.filter(state__in=WAITING).delete()
    if withdrawn and not Torrent.objects.filter(copy__model_id=model_id).exists():
        AIModel.objects.filter(pk=model_id).update(info_hash="", info_hash_v2="")
    if relayed:
        log.info("%s: all of it came through the relay of the portal fetching it from the Hub; verifying", model_id)
    elif withdrawn:
        why = last[1] if last and last[0] == MISSING and last[1] else \
            f"no peer sent the file's metadata within {wait:.0f} s"
        log.info("%s: %s; downloading it from the Hub%s", model_id, why,
                 f", from byte {joiner.done} on (the relay brought the rest)" if joiner.done else "")
    return not withdrawn and not relayed


class RelayJoin:
    """The download job's half of the relay (see `relay`): joins, in order, the segments this node's daemon
    has received into the copy's partial file, where the Hub's HTTP resumes if the relay stops half-way.
    It hashes the bytes as it joins them, so that the check of a file the relay brought whole reads nothing."""

    def __init__(self, copy: ModelCopy):
        model = copy.model
        self.copy, self.total = copy, model.size
        self.dest = Path(copy.path) / model.file_name
        self.partial = self.dest.with_name(self.dest.name + PARTIAL_SUFFIX)
        self.folder = relay_dir(copy.node, model.sha256) if swarm.is_sha256(model.sha256) else None
        self.segments = swarm.relay_segments(self.total) if self.total else []
        self.size = swarm.relay_segment_size(self.total)
        self.done, self.since, self.rate = 0, time.monotonic(), 0.0
        self.piece = creation.piece_size_for(self.total)
        self.hasher: creation.Hasher | None = None

    def step(self) -> bool:
        """Join what has come; True once the file is whole (moved to its name, for the job to verify)."""
        if self.folder is None:
            return False
        done = self.partial.stat().st_size if self.partial.exists() else 0
        index = done // self.size
        if done % self.size and done != self.total:
            return False  # not the relay's: leave it to HTTP
        while index < len(self.segments) and segment_done(self.folder, index).exists():
            offset, length = self.segments[index]
            if offset == 0:
                self.hasher = creation.Hasher(self.piece)  # from the first byte (a job that restarted mid-way has none)
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            segment = self.folder / segment_name(self.copy.model.sha256, index)
            with open(segment, "rb") as src, open(self.partial, "r+b" if index else "wb") as out:
                at = offset
                while at < offset + length:
                    chunk = src.read(min(self.piece, offset + length - at))
                    if not chunk:
                        log.warning("%s: segment %d of the relay is short; leaving the rest to HTTP",
                                    self.copy.model_id, index)
                        self.hasher = None
                        return False
                    os.pwrite(out.fileno(), chunk, at)
                    if self.hasher is not None:
                        self.hasher.update(chunk)
                    at += len(chunk)
            done, index = offset + length, index + 1
        if done != self.done:
            now = time.monotonic()
            self.rate = 0.5 * self.rate + 0.5 * (done - self.done) / max(now - self.since, 1e-3)
            self.done, self.since = done, now
            ModelCopy.objects.filter(pk=self.copy.pk, cancel_requested=False).update(
                downloaded_bytes=done, peer_bytes=done, download_progress=100.0 * done / max(self.total, 1),
                download_rate=int(self.rate))
            model_notify(self.copy.model)
        if done == self.total and self.total:
            os.replace(self.partial, self.dest)
            if self.hasher is not None:
                creation.file_hashes_known(self.dest, piece_size=self.piece, hashes=self.hasher.result())
            return True
        return False

    def moving(self, within: float) -> bool:
        """Segments were joined in the last `within` seconds (more are on their way)."""
        return bool(self.done) and time.monotonic() - self.since < within

    def hand_over(self) -> None:
        """The torrent takes over (its record was found): what the relay brought is its file's beginning."""
        if self.done and self.partial.exists() and not self.dest.exists():
            os.replace(self.partial, self.dest)


def _still_wanted(copy: ModelCopy) -> bool:
    """The copy is still asked for, and its node's daemon (that does the waiting) still beats."""
    node = Node.objects.filter(name=copy.node).first()
    wanted = ModelCopy.objects.filter(pk=copy.pk, cancel_requested=False).exists()
    return wanted and node is not None and node.online


def _group_fetch_wait(copy: ModelCopy, *, poll: float, joiner: RelayJoin) -> bool | str | None:
    """When another online node of this group started fetching the same file first, wait until it seeds it
    (True), or until its fetch stops making progress for P2P_SWARM_STALL seconds (False, as when there is
    none); None when this copy was cancelled meanwhile. Meanwhile the segments its relay brings are joined
    (`joiner`); RELAYED once they make the whole file. Once it seeds, the relay still moving is waited
    out: the torrent would fetch those bytes again."""
    stall, waited = float(settings.P2P_SWARM_STALL), False
    seen, since = None, time.monotonic()
    while True:
        if joiner.step():
            return RELAYED
        fetcher = _group_fetcher(copy)
        if fetcher is None:
            return waited
        if seeders(sha256=copy.model.sha256, exclude=copy.node) and not joiner.moving(within=RELAY_QUIET):
            return waited
        if not ModelCopy.objects.filter(pk=copy.pk, cancel_requested=False).exists():
            return None
        progress = (fetcher.node, fetcher.status, fetcher.downloaded_bytes)
        if progress != seen or fetcher.status == CopyStatus.VERIFYING:
            if not waited:
                log.info("%s: node %s of this group is fetching the same file; waiting for it", copy.model_id,
                         fetcher.node)
            if progress != seen:
                how_far = {CopyStatus.VERIFYING: "checking it", CopyStatus.READY: "about to share it"}.get(
                    fetcher.status) or fetch_percent(fetcher.downloaded_bytes, copy.model.size)
                ModelCopy.objects.filter(pk=copy.pk).update(note=fetch_note(f"node {fetcher.node}", how_far))
                model_notify(copy.model)
            seen, since, waited = progress, time.monotonic(), True
        elif time.monotonic() - since > stall:
            log.info("%s: node %s made no progress for %.0f s; fetching it from the Hub too", copy.model_id,
                     fetcher.node, stall)
            return False
        pause(poll)


def _group_fetcher(copy: ModelCopy) -> ModelCopy | None:
    """The copy of these bytes that an online node of this group was asked for first, when it is not this
    one: the group's fetcher, whose seed the others wait for (whichever job looks first, each finds the same).
    A fetcher whose copy is ready but not seeded yet (its daemon is adding the torrent) is still waited for."""
    online = [node for node in Node.objects.all() if node.online or node.name == copy.node]
    same = ModelCopy.objects.filter(model__sha256=copy.model.sha256, node__in=[node.name for node in online]
                                    ).order_by("created_at", "pk")
    sharing = [node.name for node in online if node.p2p_port]
    first = same.filter(status=CopyStatus.READY, seeding=True, node__in=sharing).exclude(node=copy.node).first() \
        or same.filter(status__in=FETCHING).first()
    return first if first is not None and first.pk != copy.pk else None


def swarm_running(*, model_id: str) -> bool:
    """This node's daemon is fetching this Hub file from the swarm (HTTP must keep out of its files)."""
    rows = torrent_rows(model_id=model_id, node=settings.NODE_NAME)
    return rows.filter(desired=Torrent.Desired.DOWNLOAD).exclude(state="error").exists()


def swarm_release(*, model_id: str) -> bool:
    """Drop a swarm download of the file that failed; True when there was one (its bytes are not trusted)."""
    rows = torrent_rows(model_id=model_id, node=settings.NODE_NAME)
    released, _ = rows.filter(desired=Torrent.Desired.DOWNLOAD, state="error").delete()
    return bool(released)


def _swarmable(model: AIModel, node_name: str) -> bool:
    """A single-file Hub model whose sha256 the Hub gave, on a node whose daemon runs BitTorrent (its
    heartbeat names a P2P port)."""
    names = list(model.files.values_list("name", flat=True))
    if model.source != Source.HUGGINGFACE or len(names) != 1 or "/" in names[0] or not model.sha256:
        return False
    node = Node.objects.filter(name=node_name).first()
    return node is not None and node.online and bool(node.p2p_port)


def seeders(*, sha256: str, exclude: str) -> list[tuple[str, str, str]]:
    """(v1, v2, address:port) of every online node of this group, but `exclude`, seeding these bytes."""
    nodes = {node.name: node for node in Node.objects.exclude(name=exclude) if node.online and node.p2p_port}
    same = (Torrent.objects.filter(copy__model__sha256=sha256, copy__node__in=nodes, copy__status=CopyStatus.READY,
                                   copy__seeding=True, desired=Torrent.Desired.SEED, torrent_file__isnull=False)
            .exclude(info_hash_v1="", info_hash_v2="").values_list("copy__node", "info_hash_v1", "info_hash_v2"))
    return [(v1, v2, peer_text(nodes[node].address, nodes[node].p2p_port)) for node, v1, v2 in same]


def _group_copy(model: AIModel, node: str) -> tuple[str, str, str] | None:
    """(v1, v2, address:port) of an online node of this group seeding the same bytes."""
    found = seeders(sha256=model.sha256, exclude=node) if model.sha256 else []
    return found[0] if found else None


def own_peers() -> list[str]:
    """This node's x.pe for the magnets it makes: NODE_ADDRESS with the P2P port its daemon reported."""
    node = Node.objects.filter(name=settings.NODE_NAME).first()
    port = node.p2p_port if node is not None and node.p2p_port else _listen_port(settings.P2P_LISTEN)
    return advertised_peers(settings.NODE_ADDRESS, port)


def _listen_port(listen: str) -> int | None:
    first = listen.split(",")[0].strip()
    port = first.rpartition(":")[2]
    return int(port) if port.isdigit() and int(port) else None


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
