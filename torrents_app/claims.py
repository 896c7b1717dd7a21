"""Fetch claims (SPEC §8): one Hub download for many portals that want the same file at the same time.

A download that finds no sha256 record asks the DHT for the file's claim (see `swarm`). With a live
claim of someone else's, it waits for the record, watching the claim's byte count; with none, it puts
its own, reads it back, and either fetches over HTTP (its claim stored) or waits (another's stored).
The fetcher rewrites its claim with its progress while its copy downloads, so a waiter whose fetcher
stops (killed, gone) sees the count stand still and goes to the Hub itself after STALL seconds: a claim
costs a waiter time, never the file. A fetch that fails or is cancelled releases its claim, and its
waiters take it over at once; a node daemon that restarts while its download job goes on over HTTP
claims that fetch again.

`Claims` is the torrent engine's part that does this; it owns no session and no rows of its own: the
engine hands it the session and the DHT alerts, and it moves the waiting row through `node_services`.
"""
from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count

from models_app.models import CopyStatus, ModelCopy, Source
from models_app.states import FETCHING
from torrents_app import node_services, swarm

log = logging.getLogger("aiportal.torrents")
CLOCK_SKEW = 120.0  # seconds two portals' clocks may disagree by before a live claim looks dead


@dataclass
class Held:
    salt: bytes
    token: str
    due: float  # next refresh
    beat: int = 0


@dataclass
class Election:
    """A claim this node is about to put (at `put_at`), then to read back (at `read_at`, once every claim of
    the same moment is stored)."""

    model_id: str
    put_at: float
    read_at: float
    out: bool = False  # its put has gone out (and may not have come back yet)


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
        # Claims of one moment put at once may each be stored first on its own portal's node: a node keeps the
        # first value of a sequence number and refuses the second, so each portal reads back its own and both
        # fetch (seen in about one race in sixteen). Each put waits a random part of `spread`, so that the
        # claims land one after another and the last overwrites the others everywhere, and every claimant
        # reads back after the whole spread and `settle`, when the last one is stored. Measured with four portals
        # on loopback electing at once (starts up to 0.2 s apart): 0.5 and 0.3 made exactly one fetcher in 160 of
        # 160 elections, 80 of them beside two busy loops; 0.2 and 0.1 made none or two in 4 of 60.
        self.spread, self.settle = (0.5, 0.3) if named_dht else (3.0, 5.0)
        self.electing: dict[bytes, Election] = {}  # claim salt -> this node's claim, until read back
        self.checking: dict[bytes, str] = {}  # claim salt -> model whose first look is out
        self.putting: dict[bytes, str] = {}  # claim salt -> model whose claim's put is not back yet
        self.verifying: dict[bytes, str] = {}  # claim salt -> model that put its claim and reads it back
        self.held: dict[str, Held] = {}  # model -> the claim this node holds for it
        self.watching: dict[str, Watch] = {}  # model -> what it waits on
        self.releasing: dict[bytes, str] = {}  # claim salt -> this node's token, to release if still stored
        self.next_adopt = 0.0

    @property
    def stall(self) -> float:
        return float(settings.P2P_SWARM_STALL)

    def dead_at_first_sight(self, claim: tuple[str, int, int, int, int]) -> bool:
        """Written longer ago than a stall and a margin for clocks that disagree: its fetcher is long gone
        (a fetcher rewrites its claim every few seconds). A clock far behind ours costs an extra Hub copy;
        one far ahead, the stall's wait, as without the time."""
        return time.time() - claim[4] > self.stall + CLOCK_SKEW

    # -- what the engine calls -------------------------------------------------------------------
    def begin(self, model_id: str, sha256: str) -> None:
        """No sha256 record: is anyone fetching the file already? (Nothing more while its claim is under way.)"""
        salt = swarm.claim_salt(sha256)
        election = self.electing.get(salt)
        if model_id in (self.checking.get(salt), self.verifying.get(salt), election and election.model_id):
            return
        self.checking[salt] = model_id
        self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=salt)

    def on_item(self, salt: bytes, value: bytes, authoritative: bool) -> None:
        claim = swarm.claim_parse(value) if value else None
        if salt in self.checking:
            self._first_look(salt, claim, authoritative)
        elif salt in self.putting or salt in self.electing:
            return  # the rest of an earlier look's answer: only what is read after the put decides
        elif salt in self.verifying:
            self._read_back(salt, claim, authoritative)
        elif salt in self.releasing:
            self._release(salt, claim, authoritative)
        else:
            for model_id, watch in list(self.watching.items()):
                if swarm.claim_salt(watch.sha256) != salt:
                    continue
                if claim is not None:
                    self._progress(model_id, watch, claim)
                elif value and swarm.claim_released(value):
                    log.info("%s: the portal fetching it from the Hub gave the fetch up; fetching it itself",
                             model_id)
                    del self.watching[model_id]
                    self._claim(model_id, salt)

    def on_put(self, salt: bytes, reached: int) -> None:
        """A claim's put is back; `tick` reads it back when its election settles. A put that reached no node
        is read back too: besides an empty DHT, it means that another portal's claim was stored first."""
        self.putting.pop(salt, None)

    def tick(self) -> bool:
        """Put the claims whose moment came, and read back those whose election settled; True while any is
        under way (the daemon then steps often, so that the spread is not rounded to its idle tick)."""
        now = self.clock()
        for salt, election in list(self.electing.items()):
            held = self.held.get(election.model_id)
            if held is None:
                del self.electing[salt]  # given up meanwhile (its download failed, was cancelled or deleted)
            elif not election.out and now >= election.put_at:
                election.out = True
                self.putting[salt] = election.model_id
                held.due = now + self.refresh_every
                self._put(held, done=0, model_id=election.model_id)
            elif election.out and salt not in self.putting and now >= election.read_at:
                del self.electing[salt]
                self.verifying[salt] = election.model_id
                self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=salt)
        return bool(self.electing)

    def once(self, waiting: dict[str, str]) -> set[str]:
        """Refresh the claims this node holds, and read again the claims its waiting downloads wait on.

        `waiting` maps every model whose row waits on a claim to its sha256; returns those whose sha256
        record is due to be looked up again.
        """
        now = self.clock()
        if now >= self.next_adopt:
            self.next_adopt = now + self.refresh_every
            self._adopt(now)
        if self.held:
            copies = {model_id: (status, done) for model_id, status, done in ModelCopy.objects.filter(
                model_id__in=self.held, node=self.node_name).values_list("model_id", "status", "downloaded_bytes")}
            for model_id, held in list(self.held.items()):
                status, done = copies.get(model_id, (None, 0))
                if status not in FETCHING:
                    # Ready: its record takes over. Failed, cancelled or gone: its waiters should know now.
                    del self.held[model_id]
                    if status != CopyStatus.READY:
                        self._release_if_ours(model_id, held)
                elif now >= held.due:
                    held.due, held.beat = now + self.refresh_every, held.beat + 1
                    self._put(held, done=done, model_id=model_id)
        self.watching = {key: watch for key, watch in self.watching.items() if key in waiting}
        taking_over = {election.model_id for election in self.electing.values()} | set(self.verifying.values())
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
        held = self.held.get(model_id)
        if claim is not None and held is not None and claim[0] == held.token:
            claim = None  # this node's own, from the job's HTTP fetch before it restarted: claimed afresh
        elif claim is not None and self.dead_at_first_sight(claim):
            log.info("%s: a claim on its fetch was last written %.0f s ago, by a portal long gone; fetching it",
                     model_id, time.time() - claim[4])
            claim = None
        if claim is not None:
            self._wait_on(model_id, salt, claim)
        else:
            self._claim(model_id, salt)

    def _claim(self, model_id: str, salt: bytes) -> None:
        """Put this node's claim on the fetch at a random moment of the spread; `tick` puts it and reads it back."""
        now = self.clock()
        self.electing[salt] = Election(model_id=model_id, put_at=now + random.uniform(0, self.spread),
                                       read_at=now + self.spread + self.settle)
        self.held[model_id] = Held(salt=salt, token=secrets.token_hex(8), due=float("inf"))

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

    def _wait_on(self, model_id: str, salt: bytes, claim: tuple[str, int, int, int, int]) -> None:
        claimant, done, total, *_ = claim
        log.info("%s: another portal is fetching it from the Hub (%d of %d bytes); waiting for its record",
                 model_id, done, total)
        now = self.clock()
        self.watching[model_id] = Watch(sha256=salt[:32].hex(), seen=_sign_of_life(claim), since=now,
                                        next_ask=now + self.ask_every)
        node_services.torrent_await(model_id=model_id, node=self.node_name, done=done, total=total)

    def _progress(self, model_id: str, watch: Watch, claim: tuple[str, int, int, int, int]) -> None:
        _, done, total, *_ = claim
        if _sign_of_life(claim) != watch.seen:
            watch.seen, watch.since = _sign_of_life(claim), self.clock()
            node_services.torrent_await(model_id=model_id, node=self.node_name, done=done, total=total)

    def _adopt(self, now: float) -> None:
        """Hold a claim on each Hub fetch over HTTP under way on this node without one: this daemon was
        restarted (its claims went with the old process) while the download job went on."""
        if float(settings.P2P_SWARM_WAIT) <= 0:
            return  # the swarm is off for downloads here
        rows = (ModelCopy.objects.filter(node=self.node_name, status=CopyStatus.DOWNLOADING, downloaded_bytes__gt=0,
                                         torrent__isnull=True, model__source=Source.HUGGINGFACE)
                .exclude(model_id__in=self.held).annotate(parts=Count("model__files")).filter(parts=1)
                .values_list("model_id", "model__sha256"))
        for model_id, sha256 in rows:
            if swarm.is_sha256(sha256):
                log.info("%s: fetching it from the Hub without a claim; claiming it for the swarm", model_id)
                self.held[model_id] = Held(salt=swarm.claim_salt(sha256), token=secrets.token_hex(8), due=now)

    def _release_if_ours(self, model_id: str, held: Held) -> None:
        """Read the claim first: a waiter may have taken the fetch over already, and its claim must stay."""
        for pending in (self.putting, self.verifying):
            if pending.get(held.salt) == model_id:
                del pending[held.salt]
        if held.salt in self.electing and self.electing[held.salt].model_id == model_id:
            del self.electing[held.salt]
        self.releasing[held.salt] = held.token
        self.p2p.dht_get_record(public_key=swarm.PUBLIC_KEY, salt=held.salt)

    def _release(self, salt: bytes, claim, authoritative: bool) -> None:
        token = self.releasing[salt]
        if claim is not None and claim[0] == token:
            del self.releasing[salt]
            log.info("this node gave up a fetch it had claimed; releasing the claim for its waiters")
            self.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY, salt=salt,
                                    value=swarm.claim_release(claimant=token))
        elif authoritative:
            del self.releasing[salt]  # another's claim (or none) is stored: nothing to release

    def _put(self, held: Held, *, done: int, model_id: str) -> None:
        total = ModelCopy.objects.filter(model_id=model_id, node=self.node_name).values_list(
            "model__size", flat=True).first() or 0
        self.p2p.dht_put_record(public_key=swarm.PUBLIC_KEY, secret_key=swarm.SECRET_KEY, salt=held.salt,
                                value=swarm.claim_value(claimant=held.token, done=done, total=total, beat=held.beat))


def _sign_of_life(claim: tuple[str, int, int, int, int]) -> tuple[str, int, int]:
    """What must change for a fetch to count as alive: its byte count, or its beat once every byte is in."""
    claimant, done, total, beat, _ = claim
    return claimant, done, beat if total and done >= total else 0
