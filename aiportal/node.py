"""The node daemon: one process per machine that owns libtorrent and every llama-server child.

Engines are listed in settings.NODE_ENGINES. Each one is built with the node's name, then driven
by `step()` calls (one reconcile pass, returning whether it did anything) until `stop()`. A
separate thread writes the node's heartbeat (SPEC §9): the machine's facts plus each engine's
`facts()`, so a long engine step never makes the node look gone.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.module_loading import import_string

from aiportal.nodes import machine_facts, node_goodbye, node_heartbeat
from models_app.services import transfer_samples_record

log = logging.getLogger("aiportal.node")


class Engine(Protocol):
    def start(self) -> None: ...

    def step(self) -> bool: ...

    def stop(self) -> None: ...

    # Optional: `facts() -> dict` of Node fields this engine knows (llama-server, GPUs, P2P port).


def load_engines(node_name: str) -> list[Engine]:
    # A wrong name in settings.NODE_ENGINES fails the start with the import error: a node that
    # silently ran without its torrents or its llama-servers would be worse.
    return [import_string(dotted)(node_name=node_name) for dotted in settings.NODE_ENGINES]


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

    def facts(self) -> dict:
        facts = machine_facts(settings.AI_MODEL_DIR)
        for engine in self.engines:
            more = getattr(engine, "facts", None)
            if more is not None:
                try:
                    facts.update(more())
                except Exception:
                    log.exception("engine %s could not report its facts", type(engine).__name__)
        return facts

    def heartbeat(self, *, starting: bool = False) -> None:
        node_heartbeat(name=self.node_name, address=settings.NODE_ADDRESS, facts=self.facts(), starting=starting)
        transfer_samples_record(node=self.node_name)  # the model page's chart of the last hour

    def _heartbeats(self) -> None:
        while not self.stopping.wait(settings.NODE_HEARTBEAT_SECONDS):
            try:
                close_old_connections()
                self.heartbeat()
            except Exception as exc:  # the database may be away for a moment; the next beat tries again
                log.warning("heartbeat of node %s failed: %s", self.node_name, exc)
        connection.close()

    def run(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        for engine in self.engines:
            engine.start()
        self.heartbeat(starting=True)
        beats = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beats.start()
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
            beats.join(timeout=5)
            try:
                node_goodbye(name=self.node_name)
            except Exception as exc:
                log.warning("could not mark node %s stopped: %s", self.node_name, exc)
