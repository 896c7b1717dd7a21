"""Hugging Face downloads: register a queued model for a Hub file, and keep each node's download queue moving.

A download job starts in one place only, `downloads_reconcile`, run on the q2 cluster of the node that
holds the copy: a new or resumed copy wakes it (`downloads_wake`), a finished job runs it for the next in
line, and so does a worker that starts (after a crash or a restart) and, once a minute, the node's schedule
(for a wake lost while the broker was down). It requeues what a dead worker left and fills the free slots.
"""
from __future__ import annotations

import logging
from pathlib import PurePosixPath

from django.conf import settings
from django.db import IntegrityError, transaction
from django_q.models import Schedule
from django_q.tasks import async_task

from aiportal.env import node_queue
from aiportal.errors import ApplicationError, Conflict
from models_app import placement
from models_app.hub import choice, client, locks
from models_app.hub.refs import hub_ref_parse
from models_app.models import AIModel, CopyStatus, ModelCopy, ModelFile, Source
from models_app.selectors import model_list
from models_app.services import model_id_base, model_notify, model_unique_id
from models_app.states import copy_create, copy_move, copy_rows
from torrents_app.services import swarm_running
from torrents_app.sharing import copy_start, seeders_of

log = logging.getLogger(__name__)
ACTIVE = (CopyStatus.DOWNLOADING, CopyStatus.VERIFYING)
TASK = "models_app.hub.tasks.download_task"
RECONCILE_TASK = "models_app.hub.tasks.downloads_reconcile_task"


def repo_gguf_files(*, url: str) -> list[dict]:
    """The GGUF files (quantizations) of the repo behind `url`, split parts grouped, largest first."""
    ref = hub_ref_parse(url, endpoint=settings.HF_ENDPOINT)
    repo = client.hub_repo(repo_id=ref.repo_id, revision=ref.revision)
    return [variant.as_dict() for variant in choice.variants(repo.files)]


def download_start(*, url: str, file_name: str | None = None, create_torrent: bool = True, node: str | None = None,
                   requested_by: str = "") -> AIModel:
    """Queue the download of a Hub GGUF model on a node. A model of the same file gets a copy on that node
    (from the group's nodes that hold it when they share it), or is returned as it is there, resumed if it
    failed."""
    ref = hub_ref_parse(url, endpoint=settings.HF_ENDPOINT, file_name=file_name)
    repo = client.hub_repo(repo_id=ref.repo_id, revision=ref.revision)
    found = choice.variants(repo.files)
    if not found:
        raise _no_gguf(repo)
    room = placement.download_place(node=node, size=0)
    variant = choice.variant_pick(found, file_name=ref.file_name, quant=ref.quant, all_files=repo.files,
                                  free_disk=room.disk_free)
    existing = _existing(repo.repo_id, variant.main)
    if existing is not None and existing.copy_on(room.node) is not None:
        return _again(existing, room.node)
    if repo.gated and not settings.HF_TOKEN:
        raise ApplicationError(client.gated_message(repo.repo_id), code="gated_repo", status=403)
    client.hub_check_access(repo_id=repo.repo_id, name=variant.main, commit=repo.commit)
    place = placement.download_place(node=room.node, size=variant.size)
    try:
        if existing is not None:
            return _add_copy(existing, place, seeding=create_torrent)
        return _create(repo, variant, place, create_torrent=create_torrent, requested_by=requested_by)
    except IntegrityError:  # the same file asked twice at the same moment: the other request won
        return _again(_existing(repo.repo_id, variant.main) or _busy(), place.node)


def _existing(repo_id: str, main: str) -> AIModel | None:
    return model_list().filter(source=Source.HUGGINGFACE, repo_id=repo_id, file_name=main).first()


def _busy() -> AIModel:
    raise Conflict("Another download of this repository is being registered right now; try again.", code="busy")


def _no_gguf(repo: client.HubRepo) -> ApplicationError:
    name = repo.repo_id.split("/")[-1]
    suggestions = client.hub_search_gguf(query=name)
    hint = f" GGUF repos of this model on the Hub: {', '.join(suggestions)}." if suggestions else \
        " No GGUF conversion of it was found with the Hub's search."
    return ApplicationError(
        f"{repo.repo_id} holds no GGUF file (only {_kinds(repo)}), and llama-server can only load GGUF.{hint}",
        code="no_gguf", status=422, extra={"suggestions": suggestions},
    )


def _kinds(repo: client.HubRepo) -> str:
    kinds = sorted({PurePosixPath(f.name).suffix.lstrip(".") or f.name for f in repo.files
                    if f.name not in {".gitattributes", "README.md"}})
    return ", ".join(kinds[:6]) or "no model files"


def _again(model: AIModel, node: str) -> AIModel:
    """The same file asked again on a node: a failed download is resumed, a running or finished one returned."""
    if copy_move(copy_rows(model_id=model.pk, node=node).filter(status=CopyStatus.ERROR), CopyStatus.QUEUED, error=""):
        model_notify(model)
    transaction.on_commit(lambda: downloads_wake(node=node))
    return model_list().get(pk=model.pk)


def _add_copy(model: AIModel, place: placement.Place, *, seeding: bool) -> AIModel:
    """The model's file, asked for on one more node: a copy over BitTorrent from the group's nodes that seed
    it, as `POST …/copies` makes (the Hub only if they send nothing); else the Hub download job there."""
    if seeders_of(model=model, exclude=place.node):
        copy_start(model_id=model.pk, node=place.node)
        if not seeding:
            ModelCopy.objects.filter(model=model, node=place.node).update(seeding=False)
        return model_list().get(pk=model.pk)
    with transaction.atomic():
        copy_create(model=model, node=place.node, path=place.folder(model.pk), seeding=seeding)
        model_notify(model)
        transaction.on_commit(lambda: downloads_wake(node=place.node))
    return model_list().get(pk=model.pk)


def _model_id(repo_id: str, variant: choice.Variant) -> str:
    base = model_id_base(repo_id.replace("/", "_"))
    if not AIModel.objects.filter(pk=base).exists():
        return base
    stem = PurePosixPath(choice.SPLIT.sub("", variant.main)).name.removesuffix(".gguf")
    return model_unique_id(base=f"{base}_{variant.quantization or stem}")


def _create(repo: client.HubRepo, variant: choice.Variant, place: placement.Place, *, create_torrent: bool,
            requested_by: str) -> AIModel:
    with transaction.atomic():
        model_id = _model_id(repo.repo_id, variant)
        main = variant.parts[0]
        model = AIModel.objects.create(
            id=model_id, name=PurePosixPath(variant.main).name.removesuffix(".gguf"), source=Source.HUGGINGFACE,
            repo_id=repo.repo_id, revision=repo.commit, file_name=variant.main, size=variant.size, sha256=main.sha256,
            requested_by=requested_by[:200],
        )
        copy_create(model=model, node=place.node, path=place.folder(model_id), seeding=create_torrent)
        ModelFile.objects.bulk_create([
            ModelFile(model=model, name=part.name, size=part.size, sha256=part.sha256,
                      url=client.hub_file_url(repo_id=repo.repo_id, name=part.name, commit=repo.commit))
            for part in variant.parts
        ])
        model_notify(model)
        transaction.on_commit(lambda: downloads_wake(node=place.node))
    return model_list().get(pk=model_id)


def _download_enqueue(*, model_id: str) -> None:
    """Queue the download job on this node's q2 cluster (only this node can write to its model folder)."""
    try:
        task_id = async_task(TASK, model_id, task_name=f"hf-download-{model_id}"[:100], group="hf-download",
                             cluster=node_queue(settings.NODE_NAME))
    except Exception as exc:  # a broker that is down must not lose the model: the schedule retries it
        log.warning("could not enqueue the download of %s: %s", model_id, exc)
        return
    copy_rows(model_id=model_id, node=settings.NODE_NAME).update(task_id=str(task_id)[:64])


def downloads_reconcile() -> int:
    """Requeue this node's downloads whose worker died, then enqueue queued ones while slots are free; returns
    how many."""
    mine = ModelCopy.objects.filter(model__source=Source.HUGGINGFACE, node=settings.NODE_NAME)
    for copy in mine.filter(status__in=ACTIVE):
        if not locks.model_lock_held(copy.model_id) and not swarm_running(model_id=copy.model_id):
            if copy_move(mine.filter(pk=copy.pk, status=copy.status), CopyStatus.QUEUED, download_rate=0):
                model_notify(AIModel(pk=copy.model_id))
    active = sum(1 for pk in mine.filter(status__in=ACTIVE).values_list("model_id", flat=True)
                 if locks.model_lock_held(pk))
    free = max(0, settings.DOWNLOAD_CONCURRENCY - active)
    queued = mine.filter(status=CopyStatus.QUEUED)
    started = 0
    for model_id in queued.order_by("created_at").values_list("model_id", flat=True)[:free]:
        _download_enqueue(model_id=model_id)
        started += 1
    return started


def downloads_wake(*, node: str) -> None:
    """Ask that node's q2 cluster to move its download queue (it alone knows which of its jobs still run)."""
    try:
        async_task(RECONCILE_TASK, task_name=f"hf-reconcile-{node}"[:100], group="hf-download",
                   cluster=node_queue(node))
    except Exception as exc:  # the node's schedule retries within a minute
        log.warning("could not ask node %s to resume its downloads: %s", node, exc)


def downloads_schedule_ensure() -> None:
    """This node's q2 schedule that moves its download queue every minute (made when its first worker starts)."""
    try:
        Schedule.objects.get_or_create(name=f"hf-downloads-reconcile-{settings.NODE_NAME}"[:100], defaults={
            "func": RECONCILE_TASK, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
            "cluster": node_queue(settings.NODE_NAME),
        })
    except Exception as exc:  # best effort: downloads still run, only restarts wait for a new request
        log.warning("could not create the download schedule: %s", exc)
