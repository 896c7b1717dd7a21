"""LlamaEngine: the node daemon's owner of every llama-server child of this node.

Each `reconcile_once()` pass reads the ServedInstance rows of this node and moves reality towards
them: starts servers that should run, probes loading ones (`/health`, never blocking for long),
notices crashes (error with the log tail, restart with backoff), stops unwanted or orphaned ones
(terminate, then kill after a grace period) and stops models idle past the keep-alive.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from aiportal.errors import ApplicationError
from models_app import gguf_meta
from models_app.inference import binary, memory, process, transitions
from models_app.inference.services import serve_stop
from models_app.inference.process import ServerProcess, ServerSpec
from models_app.models import CopyStatus, ServedInstance, ServeState
from models_app.states import FETCHING

log = logging.getLogger("aiportal.llama")

STOP_GRACE_SECONDS = 10.0
STABLE_AFTER = timedelta(seconds=60)
HEALTH_TIMEOUT = 2.0
DEVICES_EVERY = 60.0


class LlamaEngine:
    """Reconciles this node's ServedInstance rows with its llama-server processes."""

    def __init__(self, *, node_name: str, now: Callable[[], datetime] = timezone.now, health_every: float = 5.0,
                 health_misses: int = 3):
        self.node_name = node_name
        self.now = now
        self.children: dict[str, ServerProcess] = {}
        self.stopping: dict[str, tuple[ServerProcess, float]] = {}
        # A serving child's /health is probed every `health_every` s; `health_misses` misses in a row = hung.
        self.health_every = health_every
        self.health_misses = health_misses
        self.probes: dict[str, tuple[float, int]] = {}  # model id -> (next probe, misses so far)
        self._devices: tuple[float, list[dict]] | None = None

    def start(self) -> None:
        """Kill servers an earlier daemon left behind; the wanted ones start again on the next pass."""
        for instance in ServedInstance.objects.filter(node=self.node_name, pid__isnull=False):
            if process.pid_runs_llama_server(instance.pid, instance.model_id):
                log.info("killing llama-server %s left by an earlier daemon (pid %s)", instance.model_id, instance.pid)
                process.pid_kill(instance.pid)
        transitions.mark_node_down(self.node_name, now=self.now())

    def step(self) -> bool:
        return self.reconcile_once()

    def stop(self) -> None:
        for model_id, child in list(self.children.items()):
            self._begin_stop(model_id, child)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.stopping and time.monotonic() < deadline:
            self._finish_stops(record=False)
            time.sleep(0.05)
        for child, _ in self.stopping.values():
            child.kill()
        self.stopping.clear()
        transitions.mark_node_down(self.node_name, now=self.now())

    def reconcile_once(self) -> bool:
        busy = self._finish_stops()
        # One instance per model on a node: this node's children are keyed by model id.
        rows = {i.model_id: i for i in ServedInstance.objects.filter(node=self.node_name).select_related("model")}
        busy = self._stop_unwanted(rows) or busy
        for instance in rows.values():
            if instance.desired == "serving":
                busy = self._reconcile_serving(instance) or busy
            elif instance.model_id not in self.stopping and instance.state in {
                    ServeState.STARTING, ServeState.SERVING, ServeState.STOPPING}:
                transitions.mark_stopped(instance.model_id, node=self.node_name, now=self.now())
                busy = True
        self._expire_idle(rows)
        return busy

    # stopping

    def _stop_unwanted(self, rows: dict[str, ServedInstance]) -> bool:
        busy = False
        for model_id, child in list(self.children.items()):
            instance = rows.get(model_id)
            if instance is None or instance.desired != "serving" or self._options_changed(instance, child.spec):
                self._begin_stop(model_id, child)
                if instance is not None:
                    transitions.mark_stopping(instance, now=self.now())
                busy = True
        return busy

    def _begin_stop(self, model_id: str, child: ServerProcess) -> None:
        log.info("stopping llama-server for %s (pid %s)", model_id, child.pid)
        child.terminate()
        self.children.pop(model_id, None)
        self.probes.pop(model_id, None)
        self.stopping[model_id] = (child, time.monotonic() + STOP_GRACE_SECONDS)

    def _finish_stops(self, *, record: bool = True) -> bool:
        done = False
        for model_id, (child, deadline) in list(self.stopping.items()):
            if child.exit_code() is None and time.monotonic() < deadline:
                continue
            child.kill()
            del self.stopping[model_id]
            if record:
                transitions.mark_stopped(model_id, node=self.node_name, now=self.now())
            done = True
        return done

    @staticmethod
    def _options_changed(instance: ServedInstance, spec: ServerSpec) -> bool:
        wanted = (instance.context_size, instance.threads, instance.gpu_layers)
        port_moved = instance.requested_port is not None and instance.requested_port != spec.port
        return wanted != (spec.context_size, spec.threads, spec.gpu_layers) or port_moved

    def _expire_idle(self, rows: dict[str, ServedInstance]) -> None:
        keep = settings.LLAMA_KEEP_ALIVE_SECONDS
        if not keep:
            return
        cutoff = self.now() - timedelta(seconds=keep)
        for instance in rows.values():
            last = instance.last_used_at or instance.started_at
            if instance.desired != "serving" or instance.state != ServeState.SERVING or not last or last >= cutoff:
                continue
            child = self.children.get(instance.model_id)
            if child is not None and process.server_busy(child.spec.url, instance.api_key):
                # A request is still being answered (a long stream): the idle clock starts after it.
                transitions.mark_used(instance, now=self.now())
                continue
            log.info("%s idle since %s: stopping (keep-alive %ss)", instance.model_id, last, keep)
            serve_stop(model_id=instance.model_id, node=self.node_name)

    # serving

    def _reconcile_serving(self, instance: ServedInstance) -> bool:
        child = self.children.get(instance.model_id)
        if child is None:
            return self._maybe_spawn(instance)
        code = child.exit_code()
        if code is not None:
            self._on_exit(instance, child, code)
            return True
        if instance.state == ServeState.STARTING:
            # Still loading is work in progress: the daemon polls again soon rather than after a full tick.
            if process.server_health(child.spec.url) != 200:
                return True
            _key_file_remove(child)  # read when it started: from now on only the portal's database holds the key
            return transitions.mark_serving(instance, now=self.now())
        if self._hung(instance, child):
            return True
        if instance.restarts and instance.started_at and instance.started_at < self.now() - STABLE_AFTER:
            transitions.mark_restarts_forgotten(instance)
        return False

    def _hung(self, instance: ServedInstance, child: ServerProcess) -> bool:
        """Probe a serving child's /health now and then; after a few misses in a row, kill it and restart it."""
        due, misses = self.probes.get(instance.model_id, (0.0, 0))
        if time.monotonic() < due:
            return False
        self._rotate(child.spec.log_path)
        answered = process.server_health(child.spec.url, timeout=HEALTH_TIMEOUT) == 200
        misses = 0 if answered else misses + 1
        self.probes[instance.model_id] = (time.monotonic() + self.health_every, misses)
        if misses < self.health_misses:
            return False
        del self.children[instance.model_id], self.probes[instance.model_id]
        child.kill()
        log.warning("llama-server for %s stopped answering /health; killed it", instance.model_id)
        message = (f"llama-server stopped answering: /health got no answer within {HEALTH_TIMEOUT:.0f} s, {misses} "
                   f"times in a row, {self.health_every:.0f} s apart, so it was killed and will be started again. "
                   f"Last lines of {child.spec.log_path}:\n{process.log_tail(child.spec.log_path)}")
        transitions.mark_failed(instance, message=message, retry=True, now=self.now())
        return True

    def _maybe_spawn(self, instance: ServedInstance) -> bool:
        if instance.model_id in self.stopping:
            return False
        if instance.next_start_at is not None and self.now() < instance.next_start_at:
            return False
        if instance.model.copies.filter(node=self.node_name, status__in=FETCHING).exists():
            return False  # the copy it will serve is still on its way to this node (a serve that made one)
        key = secrets.token_urlsafe(32)  # a new one at every start; only the portal's database holds it
        try:
            spec = self._spec(instance, key)
            self._rotate(spec.log_path)
            child = process.server_spawn(spec)
        except ApplicationError as exc:
            transitions.mark_failed(instance, message=exc.message, retry=True, now=self.now())
            return True
        except OSError as exc:
            transitions.mark_failed(instance, message=f"llama-server could not start: {exc}", retry=True,
                                    now=self.now())
            return True
        if not transitions.mark_starting(instance, port=spec.port, host=spec.host, api_key=key, pid=child.pid,
                                         log_path=str(spec.log_path), now=self.now()):
            child.kill()  # the row moved meanwhile (a stop, another daemon's write): the next pass sees how
            return True
        log.info("started llama-server for %s on port %s (pid %s)", instance.model_id, spec.port, child.pid)
        self.children[instance.model_id] = child
        return True

    def _spec(self, instance: ServedInstance, key: str) -> ServerSpec:
        host = settings.NODE_ADDRESS
        port = instance.requested_port or process.free_port(host)
        if instance.requested_port and not process.port_is_free(port, host):
            raise ApplicationError(f"Port {port} on {host} is in use by another program (node {self.node_name}).",
                                   code="port_in_use")
        model = instance.model
        key_path = process.key_file_write(Path(settings.RUN_DIR) / "keys" / f"llama-{model.pk}.key", key)
        copy = model.copies.filter(node=self.node_name, status=CopyStatus.READY).first()
        if copy is None:
            raise ApplicationError(f"Node {self.node_name} holds no complete copy of {model.pk}; copy it there first.",
                                   code="copy_missing")
        model_path = Path(copy.path) / model.file_name
        return ServerSpec(
            binary=binary.binary_path(), model_path=model_path, port=port,
            context_size=instance.context_size, threads=instance.threads, gpu_layers=instance.gpu_layers,
            alias=model.pk, log_path=Path(settings.LOG_DIR) / f"llama-{model.pk}.log", host=host, key_path=key_path,
            embeddings=settings.LLAMA_EMBEDDINGS, pooling=_pooling(model_path), metrics=settings.LLAMA_METRICS,
        )

    def facts(self) -> dict:
        """For the heartbeat: the llama-server this node runs, its devices, and the memory left for models."""
        facts: dict = {"llama_error": "", "llama_version": "", "llama_backends": [], "gpus": []}
        try:
            path = binary.binary_path()
        except ApplicationError as exc:
            facts["llama_error"] = exc.message
        else:
            now = time.monotonic()
            if self._devices is None or now - self._devices[0] > DEVICES_EVERY:  # free GPU memory moves slowly
                self._devices = (now, process.binary_devices(path))
            facts.update(llama_version=process.binary_version(path), llama_backends=process.binary_backends(path),
                         gpus=[{k: d[k] for k in ("name", "memoryTotal", "memoryFree")} for d in self._devices[1]])
        limit = settings.LLAMA_MEMORY_LIMIT
        if limit:
            facts["memory_free"] = max(0, min(memory.memory_available() or limit, limit - self._memory_used()))
        return facts

    def _memory_used(self) -> int:
        serving = ServedInstance.objects.filter(node=self.node_name, desired="serving").select_related("model")
        return sum(memory.memory_needed(file_size=i.model.size, meta=i.model.gguf, context_size=i.context_size)
                   for i in serving)

    @staticmethod
    def _rotate(path: Path) -> None:
        process.log_rotate(path, max_bytes=settings.LOG_MAX_BYTES, keep=settings.LOG_BACKUPS)

    def _on_exit(self, instance: ServedInstance, child: ServerProcess, code: int) -> None:
        del self.children[instance.model_id]
        _key_file_remove(child)
        self.probes.pop(instance.model_id, None)
        phase = "while loading the model" if instance.state == ServeState.STARTING else "while serving"
        tail = process.log_tail(child.spec.log_path)
        message = (f"llama-server {process.exit_description(code)} {phase}. {process.exit_advice(code)}"
                   f"Last lines of {child.spec.log_path}:\n{tail}")
        log.warning("llama-server for %s exited with code %s", instance.model_id, code)
        transitions.mark_failed(instance, message=message, retry=True, now=self.now())


def _pooling(model_path: Path) -> str:
    """`mean` for a model that names no pooling of its own (a chat model); an embedding model keeps its own."""
    try:
        named = gguf_meta.read_metadata(model_path).get("poolingType")
    except (OSError, ValueError):  # not readable as GGUF: llama-server will say why when it loads it
        named = None
    return "" if named else "mean"


def _key_file_remove(child: ServerProcess) -> None:
    if child.spec.key_path is not None:
        child.spec.key_path.unlink(missing_ok=True)
