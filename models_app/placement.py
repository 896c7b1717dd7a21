"""Which node a download or a served model goes to (SPEC §9 placement), from the nodes' heartbeats.

On one machine there is one node and its facts are read here and now; a node that never
heartbeated (no daemon started yet) is this machine itself and is taken as it is.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from aiportal.errors import NoRoom
from aiportal.models import Node
from aiportal.nodes import node_require_online, nodes_online
from models_app.inference import memory

GIB = 1024 ** 3


@dataclass(frozen=True)
class Place:
    """A node that will hold a file: where its model folder is and how much room it has."""

    node: str
    model_dir: Path
    disk_free: int

    @property
    def local(self) -> bool:
        return self.node == settings.NODE_NAME

    def folder(self, model_id: str) -> str:
        return str(self.model_dir / model_id)


def _local() -> Place:
    settings.AI_MODEL_DIR.mkdir(parents=True, exist_ok=True)
    return Place(settings.NODE_NAME, settings.AI_MODEL_DIR, shutil.disk_usage(settings.AI_MODEL_DIR).free)


def _remote(node: Node) -> Place:
    return Place(node.name, Path(node.model_dir), node.disk_free)


def node_check(name: str) -> Node | None:
    """404 for a node never seen, 409 for one offline; None for this machine before its first heartbeat."""
    if name == settings.NODE_NAME and not Node.objects.filter(name=name).exists():
        return None
    return node_require_online(name=name)


def download_place(*, node: str | None, size: int) -> Place:
    """The node a new file goes to: the one asked for, else the online node with the most free disk."""
    if node is not None:
        found = node_check(node)
        place = _local() if found is None or found.name == settings.NODE_NAME else _remote(found)
    else:
        online = sorted(nodes_online(), key=lambda n: n.disk_free, reverse=True)
        place = _local() if not online or online[0].name == settings.NODE_NAME else _remote(online[0])
    if size > place.disk_free:
        raise NoRoom(f"Not enough disk space on node {place.node}: the model needs {size / GIB:.2f} GiB but "
                     f"{place.model_dir} has {place.disk_free / GIB:.2f} GiB free.", code="insufficient_storage",
                     extra={"node": place.node, "needed": size, "free": place.disk_free})
    return place


def heartbeat_of(node: str) -> Node | None:
    """What the node's daemon last reported of it; None for this machine before its daemon's first heartbeat
    (and for a node never seen, which `node_check` refuses)."""
    return Node.objects.filter(name=node).first()


def memory_available_on(node: str, *, others_needed: int) -> int | None:
    """Bytes a model may take on the node, as its daemon's heartbeat says (free memory, within its
    LLAMA_MEMORY_LIMIT); read here for this machine before its daemon's first heartbeat; None if unknown."""
    found = heartbeat_of(node)
    if found is not None:
        return found.memory_free if found.memory_total else None
    if node != settings.NODE_NAME:
        return None
    available = memory.memory_available()
    limit = settings.LLAMA_MEMORY_LIMIT
    if limit:
        available = min(available or limit, limit - others_needed)
    return available


def gpu_free_on(node: str) -> int:
    """Free memory of the node's GPUs, as its llama-server lists them in its heartbeat (0 without a GPU)."""
    found = heartbeat_of(node)
    return sum(int(gpu.get("memoryFree") or 0) for gpu in found.gpus) if found is not None else 0


def memory_check(*, node: str, model_id: str, needed: int, others_needed: int, context_size: int) -> None:
    """507 naming the node when `needed` bytes will not fit in what the node has free for models."""
    available = memory_available_on(node, others_needed=others_needed)
    if available is not None and needed > available:
        raise NoRoom(
            f"Serving {model_id} on node {node} with a context of {context_size} needs about {memory.human(needed)} "
            f"of memory; node {node} has {memory.human(max(available, 0))} available. Try a smaller contextSize "
            "or stop another model there, or serve it on another node.",
            code="not_enough_memory", extra={"node": node, "needed": needed, "available": max(available, 0)})
