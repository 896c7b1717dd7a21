"""Write side of AI models: the only code that creates, changes and removes them."""
from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from aiportal import events
from aiportal.errors import ApplicationError, Conflict
from models_app import gguf_meta
from models_app.hashing import sha256_file
from models_app.models import AIModel, CopyStatus, FileRemoval, ModelCopy, ModelFile, Source, TransferSample
from models_app.selectors import model_get, model_list, model_to_dict
from models_app.signals import model_ready
from models_app.states import copy_create

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
PARTIAL_SUFFIX = ".incomplete"  # a file still being downloaded, beside where it will be


def model_id_base(text: str) -> str:
    base = _UNSAFE.sub("_", text).strip("._-")[:180]
    return base or "model"


def model_unique_id(*, base: str) -> str:
    candidate, n = model_id_base(base), 2
    while AIModel.objects.filter(pk=candidate).exists():
        candidate, n = f"{model_id_base(base)}-{n}", n + 1
    return candidate


def model_notify(model: AIModel) -> None:
    """Tell open pages about the model once the change is committed."""
    model_id = model.pk
    transaction.on_commit(lambda: _push(model_id))


def _push(model_id: str) -> None:
    model = model_list().filter(pk=model_id).first()
    if model is None:
        events.push_model_removed(model_id)
    else:
        events.push_model(model_to_dict(model))


def model_import_local(*, path: Path, model_id: str | None = None, copy: bool = False) -> AIModel:
    """Register a GGUF file on this node as a ready model (source `local`)."""
    path = _readable_gguf(Path(path))
    if model_id is not None:
        model_id = model_id_base(model_id)
        existing = AIModel.objects.filter(pk=model_id).first()
        if existing is not None:
            raise Conflict(f"A model with id {model_id!r} exists already.", code="model_exists")
    try:
        meta = gguf_meta.read_metadata(path)
    except gguf_meta.NotGGUF as exc:
        raise ApplicationError(str(exc), code="not_gguf", status=422) from None
    digest = sha256_file(path)
    if model_id is None:
        same = AIModel.objects.filter(sha256=digest, copies__node=settings.NODE_NAME, source=Source.LOCAL).first()
        if same is not None:
            return same
    folder = path.parent
    if copy:
        folder = settings.AI_MODEL_DIR / (model_id or model_id_base(path.stem))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, folder / path.name)
    with transaction.atomic():
        model = AIModel.objects.create(
            id=model_id or model_unique_id(base=path.stem),
            name=path.stem,
            source=Source.LOCAL,
            file_name=path.name,
            size=path.stat().st_size,
            sha256=digest,
            gguf=meta,
        )
        copy_create(model=model, node=settings.NODE_NAME, path=str(folder), status=CopyStatus.READY,
                    download_progress=100)
        ModelFile.objects.create(model=model, name=path.name, size=model.size, sha256=digest,
                                 downloaded_bytes=model.size, verified=True)
        model_notify(model)
    model_on_ready(model=model, node=settings.NODE_NAME)
    return model


def _readable_gguf(path: Path) -> Path:
    try:
        path = path.expanduser().resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise ApplicationError(f"{path}: no such file.", code="file_not_found", status=404) from None
    if not path.is_file():
        raise ApplicationError(f"{path} is not a regular file.", code="not_a_file")
    try:
        ok = gguf_meta.is_gguf(path)
    except PermissionError:
        raise ApplicationError(f"{path}: permission denied.", code="unreadable", status=403) from None
    if not ok:
        raise ApplicationError(f"{path.name} is not a GGUF model file.", code="not_gguf", status=422)
    return path


def model_on_ready(*, model: AIModel, node: str) -> None:
    """A copy's files are complete and verified: tell the apps built on models (torrents_app shares it)."""
    model_ready.send(sender=AIModel, model_id=model.pk, node=node)


def model_delete(*, model_id: str, delete_files: bool = False) -> None:
    """Remove the model with every copy (and their files when asked: this node's at once, another node's by
    its daemon); the node daemons stop serving and seeding it."""
    model = model_get(model_id=model_id)
    here = model.copy_on(settings.NODE_NAME)
    folder = Path(here.path) if here is not None and here.path else None
    names = list(model.files.values_list("name", flat=True)) or [model.file_name]
    with transaction.atomic():
        if delete_files:
            FileRemoval.objects.bulk_create([
                FileRemoval(node=copy.node, folder=copy.path, names=names)
                for copy in model.copy_list() if copy.node != settings.NODE_NAME and copy.path])
        model.delete()
        transaction.on_commit(lambda: _push(model_id))
        if delete_files and folder is not None:
            transaction.on_commit(lambda: files_remove(folder, names))


def file_removals_run(*, node: str) -> int:
    """Delete the files other machines asked this node to delete (see FileRemoval); returns how many sets."""
    done = 0
    for removal in FileRemoval.objects.filter(node=node):
        files_remove(Path(removal.folder), list(removal.names))
        removal.delete()
        done += 1
    return done


def files_remove(folder: Path, names: list[str]) -> None:
    """Remove a copy's files: its folder when the portal made it, else only the files themselves."""
    root = settings.AI_MODEL_DIR.resolve()
    folder = folder.resolve()
    if folder.is_relative_to(root) and folder != root:
        shutil.rmtree(folder, ignore_errors=True)
        return
    # A model imported in place: remove only its own files, never the folder around them.
    for name in names:
        target = (folder / name).resolve()
        if target.is_relative_to(folder):
            target.unlink(missing_ok=True)


TRANSFER_HISTORY = timedelta(hours=1)


def transfer_samples_record(*, node: str, now: datetime | None = None) -> int:
    """One sample of every copy on `node` that is moving bytes or has peers; older than an hour go."""
    now = now or timezone.now()
    moving = ModelCopy.objects.filter(node=node).filter(Q(download_rate__gt=0) | Q(upload_rate__gt=0) | Q(peers__gt=0))
    samples = [TransferSample(model_id=pk, node=node, at=now, download_rate=down, upload_rate=up, peers=peers)
               for pk, down, up, peers in moving.values_list("model_id", "download_rate", "upload_rate", "peers")]
    with transaction.atomic():
        TransferSample.objects.bulk_create(samples)
        TransferSample.objects.filter(node=node, at__lt=now - TRANSFER_HISTORY).delete()
    return len(samples)
