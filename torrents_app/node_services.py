"""Writes of the torrent engine: the actual state it observes in libtorrent, recorded on the models."""
from __future__ import annotations

from django.db import transaction
from django.db.models import F

from models_app.models import AIModel, ModelFile, Source, Status
from models_app.services import model_notify
from torrents_app.completion import Verdict, main_gguf
from torrents_app.models import Torrent
from torrents_app.session import TorrentStats

_FETCHING = {Status.QUEUED, Status.DOWNLOADING}
# The states of a `lookup` row, as the Hub download that waits on it reads them (torrents_app.services).
LOOKING, FOUND, MISSING, METADATA = "looking", "found", "no record", "metadata"
# ... and with libtorrent's states the stats write over them, those of a row still without metadata.
WAITING = (LOOKING, FOUND, MISSING, "downloading_metadata", "checking_resume_data")
_SEEDABLE = {Status.READY, Status.STARTING, Status.SERVING, Status.STOPPING}


def torrent_stats_write(*, stats: TorrentStats, web_seed_bytes: int | None = None) -> str | None:
    """Record transfer figures (of a download: with the bytes its web seeds sent, the rest came from peers);
    returns the model's status (None when the model is gone)."""
    model = AIModel.objects.filter(pk=stats.key).first()
    if model is None:
        return None
    model.peers, model.seeds = stats.peers, stats.seeds
    model.download_rate, model.upload_rate = stats.download_rate, stats.upload_rate
    model.uploaded_bytes = stats.uploaded
    if model.source == Source.MAGNET or stats.downloaded > model.downloaded_bytes:
        model.downloaded_bytes = stats.downloaded  # a Hub file fetched from the swarm counts its torrent's bytes
    fields = ["peers", "seeds", "download_rate", "upload_rate", "uploaded_bytes", "downloaded_bytes", "updated_at"]
    if web_seed_bytes is not None:
        model.web_seed_bytes = min(web_seed_bytes, stats.downloaded)
        model.peer_bytes = stats.downloaded - model.web_seed_bytes
        fields += ["peer_bytes", "web_seed_bytes"]
    if model.status in _FETCHING and stats.has_metadata:
        # Only a download's own status moves here; a served model's status belongs to the llama engine.
        model.status = Status.DOWNLOADING
        model.download_progress = min(stats.progress * 100, 99.99)
        fields += ["status", "download_progress"]
    model.save(update_fields=fields)
    Torrent.objects.filter(pk=stats.key).update(state=stats.state, failed_bytes=stats.failed_bytes)
    model_notify(model)
    return model.status


def torrent_stats_mirror(*, stats: TorrentStats, model_ids: list[str]) -> None:
    """Models whose bytes another model's torrent (same info-hash) seeds report that torrent's figures."""
    for model in AIModel.objects.filter(pk__in=model_ids, seeding=True, status__in=_SEEDABLE):
        model.peers, model.seeds = stats.peers, stats.seeds
        model.download_rate, model.upload_rate, model.uploaded_bytes = 0, stats.upload_rate, stats.uploaded
        model.save(update_fields=["peers", "seeds", "download_rate", "upload_rate", "uploaded_bytes", "updated_at"])
        model_notify(model)


def torrent_idle(*, model_id: str) -> None:
    """A model no longer in the session (paused, or handed its torrent over): no live figures."""
    AIModel.objects.filter(pk=model_id).update(download_rate=0, upload_rate=0, peers=0, seeds=0)
    model_notify(AIModel(pk=model_id))


def torrent_metadata_accept(*, model_id: str, files: list[tuple[str, int]], v1: str, v2: str) -> None:
    """The torrent's file list is known: record the files and what will be downloaded."""
    with transaction.atomic():
        model = AIModel.objects.select_for_update().filter(pk=model_id).first()
        if model is None:
            return
        main = main_gguf([name for name, _ in files]) or ""
        model.size = sum(size for _, size in files)
        model.file_name = main
        model.status = Status.DOWNLOADING
        model.info_hash, model.info_hash_v2 = v1 or model.info_hash, v2 or model.info_hash_v2
        model.save(update_fields=["size", "file_name", "status", "info_hash", "info_hash_v2", "updated_at"])
        for name, size in files:
            expected = model.sha256 if name == main else ""
            ModelFile.objects.update_or_create(model=model, name=name, defaults={"size": size, "sha256": expected})
        model.files.exclude(name__in=[name for name, _ in files]).delete()
        Torrent.objects.filter(pk=model_id).update(info_hash_v1=model.info_hash, info_hash_v2=model.info_hash_v2,
                                                   state=METADATA)
        model_notify(model)


def torrent_file_store(*, model_id: str, torrent: bytes) -> None:
    Torrent.objects.filter(pk=model_id, torrent_file__isnull=True).update(torrent_file=torrent)


def torrent_verifying(*, model_id: str) -> None:
    AIModel.objects.filter(pk=model_id, status__in=_FETCHING).update(status=Status.VERIFYING, download_progress=100)
    model_notify(AIModel(pk=model_id))


def torrent_expected_hashes(*, model_id: str) -> dict[str, str]:
    return dict(ModelFile.objects.filter(model_id=model_id).exclude(sha256="").values_list("name", "sha256"))


def torrent_fail(*, model_id: str, code: str, message: str) -> None:
    """The model goes to `error` with a sentence for a person; its torrent stays out of the session."""
    AIModel.objects.filter(pk=model_id).update(status=Status.ERROR, error=message, download_rate=0, upload_rate=0,
                                               peers=0, seeds=0)
    Torrent.objects.filter(pk=model_id).update(state="error", error=f"{code}: {message}")
    model_notify(AIModel(pk=model_id))


def torrent_verified(*, model_id: str, verdict: Verdict, magnet_uri: str, downloaded: int = 0,
                     web_seed_bytes: int = 0) -> bool:
    """Mark a finished download ready, with what it received (`downloaded` bytes, `web_seed_bytes` of them
    from web seeds); returns whether it should keep seeding."""
    with transaction.atomic():
        model = AIModel.objects.select_for_update().filter(pk=model_id).first()
        if model is None:
            return False
        model.status, model.error, model.download_progress = Status.READY, "", 100
        model.file_name, model.sha256, model.gguf = verdict.main_file, verdict.hashes[verdict.main_file], verdict.gguf
        model.magnet_uri = magnet_uri or model.magnet_uri
        if downloaded:
            model.downloaded_bytes = downloaded
            model.web_seed_bytes = min(web_seed_bytes, downloaded)
            model.peer_bytes = downloaded - model.web_seed_bytes
        model.save()
        for name, digest in verdict.hashes.items():
            ModelFile.objects.filter(model=model, name=name).update(sha256=digest, verified=True,
                                                                  downloaded_bytes=F("size"))
        desired = Torrent.Desired.SEED if model.seeding else Torrent.Desired.PAUSE
        Torrent.objects.filter(pk=model_id).update(desired=desired, state="seeding", error="")
        model_notify(model)
    return model.seeding


def torrent_record_found(*, model_id: str, v1: str, v2: str) -> None:
    """The DHT names a torrent of the file: download it by magnet, from peers and the Hub's web seed at once."""
    torrent = Torrent.objects.filter(pk=model_id, desired=Torrent.Desired.LOOKUP, state=LOOKING).first()
    if torrent is None:
        return  # the download stopped waiting, or went on over HTTP
    changed = Torrent.objects.filter(pk=model_id, desired=Torrent.Desired.LOOKUP, state=LOOKING).update(
        info_hash_v1=v1, info_hash_v2=v2, magnet_source=swarm_magnet(torrent.magnet_source, v1=v1, v2=v2),
        desired=Torrent.Desired.DOWNLOAD, state=FOUND)
    if changed:
        AIModel.objects.filter(pk=model_id).update(info_hash=v1, info_hash_v2=v2)


def swarm_magnet(template: str, *, v1: str, v2: str) -> str:
    """The waiting row's magnet (name, size, web seed, known peers) with the info-hashes put in front."""
    topics = [f"xt=urn:btih:{v1}"] if v1 else []
    topics += [f"xt=urn:btmh:1220{v2}"] if v2 else []
    rest = template.removeprefix("magnet:?")
    return "magnet:?" + "&".join(topics + ([rest] if rest else []))


def torrent_record_missing(*, model_id: str, reason: str) -> None:
    Torrent.objects.filter(pk=model_id, desired=Torrent.Desired.LOOKUP, state=LOOKING).update(
        state=MISSING, error=reason)
