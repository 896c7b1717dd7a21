"""Fetch claims (SPEC §8): one Hub download for many portals that want the same file at the same time.

A download that finds no sha256 record asks the DHT for the file's claim (see `swarm`). With a live
claim of someone else's, it waits for the record, watching the claim's byte count; with none, it puts
its own, reads it back, and either fetches over HTTP (its claim stored) or waits (another's stored).
The fetcher rewrites its claim with its progress while its copy downloads, so a waiter whose fetcher
stops (killed, failed, gone) sees the count stand still and goes to the Hub itself after STALL seconds:
a claim costs a waiter time, never the file.

`Claims` is the torrent engine's part that does this; it owns no session and no rows of its own: the
engine hands it the session and the DHT alerts, and it moves the waiting row through `node_services`.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from models_app.models import ModelCopy
from models_app.states import FETCHING
from torrents_app import node_services, swarm

log = logging.getLogger("aiportal.torrents")


@dataclass
class Held:
    salt: bytes
    token: str
    due: float  # next refresh
    beat: int = 0


@dataclass
class Watch:
    """A download waiting on another portal's claim: what the claim said last, and since when."""

    sha256: str
    seen: tuple[str, int, int] | None  # (claimant, done, beat once done)
    since: float
    next_ask: float


class Claims:
    def __init__(self, *, p2p, node_name: str, clock: Callable[[], float], named_dht: bool):
        self.p2p, self.node_name, self.clock = p2p, node_name, clock
        # In a DHT of a few named nodes a put lands in milliseconds; in the public DHT, in seconds.
        self.refresh_every = 2.0 if named_dht else 10.0
        self.ask_every = 2.0 if named_dht else 5.0
        self.checking: dict[bytes, str] = {}  # claim salt -> model whose first look is out
        self.verifying: dict[bytes, str] = {}  # claim salt -> model that put its claim and reads it back
        self.held: dict[str, Held] = {}  # model -> the claim this node holds for it
        self.watching: dict[str, Watch] = {}  # model -> what it waits on

    @property
    def stall(self) -> float:
        return float(settings.P2P_SWARM_STALL)

    # -- what the engine calls -------------------------------------------------------------------
    def begin(self, model_id: str, sha256: str) -> None:
        """No sha256 record: is anyone fetching the file already?"""
        salt = swarm.claim_salt(sha256)
        self.checking[salt] = model_id
        self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=salt)

    def on_item(self, salt: bytes, value: bytes, authoritative: bool) -> None:
        claim = swarm.claim_parse(value) if value else None
        if salt in self.checking:
            self._first_look(salt, claim, authoritative)
        elif salt in self.verifying:
            self._read_back(salt, claim, authoritative)
        else:
            for model_id, watch in self.watching.items():
                if swarm.claim_salt(watch.sha256) == salt and claim is not None:
                    self._progress(model_id, watch, claim)

    def on_put(self, salt: bytes, reached: int) -> None:
        """A claim's put is out: read it back (a refresh of a held claim needs nothing more)."""
        model_id = self.verifying.get(salt)
        if model_id is None:
            return
        if not reached:
            # Nobody to share the file with (the DHT is empty here): fetch it, with no one to tell.
            del self.verifying[salt]
            self.held.pop(model_id, None)
            node_services.torrent_record_missing(model_id=model_id, node=self.node_name,
                                                 reason="no record and no DHT node to claim the fetch on")
            return
        self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=salt)

    def once(self, waiting: dict[str, str]) -> set[str]:
        """Refresh the claims this node holds, and read again the claims its waiting downloads wait on.

        `waiting` maps every model whose row waits on a claim to its sha256; returns those whose sha256
        record is due to be looked up again.
        """
        now = self.clock()
        if self.held:
            fetching = dict(ModelCopy.objects.filter(model_id__in=self.held, node=self.node_name,
                                                     status__in=FETCHING).values_list("model_id", "downloaded_bytes"))
            for model_id, held in list(self.held.items()):
                if model_id not in fetching:
                    del self.held[model_id]  # ready (its record takes over), failed or gone: the claim goes stale
                elif now >= held.due:
                    held.due, held.beat = now + self.refresh_every, held.beat + 1
                    self._put(held, done=fetching[model_id], model_id=model_id)
        self.watching = {key: watch for key, watch in self.watching.items() if key in waiting}
        taking_over = set(self.verifying.values())
        for model_id in waiting.keys() - self.watching.keys() - taking_over:  # left waiting by a daemon that restarted
            self.watching[model_id] = Watch(sha256=waiting[model_id], seen=None, since=now, next_ask=now)
        due = set()
        for model_id, watch in list(self.watching.items()):
            if now - watch.since > self.stall:
                # Take the claim over, so that whoever else waits on the stalled fetch waits on this one.
                log.info("%s: the portal fetching it from the Hub made no progress for %.0f s; fetching it too",
                         model_id, self.stall)
                del self.watching[model_id]
                self._claim(model_id, swarm.claim_salt(watch.sha256))
            elif now >= watch.next_ask:
                watch.next_ask = now + self.ask_every
                self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=swarm.claim_salt(watch.sha256))
                due.add(model_id)
        return due

    # -- steps ------------------------------------------------------------------------------------
    def _first_look(self, salt: bytes, claim, authoritative: bool) -> None:
        if claim is None and not authoritative:
            return  # a node without it answered; the look goes on
        model_id = self.checking.pop(salt)
        if claim is not None:
            self._wait_on(model_id, salt, claim)
        else:
            self._claim(model_id, salt)

    def _claim(self, model_id: str, salt: bytes) -> None:
        """Put this node's claim on the fetch; it is read back once the put is out (`on_put`)."""
        self.verifying[salt] = model_id
        self.held[model_id] = Held(salt=salt, token=secrets.token_hex(8), due=self.clock() + self.refresh_every)
        self._put(self.held[model_id], done=0, model_id=model_id)

    def _read_back(self, salt: bytes, claim, authoritative: bool) -> None:
        if not authoritative:
            return  # decide on the whole answer: a part of it may still hold a claim put a moment earlier
        model_id = self.verifying.pop(salt)
        held = self.held.get(model_id)
        if claim is None or (held is not None and claim[0] == held.token):
            log.info("%s: this node fetches it from the Hub for the swarm", model_id)
            node_services.torrent_record_missing(model_id=model_id, node=self.node_name,
                                                 reason="no record, and this node took the fetch on for the swarm")
            return
        self.held.pop(model_id, None)  # another claim was put after this one: that portal fetches
        self._wait_on(model_id, salt, claim)

    def _wait_on(self, model_id: str, salt: bytes, claim: tuple[str, int, int, int]) -> None:
        claimant, done, total, beat = claim
        log.info("%s: another portal is fetching it from the Hub (%d of %d bytes); waiting for its record",
                 model_id, done, total)
        now = self.clock()
        self.watching[model_id] = Watch(sha256=salt[:32].hex(), seen=_sign_of_life(claim), since=now,
                                        next_ask=now + self.ask_every)
        node_services.torrent_await(model_id=model_id, node=self.node_name, done=done, total=total)

    def _progress(self, model_id: str, watch: Watch, claim: tuple[str, int, int, int]) -> None:
        _, done, total, _ = claim
        if _sign_of_life(claim) != watch.seen:
            watch.seen, watch.since = _sign_of_life(claim), self.clock()
            node_services.torrent_await(model_id=model_id, node=self.node_name, done=done, total=total)

    def _put(self, held: Held, *, done: int, model_id: str) -> None:
        total = ModelCopy.objects.filter(model_id=model_id, node=self.node_name).values_list(
            "model__size", flat=True).first() or 0
        self.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY, salt=held.salt,
                                value=swarm.claim_value(claimant=held.token, done=done, total=total, beat=held.beat))


def _sign_of_life(claim: tuple[str, int, int, int]) -> tuple[str, int, int]:
    """What must change for a fetch to count as alive: its byte count, or its beat once every byte is in."""
    claimant, done, total, beat = claim
    return claimant, done, beat if total and done >= total else 0
