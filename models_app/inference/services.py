"""Serving, desired side: these functions write what should run; the node's LlamaEngine makes it so."""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from aiportal.errors import ApplicationError, Conflict, Unavailable, Upstream
from aiportal.nodes import nodes_online
from models_app import placement
from models_app.inference import binary, memory, process
from models_app.models import AIModel, ServedInstance, ServeState
from models_app.selectors import model_get
from models_app.services import model_notify
from models_app.states import instance_move
from torrents_app.sharing import copy_start, seeders_of

CONTEXT_RANGE = (128, 1_048_576)
THREADS_RANGE = (1, 1024)
GPU_LAYERS_RANGE = (0, 10_000)
ALL_LAYERS = 999


def _in_range(name: str, value: int | None, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if value is not None and not low <= value <= high:
        raise ApplicationError(f"{name} must be between {low} and {high}, not {value}.", code="invalid_input",
                               extra={"field": name})


def _default_gpu_layers(node: str) -> int:
    # 0 (the default) means "CPU unless the serving machine can offload": a request may still ask for 0.
    if settings.LLAMA_DEFAULT_GPU_LAYERS:
        return settings.LLAMA_DEFAULT_GPU_LAYERS
    found = placement.heartbeat_of(node)
    if found is not None:
        return ALL_LAYERS if found.gpus else 0
    candidate = binary.binary_candidate()  # this machine before its daemon's first heartbeat: ask the binary
    return ALL_LAYERS if candidate.is_file() and process.binary_devices(candidate) else 0


def _serve_node(model: AIModel, node: str | None, *, context_size: int) -> tuple[str, bool]:
    """The node that will serve, and whether it needs a copy first (SPEC §9 placement): the one asked for;
    else the one already serving it; else the first online node holding a copy that has room for it (this
    machine first); else an online node with room whose copy the holders can send over BitTorrent; else
    the first holder (whose memory check then says what is missing)."""
    if node is None:
        node, needs_copy = _serve_place(model, context_size)
        if needs_copy:
            placement.node_check(node)
            return node, True
    return _serve_on(model, node), False


def _serve_place(model: AIModel, context_size: int) -> tuple[str, bool]:
    holders = [name for name in model.holders if _online(name)]
    for instance in model.instance_list():
        if instance.desired == "serving" and instance.node in holders:
            return instance.node, False
    needed = memory.memory_needed(file_size=model.size, meta=model.gguf, context_size=context_size)
    holders.sort(key=lambda name: name != settings.NODE_NAME)
    fits = {name: _fits(model, name, needed) for name in holders}
    for where in ("gpu", "ram"):  # GPU memory first, then RAM (SPEC §9); this machine first of equals
        for name in holders:
            if fits[name] == where:
                return name, False
    if holders and seeders_of(model=model, exclude=""):
        others = [n for n in nodes_online() if n.name not in model.holders and n.p2p_port and n.memory_total]
        for found in sorted(others, key=lambda n: (placement.gpu_free_on(n.name) < needed, -n.memory_free)):
            if _fits(model, found.name, needed):
                return found.name, True
    return (holders or model.holders or [settings.NODE_NAME])[0], False


def _fits(model: AIModel, node: str, needed: int) -> str | None:
    """Where the model fits on the node: "gpu" when its GPUs' free memory holds it, "ram" when its RAM does."""
    if needed <= placement.gpu_free_on(node):
        return "gpu"
    available = placement.memory_available_on(node, others_needed=_others_needed(model, node))
    return "ram" if available is None or needed <= available else None


def _serve_on(model: AIModel, node: str) -> str:
    """`node`, checked: known, online, holding a complete copy whose file is there."""
    holders = model.holders
    placement.node_check(node)  # 404 unknown, 409 offline
    if node not in holders:
        where = ", ".join(holders) or "no node"
        raise Conflict(f"Model {model.id}'s file is on {where}, not on node {node}: copy it there first "
                       f"(POST /api/ai/models/{model.id}/copies) or serve it where it is.",
                       code="copy_missing", extra={"node": node, "holders": holders})
    copy = model.copy_on(node)
    path = Path(copy.path) / model.file_name
    if node == settings.NODE_NAME and not path.is_file():
        raise Conflict(f"The file of model {model.id} is missing: {path}.", code="model_file_missing")
    return node


def _online(name: str) -> bool:
    try:
        placement.node_check(name)
    except ApplicationError:
        return False
    return True


def _binary_on(node: str) -> None:
    """The llama-server of the serving node runs, as its daemon's heartbeat says (checked here for this machine
    before its daemon's first heartbeat)."""
    found = placement.heartbeat_of(node)
    if found is None:
        binary.binary_path()
        return
    if found.llama_error:
        raise Unavailable(f"Node {node} cannot run llama-server: {found.llama_error}", code="llama_server_missing",
                          extra={"node": node})


def _servable(model: AIModel) -> None:
    if not model.is_available or not model.file_name:
        raise Conflict(f"Model {model.id!r} is {model.status}, not ready to serve.", code="model_not_ready")


def _check_port(model: AIModel, node: str, port: int | None) -> None:
    if port is None:
        return
    if not 1024 <= port <= 65535:
        raise ApplicationError(f"port must be between 1024 and 65535, not {port}.", code="invalid_input",
                               extra={"field": "port"})
    mine = model.instance_on(node)
    if mine is not None and mine.port == port and mine.state in {ServeState.STARTING, ServeState.SERVING}:
        return
    taken = ServedInstance.objects.filter(Q(port=port) | Q(requested_port=port), desired="serving",
                                          node=node).exclude(model=model)
    # Another machine's ports are its daemon's to check when it starts the server (an error there comes back).
    if taken.exists() or node == settings.NODE_NAME and not process.port_is_free(port, settings.NODE_ADDRESS):
        raise Conflict(f"Port {port} is in use on node {node}; pick another port or leave it empty.",
                       code="port_in_use", extra={"port": port, "node": node})


def _others_needed(model: AIModel, node: str) -> int:
    """Memory the node's other wanted servers take."""
    others = ServedInstance.objects.filter(desired="serving", node=node).exclude(model=model).select_related("model")
    return sum(memory.memory_needed(file_size=i.model.size, meta=i.model.gguf, context_size=i.context_size)
               for i in others)


def _check_memory(model: AIModel, node: str, context_size: int, *, offload: bool) -> None:
    needed = memory.memory_needed(file_size=model.size, meta=model.gguf, context_size=context_size)
    if offload and needed <= placement.gpu_free_on(node):
        return  # its layers and cache go to the GPUs, which have room
    placement.memory_check(node=node, model_id=model.id, needed=needed, others_needed=_others_needed(model, node),
                           context_size=context_size)


def serve_estimate(*, model: AIModel) -> dict | None:
    """What serving the model needs (`base` bytes plus `perToken` bytes per context position) and what the
    node that would serve it has `available` (None when unknown), for the serve form to show before it is
    sent; None when it could not be served there now (the serve request then says why)."""
    context_size = _context_size(model.served, None)
    try:
        node, _ = _serve_node(model, None, context_size=context_size)
    except ApplicationError:
        return None
    return {
        "node": node,
        "base": model.size + memory.OVERHEAD_BYTES,
        "perToken": memory.kv_bytes_per_token(model.gguf),
        "contextSize": context_size,
        "available": placement.memory_available_on(node, others_needed=_others_needed(model, node)),
    }


def serve_start(*, model_id: str, node: str | None = None, port: int | None = None, context_size: int | None = None,
                threads: int | None = None, gpu_layers: int | None = None) -> AIModel:
    """Ask a node to serve the model; the model goes `starting`, then `serving` when llama-server is up."""
    _in_range("contextSize", context_size, CONTEXT_RANGE)
    _in_range("threads", threads, THREADS_RANGE)
    _in_range("gpuLayers", gpu_layers, GPU_LAYERS_RANGE)
    model = model_get(model_id=model_id)
    _servable(model)
    target, needs_copy = _serve_node(model, node, context_size=_context_size(model.served, context_size))
    # Each node serving the model has its own instance; options left out follow the one already there, else
    # the model's other instance (the same model served alike everywhere), else the defaults.
    instance = model.instance_on(target) or model.served
    _check_port(model, target, port)
    _binary_on(target)
    options = _options(instance, target, port=port, context_size=context_size, threads=threads, gpu_layers=gpu_layers)
    if not needs_copy and _already(model.instance_on(target), options):
        return model
    _check_memory(model, target, options["context_size"], offload=options["gpu_layers"] > 0)
    if needs_copy:
        # The node with room has no copy: it gets one over BitTorrent, and its daemon serves once it is verified.
        copy_start(model_id=model.pk, node=target)
    with transaction.atomic():
        ServedInstance.objects.update_or_create(
            model=model, node=target, defaults={"desired": "serving", "error": "",
                                   "restarts": 0, "next_start_at": None, "last_used_at": timezone.now(), **options})
        model_notify(model)
    return model_get(model_id=model_id)


def _context_size(instance: ServedInstance | None, given: int | None) -> int:
    if given is not None:
        return given
    if instance is not None and instance.desired == "serving":
        return instance.context_size
    return settings.LLAMA_DEFAULT_CTX


def _options(instance: ServedInstance | None, node: str, **given) -> dict:
    """The options asked for; those left out keep a served model's current ones, else the defaults."""
    current = instance if instance is not None and instance.desired == "serving" else None
    defaults = {
        "port": current.requested_port if current else None,
        "context_size": current.context_size if current else settings.LLAMA_DEFAULT_CTX,
        "threads": current.threads if current else settings.LLAMA_DEFAULT_THREADS,
        "gpu_layers": current.gpu_layers if current else None,
    }
    chosen = {key: defaults[key] if value is None else value for key, value in given.items()}
    if chosen["gpu_layers"] is None:
        chosen["gpu_layers"] = _default_gpu_layers(node)
    chosen["requested_port"] = chosen.pop("port")
    return chosen


def _already(instance: ServedInstance | None, options: dict) -> bool:
    if instance is None or instance.desired != "serving" or instance.state == ServeState.ERROR:
        return False
    return all(getattr(instance, key) == value for key, value in options.items() if key != "requested_port") and (
        options["requested_port"] in (None, instance.requested_port, instance.port))


def serve_stop(*, model_id: str, node: str | None = None) -> AIModel:
    """Ask the model's nodes (or only `node`) to stop serving it; stopping what is not served is fine."""
    model = model_get(model_id=model_id)
    rows = ServedInstance.objects.filter(model=model)
    if node is not None:
        rows = rows.filter(node=node)
    going = rows.filter(Q(desired="serving") | Q(state=ServeState.ERROR))
    if not going.exists():
        return model
    with transaction.atomic():
        going.update(desired="stopped", next_start_at=None)
        # A failed server has no process left: stopping it also clears its error (the page's "Clear error").
        instance_move(rows.filter(state=ServeState.ERROR), ServeState.STOPPED, error="")
        model_notify(model)
    return model_get(model_id=model_id)


def serve_touch(*, instance_id: int, generated: int = 0) -> None:
    """Mark an instance used now (its keep-alive clock), adding the tokens a request generated."""
    fields = {"last_used_at": timezone.now()}
    if generated:
        fields["tokens_generated"] = F("tokens_generated") + generated
    ServedInstance.objects.filter(pk=instance_id).update(**fields)


def serve_wait(*, model_id: str, timeout: float, node: str | None = None) -> AIModel:
    """Block until an instance of the model (on `node`, when given) serves; raise when they failed to start,
    none is wanted, or it takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        model = model_get(model_id=model_id)
        instances = [i for i in model.instance_list() if node is None or i.node == node]
        wanted = [i for i in instances if i.desired == "serving"]
        if any(i.state == ServeState.SERVING for i in wanted):
            return model
        failed = [i for i in instances if i.state == ServeState.ERROR and i.error]
        if failed and all(i.state == ServeState.ERROR for i in wanted):
            raise Upstream(f"Model {model_id} failed to start: {failed[0].error}", code="serve_failed",
                           extra={"node": failed[0].node})
        if not wanted:
            raise Conflict(f"Model {model_id!r} is not being served.", code="model_not_serving")
        if time.monotonic() >= deadline:
            where = ", ".join(i.node for i in wanted)
            raise Unavailable(f"Model {model_id} did not start within {timeout:.0f} seconds on node {where} "
                              "(is that node's daemon `manage.py runnode` running?).", code="serve_timeout")
        time.sleep(0.1)


def serve_ensure(*, model_id: str, timeout: float = 120.0) -> AIModel:
    """The model, serving: started on demand when it is ready but not served (like Ollama)."""
    model = model_get(model_id=model_id)
    # Already wanted somewhere (perhaps with someone's own options, or restarting after a crash): just wait.
    if not any(i.desired == "serving" for i in model.instances.all()):
        serve_start(model_id=model_id)
    return serve_wait(model_id=model_id, timeout=timeout)
