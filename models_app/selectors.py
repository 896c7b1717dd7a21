"""Read side of AI models: look-ups and the model object of SPEC §4."""
from __future__ import annotations

from django.db.models import QuerySet

from aiportal.errors import NotFound
from models_app.models import AIModel, ServedInstance, ServeState, Status

SEEDABLE = frozenset({Status.READY, Status.STARTING, Status.SERVING, Status.STOPPING})


def model_list() -> QuerySet[AIModel]:
    return AIModel.objects.select_related("instance").order_by("-created_at")


def model_get(*, model_id: str) -> AIModel:
    try:
        return model_list().get(pk=model_id)
    except AIModel.DoesNotExist:
        raise NotFound(f"No model with id {model_id!r}.", code="model_not_found") from None


def model_server(model: AIModel) -> dict | None:
    instance = getattr(model, "instance", None)
    if instance is None or instance.state not in {ServeState.STARTING, ServeState.SERVING} or not instance.port:
        return None
    return {
        "port": instance.port,
        "url": instance.url,
        "contextSize": instance.context_size,
        "threads": instance.threads,
        "gpuLayers": instance.gpu_layers,
        "startedAt": instance.started_at.isoformat() if instance.started_at else None,
    }


def _transfer(model: AIModel) -> dict:
    return {
        "downloadProgress": round(model.download_progress, 2),
        "downloadRate": model.download_rate,
        "uploadRate": model.upload_rate,
        "downloadedBytes": model.downloaded_bytes,
        "uploadedBytes": model.uploaded_bytes,
        "peers": model.peers,
        "seeds": model.seeds,
    }


def model_copy(model: AIModel) -> dict:
    """The model's file on its node (SPEC §9); one node holds the one copy for now."""
    return {
        "node": model.node,
        "status": model.status,
        **_transfer(model),
        # The wish (`AIModel.seeding`) holds only for a model whose files are complete.
        "seeding": model.seeding and model.status in SEEDABLE,
        "error": "" if model.serve_failed else model.error,
    }


def model_instance(instance: ServedInstance) -> dict:
    """A llama-server of the model on one node: what it does now (`status`) and why it failed (`error`)."""
    return {
        "node": instance.node,
        "status": instance.state,
        "desired": instance.desired,
        "port": instance.port,
        "contextSize": instance.context_size,
        "threads": instance.threads,
        "gpuLayers": instance.gpu_layers,
        "startedAt": instance.started_at.isoformat() if instance.started_at else None,
        "restarts": instance.restarts,
        "error": instance.error,
    }


def model_to_dict(model: AIModel) -> dict:
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
        "seeding": model.seeding and model.status in SEEDABLE,
        "error": model.error,
        "server": model_server(model),
        "copies": [model_copy(model)] if model.node else [],
        "instances": [model_instance(model.instance)] if getattr(model, "instance", None) else [],
        "gguf": _public_gguf(model.gguf),
        "createdAt": model.created_at.isoformat(),
        "updatedAt": model.updated_at.isoformat(),
    }


def _public_gguf(meta: dict | None) -> dict | None:
    if not meta:
        return None
    keys = ("architecture", "parameters", "quantization", "contextLength", "name", "sizeLabel")
    return {key: meta.get(key) for key in keys}
