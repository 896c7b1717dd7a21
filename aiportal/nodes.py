"""The group's nodes: the heartbeat each node daemon writes, and the look-ups placement and routing use."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.utils import timezone

from aiportal.errors import Conflict, NotFound
from aiportal.models import Node


def machine_facts(model_dir: Path, meminfo: Path = Path("/proc/meminfo")) -> dict:
    """What this machine has right now: CPUs, memory and the free disk under the model folder."""
    memory = {"MemTotal": 0, "MemAvailable": 0}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in memory:
                memory[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    model_dir.mkdir(parents=True, exist_ok=True)
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "memory_total": memory["MemTotal"],
        "memory_free": memory["MemAvailable"],
        "disk_free": shutil.disk_usage(model_dir).free,
        "model_dir": str(model_dir),
    }


FACTS = ("cpus", "memory_total", "memory_free", "gpus", "disk_free", "model_dir", "llama_version", "llama_backends",
         "llama_error", "p2p_port")


def node_heartbeat(*, name: str, address: str, facts: dict, starting: bool = False) -> None:
    now = timezone.now()
    values = {key: facts[key] for key in FACTS if key in facts}
    values.update(address=address, last_seen=now, stopped=False)
    if starting:
        values["started_at"] = now
    Node.objects.update_or_create(name=name, defaults=values)


def node_goodbye(*, name: str) -> None:
    """A daemon that stops cleanly shows offline at once instead of 15 s later."""
    Node.objects.filter(name=name).update(stopped=True)


def node_get(*, name: str) -> Node:
    node = Node.objects.filter(name=name).first()
    if node is None:
        known = ", ".join(Node.objects.values_list("name", flat=True)) or "none yet"
        raise NotFound(f"No node named {name!r} (known nodes: {known}).", code="node_not_found",
                       extra={"node": name})
    return node


def node_require_online(*, name: str) -> Node:
    """The node, when its daemon is heartbeating; 404 unknown, 409 offline."""
    node = node_get(name=name)
    if not node.online:
        raise Conflict(f"Node {name} is offline (last heartbeat {_ago(node)}); start its node daemon "
                       "(`manage.py runnode`) or pick another node.", code="node_offline", extra={"node": name})
    return node


def node_offline(name: str, known: dict[str, Node] | None = None) -> bool:
    """True only for a node that has heartbeated and stopped: a node never seen (one machine, no daemon
    yet) is not called offline."""
    node = (known or {}).get(name) if known is not None else Node.objects.filter(name=name).first()
    return node is not None and not node.online


def nodes_by_name() -> dict[str, Node]:
    return {node.name: node for node in Node.objects.all()}


def nodes_online() -> list[Node]:
    return [node for node in Node.objects.all() if node.online]


def _ago(node: Node) -> str:
    if node.last_seen is None:
        return "never"
    seconds = (timezone.now() - node.last_seen).total_seconds()
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"
