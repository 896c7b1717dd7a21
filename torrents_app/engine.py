"""The torrent engine of the node daemon: the one owner of this node's libtorrent session.

Each `step()` drains libtorrent's alerts into `on_<alert name>` handlers, then reconciles the
desired state in the database in `*_once()` passes: seed ready models (paused when their
`seeding` is off), download magnet models, drop torrents whose rows vanished, hand finished
downloads to a verification thread, post stats, and save resume data now and then. Two parts of
it work on the swarm of Hub files (SPEC §8): `claims` elects one fetcher among portals that want a
file at once, and `relay` passes that fetch on to the others while it goes on; the relay's segment
torrents share the session under keys of their own, and their alerts go to it.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from models_app.models import CopyStatus, ModelCopy
from models_app.services import file_removals_run
from torrents_app import completion, node_services, swarm
from torrents_app.claims import Claims
from torrents_app.creation import torrent_from_resume
from torrents_app.magnets import advertised_peers, magnet_build, magnet_peer_endpoints
from torrents_app.models import Torrent
from torrents_app.relay import Relay
from torrents_app.resume import ResumeStore
from torrents_app.session import (
    DuplicateTorrent,
    P2PSession,
    SessionConfig,
    alert_record,
    alert_resume_bytes,
    alert_stats,
    alert_torrent_bytes,
    resume_info_hashes,
    torrent_files,
)

log = logging.getLogger("aiportal.torrents")

AVAILABLE = [CopyStatus.READY]
FETCHING = [CopyStatus.QUEUED, CopyStatus.DOWNLOADING, CopyStatus.VERIFYING]


class TorrentEngine:
    """Seeds, downloads and verifies this node's torrents; see the module docstring."""

    STATS_EVERY = 1.0
    RECONCILE_EVERY = 0.25
    STOP_TIMEOUT = 10.0
    DHT_NODES_EVERY = 5.0  # ping the named DHT nodes again (one that restarted rejoins the routing table)
    RECORDS_EVERY = 5.0  # look for seeds whose sha256 record is due (or whose last put reached no node)
    RECORD_REFRESH = 30 * 60.0  # republish a record this often (BEP 44 nodes drop items after ~2 h)
    NAMED_RECORD_REFRESH = 60.0  # ... in a DHT of a few named nodes, where one that restarts has lost them all
    WEB_SEED_FALLBACK = 30.0  # a group copy whose peers sent nothing this long gets the Hub's web seed back
    EARLY_ANNOUNCES = 3  # the first node refreshes also announce every torrent (see P2PSession.dht_announce_all)

    def __init__(self, *, node_name: str, config: SessionConfig | None = None, torrent_dir: Path | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.node_name = node_name
        self.config = config or SessionConfig.from_settings()
        self.resume = ResumeStore(torrent_dir or settings.AI_TORRENT_DIR)
        self.clock = clock
        self.p2p: P2PSession | None = None
        self.claims: Claims | None = None
        self.relay: Relay | None = None
        self.finishing: set[str] = set()
        self.verifying: dict[str, Future] = {}
        self.saving: set[str] = set()
        self.pausing: set[str] = set()
        self.riders: dict[str, str] = {}  # model -> the model whose torrent (same info-hash) shares its bytes
        self.unfiled: set[str] = set()  # downloads whose complete .torrent is not in the database yet
        self.executor: ThreadPoolExecutor | None = None
        self.next_stats = self.next_resume = self.next_dht_nodes = self.next_records = self.next_reconcile = 0.0
        self.node_refreshes = 0
        self.published: dict[str, float] = {}  # model -> when its sha256 record was last published
        self.lookups: dict[bytes, str] = {}  # record salt (the sha256) -> the model waiting for it
        self.publishing: dict[bytes, str] = {}  # record salt -> the seeding model that put it
        self.stored: set[str] = set()  # models whose last record put reached at least one DHT node
        # Bytes a download received from web seeds (model -> bytes; the rest of its payload came from
        # peers), and each web-seed connection's running total as last seen: its growth is what it sent since.
        self.web_bytes: dict[str, int] = {}
        self.connections: dict[str, dict[str, int]] = {}
        self.resume_every = float(settings.P2P_RESUME_SAVE_SECONDS)
        # Group copies fetched from peers only: model -> (web seeds held back, when to look, bytes then).
        self.held_web: dict[str, tuple[list[str], float, int]] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self.p2p = P2PSession(self.config)
        named = bool(self.p2p.dht_nodes)
        self.claims = Claims(p2p=self.p2p, node_name=self.node_name, clock=self.clock, named_dht=named)
        self.relay = Relay(p2p=self.p2p, node_name=self.node_name, clock=self.clock, named_dht=named,
                           dht=self.config.dht)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torrent-verify")
        self.next_resume = self.clock() + self.resume_every
        log.info("torrent engine %s listening on port %s", self.node_name, self.p2p.listen_port())

    def step(self) -> bool:
        # The passes that read the wanted state from the database run at most every RECONCILE_EVERY:
        # while a transfer keeps the daemon stepping 20 times a second, their queries would take the
        # CPU that hashing and copying the bytes needs (measured: 4-7 ms of CPU per step).
        now = self.clock()
        reconcile = now >= self.next_reconcile
        if reconcile:
            self.next_reconcile = now + self.RECONCILE_EVERY
        # Removals first: alerts of a torrent whose model is gone (or whose id a new model took) are then
        # dropped with their handle instead of being applied to whatever row has that id now.
        busy = reconcile and self.removals_once()
        busy = reconcile and self.copies_removed_once() or busy
        busy = reconcile and bool(file_removals_run(node=self.node_name)) or busy
        busy = self.alerts_once() or busy
        if reconcile:
            busy = self.seeds_once() or busy
            busy = self.downloads_once() or busy
        busy = self.verifications_once() or busy
        self.web_seeds_once()
        if reconcile:
            busy = self.lookups_once() or busy
        self.stats_once()
        self.resume_once()
        self.dht_once()
        return self.claims.tick() | self.relay.tick() or busy

    def stop(self) -> None:
        """Pause every torrent, wait for it, then save its resume data (flushed) before closing."""
        if self.p2p is None:
            return
        keys = self.p2p.tracked()
        self.pausing = {key for key in keys if not self.p2p.is_paused(key)}
        for key in self.pausing:
            self.p2p.pause(key)
        self._wait(lambda: not self.pausing)
        self.saving = set(keys)
        for key in keys:
            self.p2p.save_resume(key)
        self._wait(lambda: not self.saving)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.verifying.clear()  # unfinished checks run again after the restart (status `verifying`)
        self.finishing.clear()
        self.p2p.close()
        self.p2p = None

    def listen_port(self) -> int:
        return self.p2p.listen_port()

    def facts(self) -> dict:
        """For the heartbeat: the port other nodes reach this node's BitTorrent session on."""
        p2p = self.p2p
        return {"p2p_port": p2p.listen_port() if p2p is not None else None}

    def connect_peer(self, model_id: str, host: str, port: int) -> None:
        self.p2p.connect_peer(model_id, host, port)

    def _wait(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.STOP_TIMEOUT
        while not done() and time.monotonic() < deadline:
            self.alerts_once()
            time.sleep(0.01)

    # -- reconcile --------------------------------------------------------------------------------
    def _rows(self):
        """This node's torrents, one per copy; the session knows each by its model's id."""
        return Torrent.objects.filter(copy__node=self.node_name).select_related("copy__model")

    def _row(self, key: str) -> Torrent | None:
        return self._rows().filter(copy__model_id=key).first()

    def removals_once(self) -> bool:
        tracked = self.p2p.tracked()
        rows = (self._rows().filter(copy__model_id__in=tracked).exclude(desired=Torrent.Desired.REMOVE)
                .exclude(copy__status=CopyStatus.ERROR)
                .values_list("copy__model_id", "desired", "info_hash_v1", "info_hash_v2"))
        # A row of a *new* model under a deleted one's id (ids are reused) does not keep the old torrent.
        wanted = {key for key, desired, v1, v2 in rows if desired != Torrent.Desired.LOOKUP and self._same(key, v1, v2)}
        gone = [key for key in tracked if key not in wanted and key not in self.verifying]
        for key in gone:
            self.p2p.remove(key)
            self.resume.delete(key)
            self.web_bytes.pop(key, None)
            self.connections.pop(key, None)
            self.finishing.discard(key)
            self.unfiled.discard(key)
            log.info("stopped torrent of %s: its model is gone or failed", key)
        return bool(gone)

    def copies_removed_once(self) -> bool:
        """Copies of this node asked to go (SPEC §9 DELETE …/copies/<node>): out of the session, files deleted,
        row removed."""
        gone = list(ModelCopy.objects.filter(node=self.node_name, status=CopyStatus.REMOVING).select_related("model"))
        for copy in gone:
            key = copy.model_id
            if key in self.verifying:
                continue  # a check still reads the files: next pass
            self.p2p.remove(key)
            self.resume.delete(key)
            for table in (self.web_bytes, self.connections):
                table.pop(key, None)
            self.finishing.discard(key)
            self.unfiled.discard(key)
            node_services.copy_removed(copy=copy)
            log.info("removed the copy of %s on this node and its files in %s", key, copy.path)
        return bool(gone)

    def _owns(self, key: str, torrent: Torrent) -> bool:
        return torrent.desired != Torrent.Desired.LOOKUP and self._same(key, torrent.info_hash_v1, torrent.info_hash_v2)

    def _same(self, key: str, v1: str, v2: str) -> bool:
        """The torrent in the session under `key` is the one its row names (a row without hashes names any)."""
        if not (v1 or v2):
            return True
        held_v1, held_v2 = self.p2p.info_hashes(key)
        return bool((v1 and v1 == held_v1) or (v2 and v2 == held_v2))

    def seeds_once(self) -> bool:
        """Seed each ready model that wants it; models with the same bytes (one info-hash) share one torrent.

        The torrent stays in the session while ANY of those models wants seeding: when its holder is
        paused or gone, another model that still wants it takes over from its own files.
        """
        rows = list(self._rows().filter(copy__status__in=AVAILABLE, torrent_file__isnull=False))
        wants = {torrent.copy.model_id: torrent.copy.seeding for torrent in rows}
        self.riders = {key: holder for key, holder in self.riders.items() if key in wants}
        busy = False
        for torrent in rows:
            key = torrent.copy.model_id
            if self.p2p.has(key):
                busy = self._steer(key, wants) or busy
            elif wants[key]:
                busy = self._seed_or_ride(torrent) or busy
            elif self.riders.pop(key, None):
                node_services.torrent_idle(model_id=key, node=self.node_name)  # a rider paused: it no longer shares the stats
        return busy

    def _steer(self, key: str, wants: dict[str, bool]) -> bool:
        if not wants[key] and any(wants.get(rider) for rider, holder in self.riders.items() if holder == key):
            self._hand_over(key)
            return True
        if wants[key] == self.p2p.is_paused(key):
            (self.p2p.resume if wants[key] else self.p2p.pause)(key)
            return True
        return False

    def _hand_over(self, key: str) -> None:
        riders = [rider for rider, holder in self.riders.items() if holder == key]
        log.info("%s stops seeding; %s, holding the same bytes, seed(s) the torrent from their own files",
                 key, ", ".join(riders))
        self.p2p.remove(key)
        self.resume.delete(key)  # restarted later from the figures in the database
        node_services.torrent_idle(model_id=key, node=self.node_name)
        for rider in riders:
            del self.riders[rider]

    def _seed_or_ride(self, torrent: Torrent) -> bool:
        holder = self.riders.get(torrent.copy.model_id)
        if holder is not None and self.p2p.has(holder):
            return False  # shared by the holder's torrent (or handed over by `_steer` on this pass)
        self.riders.pop(torrent.copy.model_id, None)
        return self._seed(torrent)

    def _seed(self, torrent: Torrent) -> bool:
        copy, blob = torrent.copy, bytes(torrent.torrent_file)
        model = copy.model
        files = [(f.path, f.size) for f in torrent_files(blob)]
        names = [model.file_name, *model.files.values_list("name", flat=True)]
        root = completion.save_path(Path(copy.path), names, files)
        problem = completion.file_problem(root, files)
        if problem:
            node_services.torrent_fail(model_id=model.pk, node=self.node_name, code="file_missing",
                                       message=f"Cannot seed: {problem}. Download or import the model again.")
            return True
        try:
            self.p2p.add(model.pk, save_path=root, torrent=blob, resume=self._resume_for(torrent), seed_mode=True,
                         uploaded=copy.uploaded_bytes)
            self.next_records = 0.0  # publish its sha256 record on this pass, not up to RECORDS_EVERY later
        except DuplicateTorrent as exc:
            log.info("%s: %s; both models report its stats", model.pk, exc)
            self.riders[model.pk] = exc.holder
        return True

    def downloads_once(self) -> bool:
        busy = False
        for torrent in self._rows().filter(desired=Torrent.Desired.DOWNLOAD, copy__status__in=FETCHING):
            key, copy = torrent.copy.model_id, torrent.copy
            if self.p2p.has(key) or key in self.verifying:
                continue
            blob = bytes(torrent.torrent_file) if torrent.torrent_file else None
            if blob is None:
                self.unfiled.add(key)
            resume = self._resume_for(torrent)
            Path(copy.path).mkdir(parents=True, exist_ok=True)
            # A magnet without a size (xl) had no disk check yet: hold its files until the metadata says
            # how big it is (seeds hang up meanwhile, ~1 s lost). Known torrents wait for the checks paused.
            self.p2p.add(key, save_path=Path(copy.path), torrent=blob, magnet=torrent.magnet_source, resume=resume,
                         paused=bool(blob or resume), hold_files=not copy.model.size, uploaded=copy.uploaded_bytes,
                         downloaded=copy.downloaded_bytes)
            self.web_bytes[key] = copy.web_seed_bytes
            self.connections[key] = {}
            if torrent.state in node_services.PEERS_FIRST:
                held = self.p2p.web_seeds_hold(key)
                if held:
                    self.held_web[key] = (held, self.clock() + self.WEB_SEED_FALLBACK, 0)
            if self.p2p.has_metadata(key):
                self._accept_metadata(key)  # resumes the torrent once the checks pass
            else:
                self.p2p.resume(key)  # resume data saved before the metadata came: fetch it again
            busy = True
        return busy

    def web_seeds_once(self) -> None:
        """A group copy gets the Hub's web seed back once its peers have sent nothing for WEB_SEED_FALLBACK."""
        now = self.clock()
        for key, (urls, due, seen) in list(self.held_web.items()):
            if not self.p2p.has(key) or self.p2p.is_complete(key):
                del self.held_web[key]
            elif now >= due:
                stats = self.p2p.stats(key)
                if stats.session_downloaded > seen:
                    self.held_web[key] = (urls, now + self.WEB_SEED_FALLBACK, stats.session_downloaded)
                    continue
                del self.held_web[key]
                self.p2p.web_seeds_release(key, urls)
                log.info("%s: no peer sent anything for %.0f s (connected to %d, state %s%s); the Hub's web seed "
                         "helps now", key, self.WEB_SEED_FALLBACK, stats.peers, stats.state,
                         ", paused" if stats.paused else "")

    def _resume_for(self, torrent: Torrent) -> bytes | None:
        data = self.resume.read(torrent.copy.model_id)
        if data is None:
            return None
        try:
            v1, v2 = resume_info_hashes(data)
        except RuntimeError:
            return None
        same = (v1 and v1 == torrent.info_hash_v1) or (v2 and v2 == torrent.info_hash_v2)
        return data if same else None

    def verifications_once(self) -> bool:
        done = [key for key, future in self.verifying.items() if future.done()]
        for key in done:
            self._apply_verdict(key, self.verifying.pop(key))
        return bool(done)

    def stats_once(self) -> None:
        if self.clock() >= self.next_stats:
            self.next_stats = self.clock() + self.STATS_EVERY
            self.p2p.post_updates()

    def dht_once(self) -> None:
        """Keep the named DHT nodes in the routing table and this node's sha256 records fresh."""
        if not self.config.dht:
            return
        now = self.clock()
        if self.p2p.dht_nodes and now >= self.next_dht_nodes:
            self.next_dht_nodes = now + self.DHT_NODES_EVERY
            self.p2p.dht_refresh()
            self.node_refreshes += 1
            if 1 < self.node_refreshes <= self.EARLY_ANNOUNCES + 1:
                self.p2p.dht_announce_all()
        if now >= self.next_records:
            self.next_records = now + self.RECORDS_EVERY
            self.records_once(now)

    def records_once(self, now: float) -> None:
        seeding = {key for key in self.p2p.tracked() if not self.p2p.is_paused(key)}
        rows = (self._rows().filter(copy__model_id__in=seeding, copy__status__in=AVAILABLE)
                .exclude(copy__model__sha256="")
                .values_list("copy__model_id", "copy__model__sha256", "info_hash_v1", "info_hash_v2"))
        refresh = self.NAMED_RECORD_REFRESH if self.p2p.dht_nodes else self.RECORD_REFRESH
        for key, sha256, v1, v2 in rows:
            if now - self.published.get(key, -refresh) < refresh or not (v1 or v2) or not swarm.is_sha256(sha256):
                continue
            self.published[key] = now
            salt = swarm.record_salt(sha256)
            self.publishing[salt] = key
            self.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY, salt=salt,
                                    value=swarm.record_value(info_hash_v1=v1, info_hash_v2=v2))
        self.published = {key: when for key, when in self.published.items() if key in seeding}

    def lookups_once(self) -> bool:
        """Ask the DHT for the sha256 record of each download waiting for one (SPEC §8): once for a new
        one, again and again for one that waits on another portal's fetch (`claims`)."""
        rows = list(self._rows().filter(desired=Torrent.Desired.LOOKUP, copy__status__in=FETCHING,
                                        state__in=(node_services.LOOKING, node_services.AWAITING))
                    .values_list("copy__model_id", "copy__model__sha256", "state"))
        waiting = {key for key, _, _ in rows}
        # A download that stopped waiting (or went on over HTTP) is asked for afresh when it comes back.
        self.lookups = {salt: key for salt, key in self.lookups.items() if key in waiting}
        fetching, awaiting = self.relay.group()  # what the nodes of this group wait on, or are waited on for
        if self.config.dht:
            claimed = {key: sha256 for key, sha256, state in rows if state == node_services.AWAITING}
            due = self.claims.once(claimed)
            awaiting.update(claimed)
            fetching.update({key: sha256 for key, sha256 in ModelCopy.objects.filter(
                node=self.node_name, model_id__in=self.claims.held).values_list("model_id", "model__sha256")})
        self.relay.once(fetching=fetching, waiting=awaiting)
        if self.config.dht:
            # A download that receives the file through the relay needs no record until the relay stops.
            due -= self.relay.receiving(within=self.claims.ask_every * 2)
            rows = [row for row in rows if row[2] == node_services.LOOKING or row[0] in due]
        asked = False
        for key, sha256, _ in rows:
            if not self.config.dht or not swarm.is_sha256(sha256):
                node_services.torrent_record_missing(model_id=key, node=self.node_name, reason="DHT is off (P2P_DHT)" if not self.config.dht
                                                     else "no sha256 to look up")
                continue
            salt = swarm.record_salt(sha256)
            if self.lookups.get(salt) == key:
                continue
            self.lookups[salt] = key
            self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=salt)
            asked = True
        return asked

    def resume_once(self) -> None:
        if self.clock() < self.next_resume:
            return
        self.next_resume = self.clock() + self.resume_every
        for key in self.p2p.tracked():
            if self.p2p.needs_resume_save(key):
                self.p2p.save_resume(key)

    # -- alerts -----------------------------------------------------------------------------------
    def alerts_once(self) -> bool:
        alerts = self.p2p.pop_alerts()
        for name, key, alert in alerts:
            handler = getattr(self, f"on_{name}", None)
            if handler is None:
                continue
            if key is None or (key and not self.p2p.has(key)):
                continue  # a handle removed since the alert was posted
            if key and self.relay.owns(key):
                self.relay.on_alert(name, key, alert)
                continue
            handler(key, alert)
        return bool(alerts)

    def on_listen_failed_alert(self, key: str, alert) -> None:
        log.error("BitTorrent cannot listen on %s: %s (check P2P_LISTEN)", self.config.listen, alert.message())

    def on_dht_mutable_item_alert(self, key: str, alert) -> None:
        salt, value, authoritative = alert_record(alert)
        if swarm.is_relay_salt(salt):
            self.relay.on_item(salt, value)
            return
        if swarm.is_claim_salt(salt):
            self.claims.on_item(salt, value, authoritative)
            return
        model_id = self.lookups.get(salt)
        if model_id is None:
            return
        hashes = swarm.record_parse(value) if value else None
        if hashes is not None:
            del self.lookups[salt]
            log.info("%s: the DHT names a torrent of its sha256 (%s); fetching it from the swarm", model_id,
                     hashes[0] or hashes[1])
            node_services.torrent_record_found(model_id=model_id, node=self.node_name, v1=hashes[0], v2=hashes[1])
        elif authoritative:
            del self.lookups[salt]
            if node_services.torrent_rows(model_id=model_id, node=self.node_name).filter(
                    state=node_services.LOOKING).exists():
                self.claims.begin(model_id, salt.hex())  # no record: is another portal fetching it already?

    def on_dht_put_alert(self, key: str, alert) -> None:
        if swarm.is_relay_salt(bytes(alert.salt)):
            return  # put again with the next segment, or read back by the waiters anyway
        if swarm.is_claim_salt(bytes(alert.salt)):
            self.claims.on_put(bytes(alert.salt), alert.num_success)
            return
        model_id = self.publishing.pop(bytes(alert.salt), None)
        if model_id is None:
            return
        if alert.num_success:
            self.stored.add(model_id)
            log.info("%s: its sha256 record is stored on %d DHT node(s)", model_id, alert.num_success)
        else:
            self.published.pop(model_id, None)  # no node took it (the DHT was still empty): again soon

    def on_state_update_alert(self, key: str, alert) -> None:
        for stats in alert_stats(alert, self.p2p.keys):
            if self.relay.owns(stats.key):
                continue
            if stats.key in self.web_bytes and not stats.is_seeding:
                self._count_web_seeds(stats.key)
            status = node_services.torrent_stats_write(stats=stats, node=self.node_name,
                                                       web_seed_bytes=self.web_bytes.get(stats.key))
            riders = [rider for rider, holder in self.riders.items() if holder == stats.key]
            if riders:
                node_services.torrent_stats_mirror(stats=stats, model_ids=riders, node=self.node_name)
            if stats.is_seeding and status in FETCHING:
                self._maybe_finish(stats.key)

    def _count_web_seeds(self, key: str) -> None:
        """Polled once a second and as the download finishes: a web seed's last second may go uncounted."""
        seen = self.connections[key]
        for web, endpoint, received in self.p2p.peer_downloads(key):
            if web:
                self.web_bytes[key] += max(0, received - seen.get(endpoint, 0))
                seen[endpoint] = received

    def on_torrent_paused_alert(self, key: str, alert) -> None:
        self.pausing.discard(key)

    def on_metadata_received_alert(self, key: str, alert) -> None:
        self._accept_metadata(key)

    def on_torrent_finished_alert(self, key: str, alert) -> None:
        if key in self.web_bytes:
            self._count_web_seeds(key)
        self._maybe_finish(key)

    def on_save_resume_data_alert(self, key: str, alert) -> None:
        resume = alert_resume_bytes(alert)
        self.resume.write(key, resume)
        self.saving.discard(key)
        # Once, and only complete: before, a hybrid's piece layers may still be unknown (written as zeros).
        if key in self.unfiled and self.p2p.is_complete(key):
            self.unfiled.discard(key)
            blob = torrent_from_resume(resume) or alert_torrent_bytes(alert)
            if blob:
                node_services.torrent_file_store(model_id=key, node=self.node_name, torrent=blob)

    def on_save_resume_data_failed_alert(self, key: str, alert) -> None:
        self.saving.discard(key)

    def on_cache_flushed_alert(self, key: str, alert) -> None:
        if key in self.finishing:
            self.finishing.discard(key)
            self._verify(key)

    def on_file_prio_alert(self, key: str, alert) -> None:
        # While nothing was wanted, seeds hung up on us (seed to seed): call them back.
        torrent = self._row(key)
        if torrent is not None and torrent.copy.status in FETCHING:
            self.p2p.reconnect(key, peers=magnet_peer_endpoints(torrent.magnet_source))

    def on_hash_failed_alert(self, key: str, alert) -> None:
        log.warning("%s: piece %s failed its hash check; fetching it again", key, alert.piece_index)

    def on_file_error_alert(self, key: str, alert) -> None:
        self._fail(key, "file_error", f"Disk error on {alert.filename()}: {alert.error.message()}.")

    def on_torrent_error_alert(self, key: str, alert) -> None:
        self._fail(key, "torrent_error", f"BitTorrent error: {alert.error.message()}.")

    # -- downloads: metadata, completion ----------------------------------------------------------
    def _accept_metadata(self, key: str) -> None:
        torrent = self._row(key)
        if torrent is None or torrent.copy.status not in FETCHING or not self.p2p.has_metadata(key):
            return
        folder, files = Path(torrent.copy.path), self.p2p.files(key)
        names = [f.path for f in files]
        if completion.main_gguf(names) is None:
            self._fail(key, "not_gguf", f"Refused: the torrent holds no GGUF model file ({', '.join(names[:5])}).",
                       delete=True)
            return
        for f in files:
            if completion.escapes(folder, f.path):
                safe = completion.safe_relpath(f.path)
                log.warning("%s: file name %r would leave the model folder; saved as %r", key, f.path, safe)
                self.p2p.rename_file(key, f.index, safe)
        files = [(completion.safe_relpath(f.path), f.size) for f in files]
        needed = sum(size for _, size in files) - completion.present_bytes(folder, files)
        free = shutil.disk_usage(folder).free
        if needed > free:
            self._fail(key, "insufficient_storage", f"Not enough disk space: {needed} more bytes needed, "
                       f"{free} free in {folder}.", delete=True)
            return
        v1, v2 = self.p2p.info_hashes(key)
        node_services.torrent_metadata_accept(model_id=key, node=self.node_name, files=files, v1=v1, v2=v2)
        self.p2p.want_all_files(key)
        self.p2p.save_resume(key)  # records the info dict in the resume data right away

    def _maybe_finish(self, key: str) -> None:
        if key in self.finishing or key in self.verifying or not self.p2p.is_complete(key):
            return
        torrent = self._row(key)
        if torrent is None or torrent.copy.status not in FETCHING or not self._owns(key, torrent):
            return
        # Verify only what is on disk: libtorrent may still hold received blocks in memory. Its
        # cache_flushed_alert comes after every pending write (save_resume_data's flag does not wait).
        self.finishing.add(key)
        node_services.torrent_verifying(model_id=key, node=self.node_name)
        self.p2p.flush(key)
        self.p2p.save_resume(key)

    def _verify(self, key: str) -> None:
        torrent = self._row(key)
        if torrent is None:
            return
        files = [(completion.safe_relpath(f.path), f.size) for f in self.p2p.files(key)]
        expected = node_services.torrent_expected_hashes(model_id=key)
        log.info("%s: all %d file(s) flushed to disk; verifying", key, len(files))
        self.verifying[key] = self.executor.submit(
            completion.verify_download, folder=Path(torrent.copy.path), files=files, expected=expected)

    def _apply_verdict(self, key: str, future: Future) -> None:
        try:
            verdict = future.result()
        except Exception as exc:  # an unreadable file must fail the model, not the daemon
            verdict = completion.Verdict(False, "verify_failed", f"Verification failed: {exc}")
        torrent = self._row(key)
        if not self.p2p.has(key) or torrent is None or not self._owns(key, torrent):
            return
        if not verdict.ok:
            self._fail(key, verdict.code, f"Refused: {verdict.message}" if verdict.code == "not_gguf"
                       else verdict.message, delete=verdict.code == "not_gguf")
            return
        v1, v2 = self.p2p.info_hashes(key)
        size = sum(f.size for f in self.p2p.files(key))
        magnet = magnet_build(info_hash_v1=v1, info_hash_v2=v2, name=self.p2p.name(key), size=size,
                              web_seeds=[torrent.copy.model.web_seed] if torrent.copy.model.web_seed else [],
                              peers=advertised_peers(settings.NODE_ADDRESS, self.p2p.listen_port()))
        stats = self.p2p.stats(key)
        # The lifetime counter catches up once a second; later stats writes refine these figures.
        downloaded = max(stats.downloaded, stats.session_downloaded)
        if not node_services.torrent_verified(model_id=key, node=self.node_name, verdict=verdict, magnet_uri=magnet,
                                              downloaded=downloaded, web_seed_bytes=self.web_bytes.get(key, 0)):
            self.p2p.pause(key)
        log.info("%s verified (sha256 %s), seeding", key, verdict.hashes.get(verdict.main_file))

    def _fail(self, key: str, code: str, message: str, *, delete: bool = False) -> None:
        torrent = self._row(key)
        self.p2p.remove(key, delete_files=delete)
        self.resume.delete(key)
        self.finishing.discard(key)
        self.web_bytes.pop(key, None)
        self.connections.pop(key, None)
        if torrent is not None:
            node_services.torrent_fail(model_id=key, node=self.node_name, code=code, message=message)
            if delete:
                completion.remove_model_folder(Path(torrent.copy.path))
        log.warning("%s: %s", key, message)
