"""Read side of AI models: look-ups and the model object of SPEC §4."""
from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from aiportal.errors import NotFound
from aiportal.models import Node
from aiportal.nodes import node_offline, nodes_by_name
from models_app.models import AIModel, CopyStatus, ModelCopy, ServedInstance, ServeState, TransferSample

OFFLINE = "offline"  # a copy or instance whose node stopped heartbeating (SPEC §9)


def model_list() -> QuerySet[AIModel]:
    return AIModel.objects.prefetch_related("copies", "instances").order_by("-created_at")


def model_get(*, model_id: str) -> AIModel:
    try:
        return model_list().get(pk=model_id)
    except AIModel.DoesNotExist:
        raise NotFound(f"No model with id {model_id!r}.", code="model_not_found") from None


def model_server(model: AIModel, nodes: dict[str, Node] | None = None) -> dict | None:
    """The seed-era `server` of the model object: its most useful instance, while it runs on a node that is up."""
    instance = next((i for i in model.instance_list() if not node_offline(i.node, nodes)), None)
    if instance is None or instance.state not in {ServeState.STARTING, ServeState.SERVING} or not instance.port:
        return None
    return {
        "node": instance.node,
        "port": instance.port,
        "url": instance.url,
        "contextSize": instance.context_size,
        "threads": instance.threads,
        "gpuLayers": instance.gpu_layers,
        "startedAt": instance.started_at.isoformat() if instance.started_at else None,
    }


def _transfer(model: AIModel | ModelCopy) -> dict:
    """A copy's transfer figures, or a model's summed over its copies."""
    return {
        "downloadProgress": round(model.download_progress, 2),
        "downloadRate": model.download_rate,
        "uploadRate": model.upload_rate,
        "downloadedBytes": model.downloaded_bytes,
        "uploadedBytes": model.uploaded_bytes,
        "peers": model.peers,
        "seeds": model.seeds,
        # Where the downloaded bytes came from (SPEC §8): other peers, the Hub's URL as a web seed, plain HTTP.
        "bytesFrom": {"peers": model.peer_bytes, "webSeed": model.web_seed_bytes, "http": model.http_bytes},
    }


def model_copy(copy: ModelCopy, nodes: dict[str, Node] | None = None) -> dict:
    """The model's files on one node (SPEC §9)."""
    return {
        "node": copy.node,
        "status": OFFLINE if node_offline(copy.node, nodes) else copy.status,
        **_transfer(copy),
        # The wish (`ModelCopy.seeding`) holds only for a copy whose files are complete.
        "seeding": copy.seeding and copy.status == CopyStatus.READY,
        "error": copy.error,
        "note": copy.note,
    }


def model_instance(instance: ServedInstance, nodes: dict[str, Node] | None = None) -> dict:
    """A llama-server of the model on one node: what it does now (`status`) and why it failed (`error`)."""
    return {
        "node": instance.node,
        "status": OFFLINE if node_offline(instance.node, nodes) else instance.state,
        "desired": instance.desired,
        "port": instance.port,
        "contextSize": instance.context_size,
        "threads": instance.threads,
        "gpuLayers": instance.gpu_layers,
        "startedAt": instance.started_at.isoformat() if instance.started_at else None,
        "restarts": instance.restarts,
        "error": instance.error,
    }


def model_to_dict(model: AIModel, nodes: dict[str, Node] | None = None) -> dict:
    """The model object; `nodes` (name → Node) saves a query per model when many are listed."""
    nodes = nodes_by_name() if nodes is None else nodes
    return {
        "id": model.id,
        "name": model.name,
        "source": model.source,
        "repoId": model.repo_id,
        "revision": model.revision,
        "fileName": model.file_name,
        "format": model.format,
        "size": model.size,
        "sha256": model.sha256,
        "status": model.status,
        **_transfer(model),
        "shareRatio": model.share_ratio,
        "magnetUri": model.magnet_uri,
        "infoHash": model.info_hash,
        "seeding": model.seeding,
        "error": model.error,
        "note": model.note,
        "server": model_server(model, nodes),
        "copies": [model_copy(copy, nodes) for copy in model.copy_list()],
        "instances": [model_instance(instance, nodes) for instance in model.instance_list()],
        "gguf": _public_gguf(model.gguf),
        "createdAt": model.created_at.isoformat(),
        "updatedAt": model.updated_at.isoformat(),
    }


def _public_gguf(meta: dict | None) -> dict | None:
    if not meta:
        return None
    keys = ("architecture", "parameters", "quantization", "contextLength", "name", "sizeLabel")
    return {key: meta.get(key) for key in keys}


def models_to_dicts(models) -> list[dict]:
    nodes = nodes_by_name()
    return [model_to_dict(model, nodes) for model in models]


def node_list() -> list[dict]:
    """Every node of the group with what it has and holds (SPEC §9 `GET /api/ai/nodes`)."""
    copies: dict[str, list[str]] = {}
    for model_id, node in ModelCopy.objects.filter(status=CopyStatus.READY).values_list("model_id", "node"):
        copies.setdefault(node, []).append(model_id)
    serving: dict[str, list[str]] = {}
    for model_id, node in ServedInstance.objects.filter(state=ServeState.SERVING).values_list("model_id", "node"):
        serving.setdefault(node, []).append(model_id)
    return [node_to_dict(node, copies=sorted(copies.get(node.name, [])), serving=sorted(serving.get(node.name, [])))
            for node in Node.objects.order_by("name")]


def node_to_dict(node: Node, *, copies: list[str], serving: list[str]) -> dict:
    online = node.online
    return {
        "name": node.name,
        "address": node.address,
        "online": online,
        "lastSeen": node.last_seen.isoformat() if node.last_seen else None,
        "startedAt": node.started_at.isoformat() if node.started_at else None,
        "cpus": node.cpus,
        "memory": {"total": node.memory_total, "free": node.memory_free},
        "gpus": [{"name": g.get("name", ""), "memoryTotal": g.get("memoryTotal", 0), "memoryFree": g.get("memoryFree", 0)}
                 for g in node.gpus or []],
        "diskFree": node.disk_free,
        "llamaServer": {"version": node.llama_version, "backends": node.llama_backends or [],
                        "error": node.llama_error},
        "p2pPort": node.p2p_port,
        "copies": copies,
        "serving": serving if online else [],
    }


def transfer_history(*, model_id: str) -> list[dict]:
    """The model's transfer samples of the last hour, oldest first (the node daemons prune older ones). Each
    node samples its own copy every heartbeat; with copies on several nodes, the samples of one heartbeat
    period are summed into one point."""
    model_get(model_id=model_id)
    rows = TransferSample.objects.filter(model_id=model_id).values_list("at", "node", "download_rate", "upload_rate",
                                                                         "peers")
    period = max(float(settings.NODE_HEARTBEAT_SECONDS), 1.0)
    points: list[dict] = []
    seen: set[str] = set()
    for at, node, down, up, peers in rows:
        if points and node not in seen and at.timestamp() - points[-1]["_start"] < period:
            point = points[-1]  # another node's sample of the same moment
        else:
            point = {"_start": at.timestamp(), "at": at.isoformat(), "downloadRate": 0, "uploadRate": 0, "peers": 0}
            points.append(point)
            seen = set()
        seen.add(node)
        point["downloadRate"] += down
        point["uploadRate"] += up
        point["peers"] += peers
    return [{key: value for key, value in point.items() if key != "_start"} for point in points]
