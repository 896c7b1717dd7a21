"""Writes of the torrent engine: the actual state it observes in libtorrent, recorded on its node's copies.

Every function takes the model and the node whose copy it writes (the engine's own).
"""
from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.db.models import F, QuerySet

from models_app.models import AIModel, CopyStatus, ModelCopy, ModelFile, Source
from models_app.services import files_remove, model_notify
from models_app.states import copy_move, copy_rows
from torrents_app.completion import Verdict, main_gguf
from torrents_app.models import Torrent
from torrents_app.session import TorrentStats

_FETCHING = (CopyStatus.QUEUED, CopyStatus.DOWNLOADING)
# The states of a `lookup` row, as the Hub download that waits on it reads them (torrents_app.services).
LOOKING, FOUND, MISSING, METADATA = "looking", "found", "no record", "metadata"
# Waiting for the record of a file that another portal is fetching from the Hub (torrents_app.claims).
AWAITING = "awaiting a fetcher"
# A copy from another node of this group (SPEC §9), or found after waiting for its fetcher: from peers
# only, the Hub's web seed only as a fallback (the peers have it all; the Hub served it once already).
GROUP_COPY, FOUND_LATE = "group copy", "found late"
PEERS_FIRST = (GROUP_COPY, FOUND_LATE)
# ... and with libtorrent's states the stats write over them, those of a row still without metadata.
WAITING = (LOOKING, AWAITING, FOUND, FOUND_LATE, MISSING, "downloading_metadata", "checking_resume_data")


def copy_removed(*, copy: ModelCopy) -> None:
    """A removed copy's files are deleted (its folder when the portal made it) and its row goes."""
    if copy.path:
        files_remove(Path(copy.path), list(copy.model.files.values_list("name", flat=True)) or [copy.model.file_name])
    ModelCopy.objects.filter(pk=copy.pk, status=CopyStatus.REMOVING).delete()
    model_notify(copy.model)


def torrent_rows(*, model_id: str, node: str) -> QuerySet[Torrent]:
    return Torrent.objects.filter(copy__model_id=model_id, copy__node=node)


def torrent_stats_write(*, stats: TorrentStats, node: str, web_seed_bytes: int | None = None) -> str | None:
    """Record transfer figures (of a download: with the bytes its web seeds sent, the rest came from peers);
    returns the copy's status (None when the copy is gone)."""
    copy = ModelCopy.objects.select_related("model").filter(model_id=stats.key, node=node).first()
    if copy is None:
        return None
    copy.peers, copy.seeds = stats.peers, stats.seeds
    copy.download_rate, copy.upload_rate = stats.download_rate, stats.upload_rate
    copy.uploaded_bytes = stats.uploaded
    if copy.model.source == Source.MAGNET or stats.downloaded > copy.downloaded_bytes:
        copy.downloaded_bytes = stats.downloaded  # a Hub file fetched from the swarm counts its torrent's bytes
    fields = ["peers", "seeds", "download_rate", "upload_rate", "uploaded_bytes", "downloaded_bytes", "updated_at"]
    if web_seed_bytes is not None:
        copy.web_seed_bytes = min(web_seed_bytes, stats.downloaded)
        copy.peer_bytes = stats.downloaded - copy.web_seed_bytes
        fields += ["peer_bytes", "web_seed_bytes"]
    if copy.status in _FETCHING and stats.has_metadata:
        copy.download_progress = min(stats.progress * 100, 99.99)
        fields += ["download_progress"]
        if copy_move(ModelCopy.objects.filter(pk=copy.pk), CopyStatus.DOWNLOADING):
            copy.status = CopyStatus.DOWNLOADING
    copy.save(update_fields=fields)
    torrent_rows(model_id=stats.key, node=node).update(state=stats.state, failed_bytes=stats.failed_bytes)
    model_notify(copy.model)
    return copy.status


def torrent_stats_mirror(*, stats: TorrentStats, model_ids: list[str], node: str) -> None:
    """Copies whose bytes another model's torrent (same info-hash) seeds report that torrent's figures."""
    for copy in ModelCopy.objects.filter(model_id__in=model_ids, node=node, seeding=True, status=CopyStatus.READY):
        copy.peers, copy.seeds = stats.peers, stats.seeds
        copy.download_rate, copy.upload_rate, copy.uploaded_bytes = 0, stats.upload_rate, stats.uploaded
        copy.save(update_fields=["peers", "seeds", "download_rate", "upload_rate", "uploaded_bytes", "updated_at"])
        model_notify(AIModel(pk=copy.model_id))


def torrent_idle(*, model_id: str, node: str) -> None:
    """A copy no longer in the session (paused, or handed its torrent over): no live figures."""
    copy_rows(model_id=model_id, node=node).update(download_rate=0, upload_rate=0, peers=0, seeds=0)
    model_notify(AIModel(pk=model_id))


def torrent_metadata_accept(*, model_id: str, node: str, files: list[tuple[str, int]], v1: str, v2: str) -> None:
    """The torrent's file list is known: record the files and what will be downloaded."""
    with transaction.atomic():
        model = AIModel.objects.select_for_update().filter(pk=model_id).first()
        if model is None:
            return
        main = main_gguf([name for name, _ in files]) or ""
        model.size = sum(size for _, size in files)
        model.file_name = main
        model.info_hash, model.info_hash_v2 = v1 or model.info_hash, v2 or model.info_hash_v2
        model.save(update_fields=["size", "file_name", "info_hash", "info_hash_v2", "updated_at"])
        copy_move(copy_rows(model_id=model_id, node=node), CopyStatus.DOWNLOADING)
        for name, size in files:
            # What a file's sha256 should be stays as known (a copy of a verified model knows every part's).
            expected = model.sha256 if name == main else ""
            ModelFile.objects.update_or_create(model=model, name=name, defaults={"size": size},
                                               create_defaults={"size": size, "sha256": expected})
            ModelFile.objects.filter(model=model, name=name, sha256="").update(sha256=expected)
        model.files.exclude(name__in=[name for name, _ in files]).delete()
        torrent_rows(model_id=model_id, node=node).update(info_hash_v1=model.info_hash,
                                                          info_hash_v2=model.info_hash_v2, state=METADATA)
        model_notify(model)


def torrent_file_store(*, model_id: str, node: str, torrent: bytes) -> None:
    torrent_rows(model_id=model_id, node=node).filter(torrent_file__isnull=True).update(torrent_file=torrent)


def torrent_verifying(*, model_id: str, node: str) -> None:
    copy_move(copy_rows(model_id=model_id, node=node).filter(status__in=_FETCHING), CopyStatus.VERIFYING,
              download_progress=100)
    model_notify(AIModel(pk=model_id))


def torrent_expected_hashes(*, model_id: str) -> dict[str, str]:
    return dict(ModelFile.objects.filter(model_id=model_id).exclude(sha256="").values_list("name", "sha256"))


def torrent_fail(*, model_id: str, node: str, code: str, message: str) -> None:
    """The copy goes to `error` with a sentence for a person; its torrent stays out of the session."""
    copy_move(copy_rows(model_id=model_id, node=node), CopyStatus.ERROR, error=message, download_rate=0,
              upload_rate=0, peers=0, seeds=0)
    torrent_rows(model_id=model_id, node=node).update(state="error", error=f"{code}: {message}")
    model_notify(AIModel(pk=model_id))


def torrent_verified(*, model_id: str, node: str, verdict: Verdict, magnet_uri: str, downloaded: int = 0,
                     web_seed_bytes: int = 0) -> bool:
    """Mark a finished download ready, with what it received (`downloaded` bytes, `web_seed_bytes` of them
    from web seeds); returns whether it should keep seeding."""
    with transaction.atomic():
        model = AIModel.objects.select_for_update().filter(pk=model_id).first()
        copy = copy_rows(model_id=model_id, node=node).first()
        if model is None or copy is None:
            return False
        model.file_name, model.sha256, model.gguf = verdict.main_file, verdict.hashes[verdict.main_file], verdict.gguf
        if magnet_uri and not model.copies.exclude(node=node).exists():
            model.magnet_uri = magnet_uri  # the only copy: its magnet names this node (the first copy's stays)
        model.save(update_fields=["file_name", "sha256", "gguf", "magnet_uri", "updated_at"])
        fields = {"error": "", "download_progress": 100}
        if downloaded:
            web = min(web_seed_bytes, downloaded)
            fields.update(downloaded_bytes=downloaded, web_seed_bytes=web, peer_bytes=downloaded - web)
        if not copy_move(copy_rows(model_id=model_id, node=node), CopyStatus.READY, **fields):
            return False
        for name, digest in verdict.hashes.items():
            ModelFile.objects.filter(model=model, name=name).update(sha256=digest, verified=True,
                                                                  downloaded_bytes=F("size"))
        desired = Torrent.Desired.SEED if copy.seeding else Torrent.Desired.PAUSE
        torrent_rows(model_id=model_id, node=node).update(desired=desired, state="seeding", error="")
        model_notify(model)
    return copy.seeding


def torrent_record_found(*, model_id: str, node: str, v1: str, v2: str) -> None:
    """The DHT names a torrent of the file: download it by magnet, from peers and the Hub's web seed at once."""
    waiting = torrent_rows(model_id=model_id, node=node).filter(desired=Torrent.Desired.LOOKUP,
                                                                state__in=(LOOKING, AWAITING))
    torrent = waiting.first()
    if torrent is None:
        return  # the download stopped waiting, or went on over HTTP
    state = FOUND_LATE if torrent.state == AWAITING else FOUND
    changed = waiting.update(info_hash_v1=v1, info_hash_v2=v2, desired=Torrent.Desired.DOWNLOAD, state=state,
                             magnet_source=swarm_magnet(torrent.magnet_source, v1=v1, v2=v2), error="")
    if changed:
        AIModel.objects.filter(pk=model_id).update(info_hash=v1, info_hash_v2=v2)


def swarm_magnet(template: str, *, v1: str, v2: str) -> str:
    """The waiting row's magnet (name, size, web seed, known peers) with the info-hashes put in front."""
    topics = [f"xt=urn:btih:{v1}"] if v1 else []
    topics += [f"xt=urn:btmh:1220{v2}"] if v2 else []
    rest = template.removeprefix("magnet:?")
    return "magnet:?" + "&".join(topics + ([rest] if rest else []))


def torrent_record_missing(*, model_id: str, node: str, reason: str) -> None:
    torrent_rows(model_id=model_id, node=node).filter(desired=Torrent.Desired.LOOKUP,
                                                      state__in=(LOOKING, AWAITING)).update(state=MISSING, error=reason)


def torrent_await(*, model_id: str, node: str, done: int, total: int) -> None:
    """Another portal fetches the file from the Hub (`done` of `total` bytes so far): this download waits for
    its record, and its copy says so."""
    note = fetch_note("another portal", fetch_percent(done, total))
    waiting = torrent_rows(model_id=model_id, node=node).filter(desired=Torrent.Desired.LOOKUP,
                                                                state__in=(LOOKING, AWAITING))
    if waiting.update(state=AWAITING, error=note):
        copy_rows(model_id=model_id, node=node).update(note=note)
        model_notify(AIModel(pk=model_id))


def fetch_note(fetcher: str, how_far: str) -> str:
    """A waiting copy's note: who fetches the file from the Hub for it (another portal, a node) and how far."""
    return f"Waiting for {fetcher}, which is downloading it from the Hub ({how_far})"


def fetch_percent(done: int, total: int) -> str:
    return f"{100 * done / total:.0f}%" if total else f"{done} bytes"
