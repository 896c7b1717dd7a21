"""The relay (SPEC §8): portals that wait on another's Hub fetch receive the file while it arrives.

Without it a waiter starts only once the fetcher is done (a torrent needs every byte hashed), so that
four portals wanting one file at once took three times as long as one download. With it, see `swarm`:

- the fetching node cuts each segment of its partial file, as soon as it is there, into a file of its
  own (`relay_dir(node, sha256) / segment_name(sha256, index)`), seeds a v1 torrent of it and puts the relay item naming
  every segment so far;
- a waiting node reads the item a few times a second, fetches each segment it names from the fetcher
  (the item's address) and from the other waiters (the DHT), and once a segment is on disk leaves
  `<index>.ok` beside it; the download job joins the segments, in order, into its partial file
  (`services`), so that a fetch that stops half-way is resumed from the Hub where the relay left off;
- segments are seeded for a while after this node's copy is done (`linger`), for the waiters behind.

Between portals the item is a BEP 44 item in the DHT; between the nodes of one group (one database) it is
the fetcher's copy row (`ModelCopy.relay`), read by the nodes whose downloads wait on that fetch
(`services._group_fetch_wait`), with or without a DHT.

`Relay` is the torrent engine's part that does this. Its torrents are in the engine's session under
keys of their own (`relay/<sha256>/<index>`); of the rows it writes only its own copies' `relay`.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from aiportal.models import Node
from models_app.models import CopyStatus, ModelCopy, Source
from models_app.services import PARTIAL_SUFFIX
from models_app.states import FETCHING
from torrents_app import creation, swarm
from torrents_app.magnets import advertised_peers, magnet_build, peer_text
from torrents_app.session import RELAY_KEY_PREFIX, DuplicateTorrent, is_loopback_ip

log = logging.getLogger("aiportal.torrents")
# Small pieces: the waiters ask the fetcher for different ones before they ask each other (rarest first), so its
# upload goes less often to bytes another waiter already has. Measured with bench/swarm.py (4 nodes, 8-MiB segments):
# last node / T_min 2.22-2.34 with 256-KiB pieces, 1.94 with 64 KiB, 2.06 with 16 KiB.
SEGMENT_PIECE = 64 * 1024


def relay_dir(node: str, sha256: str) -> Path:
    """Where a node keeps the segments of one file (a node's own folder: several engines may share a machine)."""
    if not swarm.is_sha256(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return Path(settings.AI_TORRENT_DIR) / "relay" / node / sha256


def segment_name(sha256: str, index: int) -> str:
    """A segment's file name, and so its torrent's name: with the file's sha256 in it, so that equal bytes at the
    same place of two files (zeros, say) make two torrents, not one that the second relay could not add."""
    return f"{sha256[:16]}.{index}"


def segment_done(folder: Path, index: int) -> Path:
    """The mark a waiting node leaves once segment `index` is complete, checked and on disk."""
    return folder / f"{index}.ok"


@dataclass
class Segments:
    """The segments of one file on this node: cut from its own fetch (`feeding`), or fetched from another's."""

    sha256: str
    total: int
    folder: Path
    feeding: bool
    model_id: str
    hashes: dict[int, bytes] = field(default_factory=dict)  # index -> v1 info-hash, of each segment in the session
    ready: set[int] = field(default_factory=set)  # segments complete on disk
    peers: set[tuple[str, int]] = field(default_factory=set)  # the other nodes of this relay, as found so far
    next_ask: float = 0.0  # waiting: when to read the item again
    next_put: float = 0.0  # feeding: the earliest moment of the next put
    dirty: bool = False  # feeding: segments cut since the last put
    moved: float = 0.0  # when the relay last moved here: a segment named, or one complete
    done_at: float | None = None  # when this node's copy stopped fetching: the segments linger from then
    stopped: bool = False  # feeding: a segment could not be cut (disk full): no more are
    group: bool = False  # the item goes through the group's database (the copy rows), not the DHT


class Relay:
    REFUSED_FOR = 60.0

    def __init__(self, *, p2p, node_name: str, clock: Callable[[], float], named_dht: bool, dht: bool = True):
        self.p2p, self.node_name, self.clock, self.dht = p2p, node_name, clock, dht
        # In a DHT of a few named nodes an item is read or stored in milliseconds; the public DHT is asked
        # no more often than every few seconds.
        self.ask_every = 0.25 if named_dht else 5.0
        self.put_every = 0.25 if named_dht else 5.0
        self.linger = 30.0 if named_dht else 120.0
        self.files: dict[str, Segments] = {}  # sha256 -> its segments here
        self.keys: dict[str, tuple[str, int]] = {}  # session key -> (sha256, index)
        self.flushing: set[str] = set()
        self.refused: dict[str, float] = {}  # sha256 -> until when a relay of it is not tried again (no room)
        shutil.rmtree(Path(settings.AI_TORRENT_DIR) / "relay" / node_name, ignore_errors=True)  # a restart's leftovers
        ModelCopy.objects.filter(node=node_name).exclude(relay="").update(relay="")
        # What `group` found at the last reconcile: the models whose item is in the group's database, the item
        # of each fetch waited on, and the other nodes waiting on that fetch.
        self.grouped: set[str] = set()
        self.group_items: dict[str, bytes] = {}
        self.group_peers: dict[str, set[tuple[str, int]]] = {}

    @staticmethod
    def owns(key: str) -> bool:
        return key.startswith(RELAY_KEY_PREFIX)

    def receiving(self, within: float) -> set[str]:
        """Models whose waiting copy saw a segment named or complete in the last `within` seconds: the record
        of the file can wait (the torrent would fetch again what the relay brings)."""
        now = self.clock()
        return {seg.model_id for seg in self.files.values()
                if not seg.feeding and seg.done_at is None and now - seg.moved < within}

    # -- what the engine calls -------------------------------------------------------------------
    def group(self) -> tuple[dict[str, str], dict[str, str]]:
        """This node's Hub fetches over HTTP that other online nodes of the group wait on, and this node's
        downloads that wait on another node's fetch with a relay (each: model -> sha256). Waiting copies
        say so in their `note` (`services._group_fetch_wait`); `once` relays these through the database."""
        fetching, waiting, self.group_items, self.group_peers, self.grouped = {}, {}, {}, {}, set()
        mine = list(ModelCopy.objects.filter(
            node=self.node_name, status__in=FETCHING, torrent__isnull=True, model__source=Source.HUGGINGFACE,
        ).values_list("model_id", "model__sha256", "note"))
        if not mine:
            return fetching, waiting
        online = {node.name: node for node in Node.objects.all() if node.online and node.name != self.node_name}
        for model_id, sha256, note in mine:
            if not online or not swarm.is_sha256(sha256):
                continue
            waiters = _waiters(sha256).filter(node__in=online).values_list("node", flat=True)
            if not note:
                if waiters.exists():
                    fetching[model_id] = sha256
                continue
            item = ModelCopy.objects.filter(model__sha256=sha256, node__in=online).exclude(relay="").values_list(
                "relay", flat=True).first()
            if item:
                try:
                    self.group_items[model_id] = bytes.fromhex(item)
                except ValueError:
                    self.group_items[model_id] = b""  # not an item of ours: nothing named
                waiting[model_id] = sha256
                # The other nodes waiting on it pass segments to each other: without a DHT, only the rows tell
                # them of each other.
                self.group_peers[model_id] = {(online[name].address, online[name].p2p_port) for name in waiters
                                              if online[name].address and online[name].p2p_port}
        self.grouped = set(fetching) | set(waiting)
        return fetching, waiting

    def once(self, *, fetching: dict[str, str], waiting: dict[str, str]) -> bool:
        """Cut what this node's fetches (`fetching`: model -> sha256, those it holds a claim on or the group
        waits on) have brought, ask for the items of the fetches its downloads wait on (`waiting`), and let
        go of finished files; the item of those `group` found goes through the group's database.
        True while any segment moves."""
        now = self.clock()
        for model_id, sha256 in fetching.items():
            seg = self.files.get(sha256)
            if seg is None or not seg.feeding:
                self._start(model_id, sha256, feeding=True, adopt=seg)
        for model_id, sha256 in waiting.items():
            seg = self.files.get(sha256)
            if seg is None or (seg.feeding and model_id not in fetching and not seg.hashes):
                self._start(model_id, sha256, feeding=False, adopt=None)
        for seg in self.files.values():
            if seg.model_id in self.grouped:
                seg.group = True
                seg.peers |= self.group_peers.get(seg.model_id, set())
        copies = {model_id: (status, path, name) for model_id, status, path, name in ModelCopy.objects.filter(
            node=self.node_name, model_id__in={seg.model_id for seg in self.files.values()}).values_list(
            "model_id", "status", "path", "model__file_name")}
        busy = False
        for sha256, seg in list(self.files.items()):
            status, path, name = copies.get(seg.model_id, (None, "", ""))
            if seg.feeding:
                if status in (*FETCHING, CopyStatus.READY):
                    busy = self._cut(seg, Path(path) / name) or busy
                if seg.dirty and now >= seg.next_put:
                    self._put(seg, now)
                # A verified copy still has its last segments to cut; a failed or deleted one has none to come.
                active = status in FETCHING or (status == CopyStatus.READY and not seg.stopped
                                                and len(seg.hashes) < len(swarm.relay_segments(seg.total)))
            else:
                active = status in FETCHING and seg.model_id in waiting
                if active and seg.group:
                    self.on_item(swarm.relay_salt(sha256), self.group_items.get(seg.model_id, b""))
                elif active and now >= seg.next_ask:
                    seg.next_ask = now + self.ask_every
                    self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=swarm.relay_salt(sha256))
            if active:
                seg.done_at = None
            elif seg.done_at is None:
                seg.done_at = now
            elif now - seg.done_at > self.linger or (seg.feeding and seg.group and not self._waited_on(seg)):
                self._drop(seg)
        return busy

    def _waited_on(self, seg: Segments) -> bool:
        """A node of the group still waits on this node's fetch (the group's database says who does)."""
        return _waiters(seg.sha256).exclude(node=self.node_name).exists()

    def on_item(self, salt: bytes, value: bytes) -> None:
        seg = self.files.get(salt[:32].hex())
        relay = swarm.relay_parse(value) if value else None
        if seg is None or seg.feeding or relay is None or seg.done_at is not None:
            return
        total, endpoint, hashes = relay
        if total != seg.total:
            log.warning("%s: a relay item names a file of %d bytes, not %d; ignored", seg.model_id, total, seg.total)
            return
        new = [index for index in range(len(hashes)) if index not in seg.hashes]
        joined = self._joined(seg) if new else 0  # (each DHT node answers: most answers name nothing new)
        for index in new:
            info_hash = hashes[index]
            if index < joined:
                continue
            _, length = swarm.relay_segments(seg.total)[index]
            key = self._key(seg.sha256, index)
            magnet = magnet_build(info_hash_v1=info_hash.hex(), name=segment_name(seg.sha256, index), size=length,
                                  peers=[endpoint] if endpoint else [])
            seg.folder.mkdir(parents=True, exist_ok=True)
            try:
                self.p2p.add(key, save_path=seg.folder, magnet=magnet)
            except DuplicateTorrent:
                continue  # this very segment is in the session already (another model of the same file)
            # Announce it now, so that the other waiters find this node too, and call at once on the nodes met
            # over the earlier segments: found anew in the DHT for each segment, they came too late to share it.
            self.p2p.reconnect(key, peers=sorted(seg.peers))
            seg.hashes[index] = info_hash
            self.keys[key] = (seg.sha256, index)
            seg.moved = self.clock()

    def on_alert(self, name: str, key: str, alert) -> None:
        sha256, index = self.keys.get(key, ("", -1))
        seg = self.files.get(sha256)
        if seg is None:
            return
        if name == "metadata_received_alert":
            files = self.p2p.files(key)
            _, length = swarm.relay_segments(seg.total)[index]
            if len(files) != 1 or files[0].path != segment_name(seg.sha256, index) or files[0].size != length:
                log.warning("%s: segment %d of its relay is not what the item said (%s); dropped", seg.model_id,
                            index, ", ".join(f"{f.path} ({f.size} bytes)" for f in files[:3]))
                self._remove(key)
        elif name == "torrent_finished_alert" and not seg.feeding and index not in seg.ready:
            seg.peers |= self.p2p.dialled_peers(key)
            self.flushing.add(key)
            self.p2p.flush(key)
        elif name == "cache_flushed_alert" and key in self.flushing:
            self.flushing.discard(key)
            segment_done(seg.folder, index).touch()
            seg.ready.add(index)
            seg.moved = self.clock()
        elif name in ("file_error_alert", "torrent_error_alert"):
            log.warning("%s: segment %d of its relay failed: %s", seg.model_id, index, alert.message())
            self._remove(key)

    def tick(self) -> bool:
        """Segments still on their way to this node (the daemon then steps often)."""
        return any(not seg.feeding and seg.done_at is None and len(seg.ready) < len(seg.hashes)
                   for seg in self.files.values())

    # -- steps ------------------------------------------------------------------------------------
    def _start(self, model_id: str, sha256: str, *, feeding: bool, adopt: Segments | None) -> None:
        total = ModelCopy.objects.filter(model_id=model_id, node=self.node_name).values_list(
            "model__size", flat=True).first() or 0
        if total <= 0:
            return
        seg = Segments(sha256=sha256, total=total, folder=relay_dir(self.node_name, sha256), feeding=feeding,
                       model_id=model_id)
        if adopt is not None:  # this node received segments of it, and now fetches the rest itself
            kept = 0  # the segments complete from the first on: the rest are cut afresh from its own fetch
            while kept in adopt.ready and kept in adopt.hashes:
                kept += 1
            seg.hashes = {i: adopt.hashes[i] for i in range(kept)}
            for i in set(adopt.hashes) - seg.hashes.keys():
                self._remove(self._key(sha256, i))
            seg.ready = set(seg.hashes)
        if self.clock() < self.refused.get(sha256, 0.0):
            return
        seg.folder.mkdir(parents=True, exist_ok=True)
        # Room for every segment beside the file itself (the fetcher's partial file is on its way too).
        if shutil.disk_usage(seg.folder).free < 2 * total and adopt is None:
            log.warning("%s: no room for a relay of it beside the file (%d bytes free, %d wanted); %s", model_id,
                        shutil.disk_usage(seg.folder).free, 2 * total,
                        "not relaying it" if feeding else "waiting for its record instead")
            self.refused[sha256] = self.clock() + self.REFUSED_FOR
            shutil.rmtree(seg.folder, ignore_errors=True)
            return
        if sha256 in self.files and self.files[sha256] is not adopt:
            self._drop(self.files[sha256])
        self.files[sha256] = seg

    def _cut(self, seg: Segments, dest: Path) -> bool:
        """Seed each segment that the fetch has brought in full since the last look."""
        partial = dest.with_name(dest.name + PARTIAL_SUFFIX)
        source = partial if partial.exists() else dest
        try:
            have = source.stat().st_size
        except FileNotFoundError:
            return False
        if seg.stopped or (source is dest and have != seg.total):
            return False
        cut = False
        for index, (offset, length) in enumerate(swarm.relay_segments(seg.total)):
            if index in seg.hashes:
                continue
            if offset + length > have or len(seg.hashes) != index:
                break
            if not seg.hashes:
                log.info("%s: relaying its Hub fetch to the %s that wait on it, in segments of %d bytes",
                         seg.model_id, "nodes of this group" if seg.group else "portals",
                         swarm.relay_segment_size(seg.total))
            try:
                seg.hashes[index] = self._seed(seg, index, source, offset, length)
            except FileNotFoundError:
                break  # the partial file was just renamed: the rest is cut from the file itself next time
            except (OSError, DuplicateTorrent) as exc:
                # Waiters get what was cut, then the record, as without a relay.
                log.warning("%s: cannot relay segment %d (%s); relaying no more of it", seg.model_id, index, exc)
                seg.stopped = True
                break
            seg.dirty = cut = True
        return cut

    def _seed(self, seg: Segments, index: int, source: Path, offset: int, length: int) -> bytes:
        seg.folder.mkdir(parents=True, exist_ok=True)
        target = seg.folder / segment_name(seg.sha256, index)
        with open(source, "rb") as src, open(target, "wb") as out:
            left = length
            while left:
                moved = os.copy_file_range(src.fileno(), out.fileno(), left, offset + length - left)
                if not moved:
                    raise OSError(f"{source} ended before byte {offset + length}")
                left -= moved
        created = creation.torrent_create(content=target, fmt="v1", piece=SEGMENT_PIECE)
        key = self._key(seg.sha256, index)
        self.p2p.add(key, save_path=seg.folder, torrent=created.data, seed_mode=True, max_uploads=1)
        self.p2p.reconnect(key)
        self.keys[key] = (seg.sha256, index)
        return bytes.fromhex(created.info_hash)

    def _put(self, seg: Segments, now: float) -> None:
        hashes = [seg.hashes[i] for i in range(len(seg.hashes))]
        if seg.group:  # the group's nodes reach this one where its heartbeat says (SPEC §9)
            value = swarm.relay_value(total=seg.total, endpoint=peer_text(settings.NODE_ADDRESS, self.p2p.listen_port()),
                                      info_hashes=hashes)
            ModelCopy.objects.filter(model_id=seg.model_id, node=self.node_name).update(relay=value.hex())
        if self.dht:  # other portals may wait on it as well
            value = swarm.relay_value(total=seg.total, endpoint=self._endpoint(), info_hashes=hashes)
            self.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY,
                                    salt=swarm.relay_salt(seg.sha256), value=value)
        seg.dirty, seg.next_put = False, now + (0.0 if seg.group else self.put_every)

    def _endpoint(self) -> str:
        """Where the waiters reach this node: its x.pe (SPEC §8); on loopback too when every DHT node it names is
        on loopback, so that every reader of the item is on this machine."""
        port = self.p2p.listen_port()
        advertised = advertised_peers(settings.NODE_ADDRESS, port)
        if advertised:
            return advertised[0]
        local = bool(self.p2p.dht_nodes) and all(is_loopback_ip(host) for host, _ in self.p2p.dht_nodes)
        return peer_text(settings.NODE_ADDRESS, port) if local else ""

    def _joined(self, seg: Segments) -> int:
        """Segments the download job joined into its partial file already (a daemon restarted mid-relay)."""
        copy = ModelCopy.objects.filter(model_id=seg.model_id, node=self.node_name).values_list(
            "path", "model__file_name").first()
        if copy is None:
            return 0
        partial = Path(copy[0]) / (copy[1] + PARTIAL_SUFFIX)
        return partial.stat().st_size // swarm.relay_segment_size(seg.total) if partial.exists() else 0

    def _drop(self, seg: Segments) -> None:
        for index in list(seg.hashes):
            self._remove(self._key(seg.sha256, index))
        shutil.rmtree(seg.folder, ignore_errors=True)
        if seg.feeding and seg.group:
            ModelCopy.objects.filter(model_id=seg.model_id, node=self.node_name).update(relay="")
        del self.files[seg.sha256]

    def _remove(self, key: str) -> None:
        self.p2p.remove(key)
        self.keys.pop(key, None)
        self.flushing.discard(key)

    @staticmethod
    def _key(sha256: str, index: int) -> str:
        return f"{RELAY_KEY_PREFIX}{sha256}/{index}"


def _waiters(sha256: str):
    """The copies of these bytes whose downloads wait on a fetch of them (`services._group_fetch_wait` notes it)."""
    return ModelCopy.objects.filter(model__sha256=sha256, status__in=FETCHING).exclude(note="")
