"""The node daemon: one process per machine that owns libtorrent and every llama-server child.

Engines are listed in settings.NODE_ENGINES. Each one is built with the node's name, then driven
by `step()` calls (one reconcile pass, returning whether it did anything) until `stop()`.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

log = logging.getLogger("aiportal.node")


class Engine(Protocol):
    def start(self) -> None: ...

    def step(self) -> bool: ...

    def stop(self) -> None: ...


def load_engines(node_name: str) -> list[Engine]:
    engines = []
    for dotted in settings.NODE_ENGINES:
        try:
            cls = import_string(dotted)
        except ImportError as exc:
            log.warning("engine %s not available: %s", dotted, exc)
            continue
        engines.append(cls(node_name=node_name))
    return engines


class NodeDaemon:
    def __init__(self, *, node_name: str, engines: list[Engine], tick: float):
        self.node_name = node_name
        self.engines = engines
        self.tick = tick
        self.stopping = threading.Event()

    def run_once(self) -> bool:
        busy = False
        for engine in self.engines:
            close_old_connections()
            try:
                busy = engine.step() or busy
            except Exception:
                # One engine's bad step must not take down the other's seeding or serving.
                log.exception("engine %s failed a step", type(engine).__name__)
        return busy

    def run(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        for engine in self.engines:
            engine.start()
        log.info("node %s running engines: %s", self.node_name, ", ".join(type(e).__name__ for e in self.engines))
        try:
            while not self.stopping.is_set():
                busy = self.run_once()
                self.stopping.wait(0.05 if busy else self.tick)
        finally:
            for engine in reversed(self.engines):
                try:
                    engine.stop()
                except Exception:
                    log.exception("engine %s failed to stop cleanly", type(engine).__name__)
