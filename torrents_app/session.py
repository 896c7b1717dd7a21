"""Adapter over libtorrent: the one session of a node, torrents keyed by model id.

Only this module and `creation.py` import libtorrent. The engine hands in primitives (bytes, paths,
strings) and gets back plain values; alerts come out as `(name, key, alert)` with `key` None when
the alert belongs to a handle this session no longer tracks (a stale handle).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt

_FLUSH = lt.torrent_handle.flush_disk_cache | lt.torrent_handle.save_info_dict
_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    | lt.alert.category_t.performance_warning
    | lt.alert.category_t.dht_notification
)


class DuplicateTorrent(Exception):
    """The torrent is already in the session under another key (`holder`)."""

    def __init__(self, holder: str):
        super().__init__(f"the same torrent is already shared as {holder}")
        self.holder = holder


@dataclass(frozen=True)
class SessionConfig:
    listen: str = "0.0.0.0:6881"
    dht: bool = True
    lsd: bool = True
    dht_bootstrap: str = ""
    upload_limit: int = 0
    download_limit: int = 0

    @classmethod
    def from_settings(cls) -> SessionConfig:
        from django.conf import settings

        return cls(listen=settings.P2P_LISTEN, dht=settings.P2P_DHT, lsd=settings.P2P_LSD,
                   dht_bootstrap=settings.P2P_DHT_BOOTSTRAP or "", upload_limit=settings.P2P_UPLOAD_LIMIT,
                   download_limit=settings.P2P_DOWNLOAD_LIMIT)

    @property
    def rate_limited(self) -> bool:
        return bool(self.upload_limit or self.download_limit)


@dataclass(frozen=True)
class TorrentStats:
    key: str
    state: str
    progress: float
    download_rate: int
    upload_rate: int
    downloaded: int
    uploaded: int
    peers: int
    seeds: int
    total_wanted: int
    session_downloaded: int
    session_uploaded: int
    failed_bytes: int
    has_metadata: bool
    is_seeding: bool
    paused: bool
    error: str


@dataclass(frozen=True)
class TorrentFile:
    index: int
    path: str
    size: int


def _hosts(csv: str) -> list[str]:
    return [host for host, _ in dht_endpoints(csv)]


def dht_endpoints(csv: str) -> list[tuple[str, int]]:
    """`host:port,…` as (host, port) pairs; an entry without a port gets BitTorrent's 6881."""
    out = []
    for item in filter(None, (part.strip() for part in csv.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or "]" in port:
            host, port = item, "6881"
        out.append((host.strip("[]"), int(port)))
    return out


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name


def _is_private(host: str) -> bool:
    address = _address(host)
    if address is None:
        return host == "localhost"
    return address.is_private or address.is_loopback or address.is_unspecified


def is_loopback_ip(host: str) -> bool:
    """A loopback IP address (a host name is not taken for one)."""
    address = _address(host)
    return address is not None and address.is_loopback


def session_settings(config: SessionConfig) -> dict:
    """libtorrent settings for a portal node (passed to the constructor, before any traffic)."""
    local_only = all(_is_private(h) and h not in {"0.0.0.0", "::"} for h in _hosts(config.listen))
    lan_dht = bool(config.dht_bootstrap) and all(_is_private(h) for h in _hosts(config.dht_bootstrap))
    values = {
        "listen_interfaces": config.listen,
        "enable_dht": config.dht,
        "enable_lsd": config.lsd,
        "enable_upnp": not local_only,
        "enable_natpmp": not local_only,
        "upload_rate_limit": config.upload_limit,
        "download_rate_limit": config.download_limit,
        # uTP moves 4-13 MiB/s on a LAN against hundreds over TCP: connect out over TCP, still
        # accept uTP from peers that insist, and let TCP win the bandwidth when both are mixed.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": True,
        "mixed_mode_algorithm": 0,
        # Several portals may share one host (and one address behind a NAT).
        "allow_multiple_connections_per_ip": True,
        "urlseed_wait_retry": 5,
        # Connection attempts, unchokes and rate quotas happen on the tick: 100 ms instead of 500
        # starts a LAN transfer sooner for the cost of a few wake-ups a second. Under a rate limit every
        # message waits for the next tick's quota: there 20 ms (an 8-MiB torrent's metadata came after 0.13-0.15 s
        # against 0.48-0.57 s at 100 ms, on loopback under a 20 MiB/s cap; an idle session used 0.3% of a core
        # against 0.1%).
        "tick_interval": 20 if config.rate_limited else 100,
        # A seed keeps this much read ahead for each peer until its upload rate is known (it learns it once a
        # second; libtorrent's default, 10 kB, keeps about one block): under a rate limit a connection sent one block
        # per tick for its first second. Measured on loopback, an 8-MiB torrent under a 20 MiB/s cap took
        # 1.5 s with 10 kB and 0.75 s with 1 MiB; without a cap the two are alike. (One such buffer per peer this
        # node uploads to: 8 unchoke slots by default.)
        "send_buffer_low_watermark": 1 << 20,
        # Ten disk threads (the default) writing one model file queue on its inode lock: on loopback
        # four used less CPU per GiB received and moved it faster (median 319 against 261 MiB/s).
        "aio_threads": 4,
        # Seeds hang up on a magnet download while its files are held for the metadata checks;
        # call them back within a second once the files are wanted (default: a minute).
        "min_reconnect_time": 1,
        "out_enc_policy": 1,
        "in_enc_policy": 1,
        "allowed_enc_level": 3,
        "alert_mask": _ALERTS,
        "alert_queue_size": 10000,
        "user_agent": f"aiportal libtorrent/{lt.__version__}",
    }
    if config.dht_bootstrap:
        # Named nodes are other portals, added as DHT nodes (`P2PSession.dht_refresh`): libtorrent never
        # puts a bootstrap "router" into its routing table, so two portals naming each other as routers
        # never learned of each other. Naming them replaces the public routers.
        values["dht_bootstrap_nodes"] = ""
        # Few nodes hold every announce; one that restarts has lost them: announce again each minute.
        values["dht_announce_interval"] = 60
    if lan_dht:
        # A DHT made only of LAN nodes: nodes share one address range, which the internet DHT forbids.
        # Its few nodes send each other every query (several portals may share one address): the
        # internet's per-address limits (5 queries/s, then 5 min of silence) would cut them off.
        values.update({"dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
                       "dht_enforce_node_id": False, "dht_block_ratelimit": 1000, "dht_upload_rate_limit": 1 << 20})
    return values


def torrent_info_hashes(torrent: bytes) -> tuple[str, str]:
    hashes = lt.torrent_info(torrent).info_hashes()
    return (str(hashes.v1) if hashes.has_v1() else "", str(hashes.v2) if hashes.has_v2() else "")


def resume_info_hashes(resume: bytes) -> tuple[str, str]:
    hashes = lt.read_resume_data(resume).info_hashes
    return (str(hashes.v1) if hashes.has_v1() else "", str(hashes.v2) if hashes.has_v2() else "")


def torrent_files(torrent: bytes) -> list[TorrentFile]:
    return _files(lt.torrent_info(torrent))


RELAY_KEY_PREFIX = "relay/"  # the keys of the relay's segment torrents (`torrents_app.relay`); model ids have no /


class P2PSession:
    """One libtorrent session; torrents are added under a key (the model id)."""

    def __init__(self, config: SessionConfig):
        self.session = lt.session(session_settings(config))
        if config.rate_limited:
            self._limit_every_peer()
        self.handles: dict[str, lt.torrent_handle] = {}
        self.keys: dict[lt.torrent_handle, str] = {}
        self.paused: set[str] = set()  # what we asked for: asking libtorrent means a round trip each time
        self.dht_nodes = dht_endpoints(config.dht_bootstrap) if config.dht else []
        self.dht_refresh()

    def _limit_every_peer(self) -> None:
        # libtorrent exempts LAN peers from rate limits by default; a cap set by a person is a cap.
        rules = lt.ip_filter()
        everyone = 1 << lt.session.global_peer_class_id
        rules.add_rule("0.0.0.0", "255.255.255.255", everyone)
        rules.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", everyone)
        self.session.set_peer_class_filter(rules)

    # -- torrents ---------------------------------------------------------------------------------
    def add(self, key: str, *, save_path: Path, torrent: bytes | None = None, magnet: str = "",
            resume: bytes | None = None, seed_mode: bool = False, paused: bool = False, hold_files: bool = False,
            uploaded: int = 0, downloaded: int = 0, max_uploads: int = -1) -> None:
        """Add a torrent; `hold_files` fetches metadata only until `want_all_files` (checks come first)."""
        params = _params(torrent=torrent, magnet=magnet, resume=resume)
        if not resume:
            # Keep the lifetime figures the database knows when resume data was lost.
            params.total_uploaded, params.total_downloaded = uploaded, downloaded
        params.save_path = str(save_path)
        # Auto-management would queue seeds beyond `active_seeds`: the engine decides instead.
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if seed_mode and not resume:
            params.flags |= lt.torrent_flags.seed_mode
        if paused:
            params.flags |= lt.torrent_flags.paused
        params.max_uploads = max_uploads
        if hold_files:
            params.flags |= lt.torrent_flags.default_dont_download
        # A magnet's x.pe peers stay in `params.peers`: libtorrent connects to those as the torrent
        # starts. Given to `connect_peer` after the add instead, they waited for the session's next
        # connection round (up to a second; 94 MiB then took 1.4 s instead of 0.2-0.5 s on loopback).
        handle = self.session.add_torrent(params)
        if handle in self.keys:
            # The same torrent under another model: libtorrent hands back the existing handle.
            raise DuplicateTorrent(self.keys[handle])
        self.handles[key], self.keys[handle] = handle, key
        if paused:
            self.paused.add(key)

    def has(self, key: str) -> bool:
        return key in self.handles

    def tracked(self) -> list[str]:
        """The models' torrents (not the relay's segments, under keys of their own)."""
        return [key for key in self.handles if not key.startswith(RELAY_KEY_PREFIX)]

    def remove(self, key: str, *, delete_files: bool = False) -> None:
        handle = self.handles.pop(key, None)
        if handle is None:
            return
        self.keys.pop(handle, None)
        self.paused.discard(key)
        self.session.remove_torrent(handle, lt.session.delete_files if delete_files else 0)

    def pause(self, key: str) -> None:
        self.handles[key].pause()
        self.paused.add(key)

    def resume(self, key: str) -> None:
        self.handles[key].resume()
        self.paused.discard(key)

    def is_paused(self, key: str) -> bool:
        return key in self.paused

    def connect_peer(self, key: str, host: str, port: int) -> None:
        self.handles[key].connect_peer((host, port))

    def flush(self, key: str) -> None:
        """Write out everything received (a `cache_flushed_alert` follows once it is on disk)."""
        self.handles[key].flush_cache()

    def save_resume(self, key: str) -> None:
        self.handles[key].save_resume_data(_FLUSH)

    def needs_resume_save(self, key: str) -> bool:
        return self.handles[key].need_save_resume_data()

    def files(self, key: str) -> list[TorrentFile]:
        return _files(self.handles[key].torrent_file())

    def want_all_files(self, key: str) -> None:
        """Fetch every file (a `file_prio_alert` follows)."""
        handle = self.handles[key]
        handle.prioritize_files([4] * handle.torrent_file().layout().num_files())
        self.resume(key)

    def web_seeds_hold(self, key: str) -> list[str]:
        """Take the torrent's web seeds (BEP 19) out for now; returns them for `web_seeds_release`."""
        handle = self.handles[key]
        urls = list(handle.url_seeds())
        for url in urls:
            handle.remove_url_seed(url)
        return urls

    def web_seeds_release(self, key: str, urls: list[str]) -> None:
        handle = self.handles[key]
        for url in urls:
            handle.add_url_seed(url)

    def reconnect(self, key: str, *, peers: list[tuple[str, int]] = ()) -> None:
        handle = self.handles[key]
        for peer in peers:
            handle.connect_peer(peer)
        handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        handle.force_dht_announce()

    def is_complete(self, key: str) -> bool:
        """Every byte of every file is here (not just the files wanted so far)."""
        handle = self.handles[key]
        status = handle.status()
        if not status.is_seeding:
            return False  # asked often while bytes arrive: the torrent's info (~1 ms to copy for 1 GiB) can wait
        info = handle.torrent_file()
        # Not `info.total_size()`: a v2 torrent counts the padding after its last file there.
        return info is not None and status.total_wanted_done == sum(f.size for f in _files(info))

    def has_metadata(self, key: str) -> bool:
        return self.handles[key].torrent_file() is not None

    def name(self, key: str) -> str:
        return self.handles[key].torrent_file().name()

    def rename_file(self, key: str, index: int, path: str) -> None:
        self.handles[key].rename_file(index, path)

    def info_hashes(self, key: str) -> tuple[str, str]:
        hashes = self.handles[key].info_hashes()
        return (str(hashes.v1) if hashes.has_v1() else "", str(hashes.v2) if hashes.has_v2() else "")

    def peer_downloads(self, key: str) -> list[tuple[bool, str, int]]:
        """(from a web seed?, peer endpoint, payload bytes received over this connection) per connection."""
        out = []
        for peer in self.handles[key].get_peer_info():
            web = peer.connection_type in (lt.peer_info.web_seed, lt.peer_info.http_seed)
            out.append((web, f"{peer.connection_type}:{peer.ip[0]}:{peer.ip[1]}", peer.total_download))
        return out

    def dialled_peers(self, key: str) -> set[tuple[str, int]]:
        """The endpoints this node connected out to for the torrent (their listen ports, unlike incoming ones)."""
        return {(peer.ip[0], peer.ip[1]) for peer in self.handles[key].get_peer_info()
                if peer.flags & lt.peer_info.local_connection
                and peer.connection_type not in (lt.peer_info.web_seed, lt.peer_info.http_seed)}

    def stats(self, key: str) -> TorrentStats:
        return _stats(key, self.handles[key].status())

    # -- DHT ---------------------------------------------------------------------------------------
    def dht_refresh(self) -> None:
        """Ping the named DHT nodes; each one that answers joins the routing table (again, if it was lost)."""
        for endpoint in self.dht_nodes:
            self.session.add_dht_node(endpoint)

    def dht_announce_all(self) -> None:
        """Announce every torrent now (those added while the routing table was still empty went nowhere)."""
        for handle in self.handles.values():
            handle.force_dht_announce()

    def dht_put_record(self, *, public_key: bytes, secret_key: bytes, salt: bytes, value: bytes) -> None:
        """Publish a BEP 44 mutable item (libtorrent signs it and bumps its sequence number)."""
        self.session.dht_put_mutable_item(secret_key, public_key, value, salt)

    def dht_get_record(self, *, public_key: bytes, salt: bytes) -> None:
        """Ask the DHT for a mutable item; answers come as `dht_mutable_item_alert`s (see `alert_record`)."""
        self.session.dht_get_mutable_item(public_key, salt)

    # -- session ----------------------------------------------------------------------------------
    def listen_port(self) -> int:
        return self.session.listen_port()

    def post_updates(self) -> None:
        self.session.post_torrent_updates()

    def pop_alerts(self) -> list[tuple[str, str | None, object]]:
        """(alert name, key, alert): key '' for session alerts, None for a handle no longer tracked."""
        out = []
        for alert in self.session.pop_alerts():
            handle = getattr(alert, "handle", None)
            if handle is None:
                key = ""  # a session alert
            else:
                key = self.keys.get(handle) if handle.is_valid() else None
            out.append((type(alert).__name__, key, alert))
        return out

    def close(self) -> None:
        self.handles.clear()
        self.keys.clear()
        self.paused.clear()
        self.session.pause()
        del self.session


def _files(info) -> list[TorrentFile]:
    files = info.layout()
    return [TorrentFile(i, files.file_path(i), files.file_size(i)) for i in range(files.num_files())
            if not files.file_flags(i) & lt.file_storage.flag_pad_file]


def _params(*, torrent: bytes | None, magnet: str, resume: bytes | None):
    if resume:
        params = lt.read_resume_data(resume)
    elif torrent:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent)
    else:
        return lt.parse_magnet_uri(magnet)
    if magnet:
        # The magnet's peers, trackers and web seeds still help a torrent restarted from resume data.
        extra = lt.parse_magnet_uri(magnet)
        params.peers = list(params.peers) + list(extra.peers)
        params.trackers = list(params.trackers) + [t for t in extra.trackers if t not in params.trackers]
        params.url_seeds = list(params.url_seeds) + [u for u in extra.url_seeds if u not in params.url_seeds]
    return params


def alert_resume_bytes(alert) -> bytes:
    return bytes(lt.write_resume_data_buf(alert.params))


def alert_torrent_bytes(alert) -> bytes | None:
    """The .torrent of a `save_resume_data_alert` saved with its info dict."""
    if alert.params.ti is None:
        return None
    try:
        return lt.bencode(lt.write_torrent_file(alert.params))
    except RuntimeError:
        return None  # a v2 torrent's piece layers arrive with its pieces: not complete yet


def alert_record(alert) -> tuple[bytes, bytes, bool]:
    """(salt, value, authoritative) of a `dht_mutable_item_alert`; value b"" when nothing was found."""
    item = alert.item
    value = item if isinstance(item, bytes) else item.encode() if isinstance(item, str) else b""
    return bytes(alert.salt), value, bool(alert.authoritative)


def alert_stats(alert, keys: dict) -> list[TorrentStats]:
    out = []
    for status in alert.status:
        key = keys.get(status.handle)
        if key is not None:
            out.append(_stats(key, status))
    return out


def _stats(key: str, status) -> TorrentStats:
    return TorrentStats(
        key=key, state=str(status.state), progress=status.progress, download_rate=status.download_payload_rate,
        upload_rate=status.upload_payload_rate, downloaded=status.all_time_download, uploaded=status.all_time_upload,
        peers=status.num_peers, seeds=status.num_seeds, total_wanted=status.total_wanted,
        session_downloaded=status.total_payload_download, session_uploaded=status.total_payload_upload,
        failed_bytes=status.total_failed_bytes, has_metadata=status.has_metadata, is_seeding=status.is_seeding,
        paused=bool(status.flags & lt.torrent_flags.paused), error=status.errc.message() if status.errc.value() else "",
    )
