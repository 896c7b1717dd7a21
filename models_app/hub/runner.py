"""The download job of one model, run by a q2 worker: claim a slot, fetch every part, verify, make it ready.

The job works on the model's copy on this node. Progress is written at most twice a second; each
write also tells whether the copy still wants the bytes (a deleted row or `cancel_requested` stops
the transfer and removes the partial files).
"""
from __future__ import annotations

import logging
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from models_app import gguf_meta
from models_app.hub import client, locks
from models_app.models import AIModel, CopyStatus, ModelCopy, ModelFile
from models_app.services import files_remove, model_notify, model_on_ready
from models_app.states import FETCHING, copy_move
from torrents_app import creation
from torrents_app.services import swarm_fetch, swarm_release, swarm_running

log = logging.getLogger(__name__)
WRITE_EVERY = 0.5
DEFAULT_RETRY_DELAYS = (2.0, 8.0, 30.0)


class Cancelled(Exception):
    pass


class Failed(Exception):
    pass


def download_run(*, model_id: str) -> str:
    """Run the model's download to its end; returns what happened (kept as the q2 task's result)."""
    with locks.model_lock(model_id) as mine:
        if not mine:
            return "running elsewhere"
        copy, why = _claim(model_id)
        return _run(copy) if copy is not None else why


def _claim(model_id: str) -> tuple[ModelCopy | None, str]:
    with locks.node_lock():
        copy = ModelCopy.objects.select_related("model").filter(model_id=model_id, node=settings.NODE_NAME).first()
        if copy is None or copy.status not in FETCHING:
            return None, "nothing to download"
        if swarm_running(model_id=model_id):
            return None, "downloading from the swarm"
        others = ModelCopy.objects.filter(node=settings.NODE_NAME, model__source=copy.model.source,
                                          status__in=(CopyStatus.DOWNLOADING, CopyStatus.VERIFYING)).exclude(pk=copy.pk)
        if sum(1 for pk in others.values_list("model_id", flat=True) if locks.model_lock_held(pk)) \
                >= settings.DOWNLOAD_CONCURRENCY:
            return None, "waiting for a slot"
        if not copy_move(ModelCopy.objects.filter(pk=copy.pk), CopyStatus.DOWNLOADING, error=""):
            return None, "nothing to download"
    model_notify(copy.model)
    return copy, ""


def _run(copy: ModelCopy) -> str:
    model, folder = copy.model, Path(copy.path)
    if swarm_release(model_id=model.pk):
        # A swarm download of it failed: what it wrote is not verified, so HTTP starts afresh.
        for entry in model.files.all():
            (folder / entry.name).unlink(missing_ok=True)
    present = _present_bytes(copy)
    if not present:  # nothing on disk: nothing received yet, whatever an earlier try counted
        ModelCopy.objects.filter(pk=copy.pk).update(peer_bytes=0, web_seed_bytes=0, http_bytes=0)
    # Peers first (SPEC §8): a download already under way over HTTP carries on over HTTP.
    if not present and swarm_fetch(model_id=model.pk):
        return "from the swarm"
    # What the relay joined (SPEC §8) while this job waited on another portal's fetch came from peers.
    relayed = 0 if present else ModelCopy.objects.filter(pk=copy.pk).values_list("peer_bytes", flat=True).first() or 0
    try:
        try:
            return _fetch_all(copy, present=_present_bytes(copy), relayed=relayed)
        except Failed as exc:
            if not relayed or not _again(copy):
                raise
            # The relay's segments are only as good as the portal that cut them: the Hub's bytes decide.
            log.warning("%s: %s Fetching it from the Hub instead.", model.pk, exc)
            return _fetch_all(copy, present=0, relayed=0)
    except Cancelled:
        _discard(copy, folder)
        return "cancelled"
    except Failed as exc:
        _fail(copy, str(exc))
        return "failed"


def _fetch_all(copy: ModelCopy, *, present: int, relayed: int) -> str:
    """Every part over HTTP (after the `present` bytes, `relayed` of them from the relay), then the check."""
    tracker = Progress(copy, present, peer=relayed)
    for entry in copy.model.files.order_by("name"):
        _fetch(copy, entry, tracker)
    return _verify(copy, relayed=relayed)


def _present_bytes(copy: ModelCopy) -> int:
    total = 0
    for entry in copy.model.files.all():
        path = Path(copy.path) / entry.name
        partial = path.with_name(path.name + client.PARTIAL_SUFFIX)
        total += path.stat().st_size if path.exists() else partial.stat().st_size if partial.exists() else 0
    return total


def _fetch(copy: ModelCopy, entry: ModelFile, tracker: Progress) -> None:
    model = copy.model
    dest = Path(copy.path) / entry.name
    if dest.exists() and dest.stat().st_size == entry.size:
        return
    delays = tuple(getattr(settings, "HF_DOWNLOAD_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))
    piece = creation.piece_size_for(model.size)  # as `_check_digests` hashes it
    for attempt in range(len(delays) + 1):
        tracker.resync(_present_bytes(copy))
        try:
            hashes = client.hub_download(repo_id=model.repo_id, name=entry.name, commit=model.revision, dest=dest,
                                         progress=client.progress_class(tracker.add), piece_size=piece)
            if hashes is not None:  # hashed on the way in: the check reads nothing
                creation.file_hashes_known(dest, piece_size=piece, hashes=hashes)
            return
        except client.TransferError as exc:
            if exc.permanent or attempt == len(delays):
                kept = " The partial file is kept: ask for this model again to resume." if not exc.permanent else ""
                raise Failed(f"Downloading {entry.name} from the Hub failed after {attempt + 1} "
                             f"attempt(s): {exc}.{kept}") from None
            log.warning("download of %s/%s failed (%s); retrying in %ss", model.pk, entry.name, exc, delays[attempt])
            tracker.wait(delays[attempt])


def _again(copy: ModelCopy) -> bool:
    """Back to downloading, with nothing received: a file made by the relay failed its check."""
    fresh = dict(download_rate=0, downloaded_bytes=0, download_progress=0.0, peer_bytes=0, http_bytes=0, error="")
    rows = ModelCopy.objects.filter(pk=copy.pk, cancel_requested=False)
    return bool(copy_move(rows, CopyStatus.QUEUED, **fresh) and copy_move(rows, CopyStatus.DOWNLOADING))


class Progress:
    """Counts bytes; writes figures (and notices cancellation) at most every WRITE_EVERY seconds. Of the
    `done` bytes it starts with, `peer` came from the relay; the rest, and all it counts, over HTTP."""

    def __init__(self, copy: ModelCopy, done: int, *, peer: int = 0):
        self.copy, self.done, self.peer = copy, done, peer
        self.last_write, self.last_done, self.rate = 0.0, done, 0.0
        self.write(force=True)

    def add(self, n: int) -> None:
        self.done += n
        self.write()

    def resync(self, done: int) -> None:
        self.done = self.last_done = done

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(WRITE_EVERY, max(0.0, deadline - time.monotonic())))
            self.write(force=True)

    def write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        elapsed = now - self.last_write
        if not force and elapsed < WRITE_EVERY:
            return
        if self.last_write and elapsed > 0:
            self.rate = 0.5 * self.rate + 0.5 * (self.done - self.last_done) / elapsed
        self.last_write, self.last_done = now, self.done
        size = max(self.copy.model.size, 1)
        written = ModelCopy.objects.filter(pk=self.copy.pk, cancel_requested=False).update(
            downloaded_bytes=self.done, http_bytes=self.done - self.peer, download_progress=min(100.0, 100.0 * self.done / size),
            download_rate=int(self.rate), updated_at=timezone.now())
        if not written:
            raise Cancelled()
        model_notify(self.copy.model)


def _verify(copy: ModelCopy, *, relayed: int) -> str:
    """One read per file: sha256 and torrent pieces together, while the GGUF header is parsed beside it."""
    model = copy.model
    if not _move(copy, CopyStatus.VERIFYING, download_rate=0, download_progress=100.0, downloaded_bytes=model.size,
                 http_bytes=model.size - relayed):
        raise Cancelled()
    folder = Path(copy.path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        header = pool.submit(gguf_meta.read_metadata, folder / model.file_name)
        try:
            digests = _check_digests(model, folder)
            meta = _header(header)
        except Failed:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    for name, digest in digests.items():
        ModelFile.objects.filter(model=model, name=name).update(sha256=digest, verified=True, downloaded_bytes=F("size"))
    AIModel.objects.filter(pk=model.pk).update(sha256=digests[model.file_name], gguf=meta, updated_at=timezone.now())
    if not _move(copy, CopyStatus.READY):
        raise Cancelled()
    _on_ready(copy)
    return "ready"


def _check_digests(model: AIModel, folder: Path) -> dict[str, str]:
    piece = creation.piece_size_for(model.size)
    digests = {}
    for entry in model.files.order_by("name"):
        digests[entry.name] = creation.file_hashes(folder / entry.name, piece_size=piece).sha256
        if entry.sha256 and digests[entry.name] != entry.sha256:
            raise Failed(f"Checksum mismatch for {entry.name}: the Hub says sha256 {entry.sha256}, the downloaded "
                         f"file has {digests[entry.name]}. The file was deleted; ask again to download it anew.")
    return digests


def _header(future: Future) -> dict:
    try:
        return future.result()
    except gguf_meta.NotGGUF as exc:
        raise Failed(f"{exc}; the file was deleted.") from None


def _on_ready(copy: ModelCopy) -> None:
    copy.refresh_from_db()
    if not copy.seeding:
        return
    try:
        model_on_ready(model=copy.model, node=copy.node)
    except Exception as exc:  # the model is usable without its torrent; say why sharing is missing
        log.exception("torrent creation for %s failed", copy)
        ModelCopy.objects.filter(pk=copy.pk).update(
            error=f"The model is ready, but its torrent could not be created: {exc}", updated_at=timezone.now())
        model_notify(copy.model)


def _move(copy: ModelCopy, to: str, **fields) -> bool:
    done = copy_move(ModelCopy.objects.filter(pk=copy.pk, cancel_requested=False), to, **fields)
    if done:
        model_notify(copy.model)
    return bool(done)


def _fail(copy: ModelCopy, message: str) -> None:
    present = _present_bytes(copy)
    _move(copy, CopyStatus.ERROR, error=message, download_rate=0, downloaded_bytes=present,
          download_progress=100.0 * present / max(copy.model.size, 1))


def _discard(copy: ModelCopy, folder: Path) -> None:
    """A cancelled download: the copy goes (if it is still there; the model with it when it was the only one)
    and so do the partial files."""
    names = list(copy.model.files.values_list("name", flat=True))
    ModelCopy.objects.filter(pk=copy.pk).delete()
    if not ModelCopy.objects.filter(model_id=copy.model_id).exists():
        AIModel.objects.filter(pk=copy.model_id).delete()
    model_notify(copy.model)
    files_remove(folder, names)
