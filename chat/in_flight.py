"""Requests in flight per llama-server instance, for routing to the least busy one (SPEC §9).

Every front door of a group (each daphne, on each machine) counts in the same place: a sorted set per
instance in the group's Redis, scored by when each request took its lease, and one hash of when each
instance was last chosen. Choosing and taking the lease is one Lua script, so two front doors that
ask at the same moment never both see an instance as free. When Redis cannot be reached the counting
goes on in this process for a while (a front door must answer without it), and a warning says so.

A request takes a lease when its instance is chosen and gives it back when it is done. A lease never
given back (a stream no one read, a process killed mid-answer) stops counting after `EXPIRE` seconds,
the longest an answer may take.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import socket
import threading
import time

import redis
from django.conf import settings

log = logging.getLogger("aiportal.chat")

# KEYS: each candidate's set of leases, then the hash of when each candidate was last chosen.
# ARGV: now, EXPIRE, the lease, then the candidates' names in the order of KEYS.
_TAKE = """
local now, expire, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local picked = KEYS[#KEYS]
local best, best_busy, best_at
for i = 1, #KEYS - 1 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - expire)
  local busy = redis.call('ZCARD', KEYS[i])
  local at = tonumber(redis.call('HGET', picked, ARGV[3 + i]) or '0')
  if best == nil or busy < best_busy or (busy == best_busy and at < best_at) then
    best, best_busy, best_at = i, busy, at
  end
end
redis.call('ZADD', KEYS[best], now, ARGV[3 + best] .. '|' .. lease)
redis.call('EXPIRE', KEYS[best], math.ceil(expire))
redis.call('HSET', picked, ARGV[3 + best], now)
redis.call('EXPIRE', picked, math.ceil(expire))
return best - 1
"""


def instance_slot(*, instance_id: int, url: str, api_key: str) -> str:
    """The name an instance is counted under: its row and the server it is (a llama-server started again,
    or another portal's instance with the same id in the same Redis, counts afresh)."""
    return f"{instance_id}-{hashlib.sha256(f'{url} {api_key}'.encode()).hexdigest()[:12]}"


class InFlight:
    EXPIRE = 600.0
    RETRY_REDIS = 30.0  # seconds of counting locally after Redis failed, before trying it again

    def __init__(self, *, redis_url: str | None = None, prefix: str = "aiportal:in-flight") -> None:
        self.redis_url, self.prefix = redis_url, prefix
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}  # lease -> (slot, taken at): the local count
        self._picked: dict[str, float] = {}  # slot -> when it was last chosen
        self._next = itertools.count(1)
        self._me = f"{socket.gethostname()}.{os.getpid()}.{id(self):x}"
        self._client: redis.Redis | None = None
        self._script = None
        self._local_until = 0.0

    # -- the interface ---------------------------------------------------------------------------
    def take(self, slots: list[str]) -> tuple[str, str]:
        """The least busy of `slots` (of equals, the one chosen longest ago), and a lease on it."""
        lease = f"{self._me}.{next(self._next)}"
        script = self._redis_script()
        if script is not None:
            try:
                keys = [self._key(slot) for slot in slots] + [f"{self.prefix}:picked"]
                chosen = slots[int(script(keys=keys, args=[time.time(), self.EXPIRE, lease, *slots]))]
                return chosen, f"{chosen}|{lease}"
            except redis.RedisError as exc:
                self._redis_failed(exc)
        return self._take_locally(slots, lease)

    def give_back(self, lease: str) -> None:
        with self._lock:
            if self._leases.pop(lease, None) is not None:
                return
        client = self._redis()
        if client is not None:
            try:
                client.zrem(self._key(lease.split("|", 1)[0]), lease)
            except redis.RedisError as exc:
                self._redis_failed(exc)

    def count(self, slot: str) -> int:
        """Requests in flight on `slot`, in every front door that counts where this one does."""
        with self._lock:
            local = sum(1 for s, _ in self._leases.values() if s == slot)
        client = self._redis()
        if client is not None:
            try:
                return local + int(client.zcount(self._key(slot), time.time() - self.EXPIRE, "+inf"))
            except redis.RedisError as exc:
                self._redis_failed(exc)
        return local

    # -- inside ----------------------------------------------------------------------------------
    def _key(self, slot: str) -> str:
        return f"{self.prefix}:{slot}"

    def _take_locally(self, slots: list[str], lease: str) -> tuple[str, str]:
        with self._lock:
            now = time.monotonic()
            self._leases = {k: v for k, v in self._leases.items() if now - v[1] < self.EXPIRE}
            busy = dict.fromkeys(slots, 0)
            for slot, _ in self._leases.values():
                if slot in busy:
                    busy[slot] += 1
            chosen = min(slots, key=lambda s: (busy[s], self._picked.get(s, 0.0)))
            self._picked[chosen] = now
            lease = f"{chosen}|{lease}"
            self._leases[lease] = (chosen, now)
            return chosen, lease

    def _redis(self) -> redis.Redis | None:
        url = self.redis_url or settings.REDIS_URL
        if not url or time.monotonic() < self._local_until:
            return None
        if self._client is None:
            # Short timeouts: a request waits on this, and the event loop of an async door may too.
            self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return self._client

    def _redis_script(self):
        client = self._redis()
        if client is None:
            return None
        if self._script is None:
            self._script = client.register_script(_TAKE)
        return self._script

    def _redis_failed(self, exc: Exception) -> None:
        log.warning("requests in flight are counted in this process only for %.0f s: Redis at %s: %s",
                    self.RETRY_REDIS, self.redis_url or settings.REDIS_URL, exc)
        self._local_until = time.monotonic() + self.RETRY_REDIS
