"""Hub download throughput: the portal's download path vs a plain `hf_hub_download`, same file, same fake Hub.

Prints MiB/s of each (median of a few alternating rounds), their ratio (target >= 0.95), and the
time from the last byte to `ready` (sha256 verification, GGUF header, torrent creation) as a
fraction of the download time, with how many times post-processing read the file.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="aiportal-bench-download-"))
os.environ.update({
    "DJANGO_SETTINGS_MODULE": "aiportal.settings", "DATABASE_URL": f"sqlite:///{WORK}/db.sqlite3",
    "AI_MODEL_DIR": str(WORK / "models"), "AI_TORRENT_DIR": str(WORK / "torrents"),
    "AIPORTAL_RUN_DIR": str(WORK / "run"), "AIPORTAL_CHANNEL_LAYER": "memory", "LOG_LEVEL": "WARNING",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
})
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from huggingface_hub import hf_hub_download  # noqa: E402

from models_app.demo import DEMO_WHEEL, demo_extract  # noqa: E402
from models_app.hub.services import download_start  # noqa: E402
from models_app.hub.tasks import download_task  # noqa: E402
from models_app.models import AIModel, ModelCopy  # noqa: E402
from tests.fakes.fake_hub import FakeHub  # noqa: E402

REPO = "bench-org/SmolLM2-GGUF"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MIB = 1024 * 1024
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def plain(hub: FakeHub, name: str, commit: str) -> float:
    target = Path(tempfile.mkdtemp(dir=WORK))
    began = time.perf_counter()
    hf_hub_download(REPO, name, revision=commit, local_dir=target, endpoint=hub.url)
    return time.perf_counter() - began


def portal(hub: FakeHub, round_no: int) -> tuple[float, float, float]:
    """(download seconds, post-processing seconds, file reads during post-processing in file sizes)."""
    settings.AI_MODEL_DIR = WORK / f"models-{round_no}"
    AIModel.objects.all().delete()
    model = download_start(url=f"{hub.url}/{REPO}")
    marks: dict[str, float] = {}
    watcher = threading.Thread(target=_watch, args=(model.pk, marks), daemon=True)
    watcher.start()
    began = time.perf_counter()
    outcome = download_task(model.pk)
    marks["ready"], marks["rchar_ready"] = time.perf_counter(), rchar()
    watcher.join()
    if outcome != "ready":
        raise SystemExit(f"portal download ended {outcome}: {AIModel.objects.get(pk=model.pk).error}")
    reads = (marks["rchar_ready"] - marks["rchar_verifying"]) / model.size
    return marks["verifying"] - began, marks["ready"] - marks["verifying"], reads


def _watch(model_id: str, marks: dict) -> None:
    from django.db import connection

    while "verifying" not in marks:
        if ModelCopy.objects.filter(model_id=model_id, status="verifying").exists():
            marks["verifying"], marks["rchar_verifying"] = time.perf_counter(), rchar()
        time.sleep(0.002)
    connection.close()


def main() -> None:
    call_command("migrate", verbosity=0)
    demo = demo_extract(wheel=CACHE / "wheels" / DEMO_WHEEL, dest_dir=CACHE / "demo")
    hub = FakeHub().start()
    commit = hub.add_repo(REPO, {demo.name: demo})
    settings.HF_ENDPOINT = hub.url
    size = demo.stat().st_size
    plain(hub, demo.name, commit)  # warm the page cache and the connection pools
    base, mine, post, reads = [], [], [], []
    for n in range(ROUNDS):
        base.append(size / MIB / plain(hub, demo.name, commit))
        seconds, after, read = portal(hub, n)
        mine.append(size / MIB / seconds)
        post.append(after / seconds)
        reads.append(read)
    hub.stop()
    header, hashing = breakdown(demo)
    b, m = statistics.median(base), statistics.median(mine)
    print(f"file: {demo.name}, {size / MIB:.1f} MiB, {ROUNDS} rounds, fake Hub on 127.0.0.1 -> CDN 127.0.0.2")
    print(f"plain hf_hub_download: {b:8.1f} MiB/s")
    print(f"portal download path:  {m:8.1f} MiB/s")
    print(f"ratio portal/plain:    {m / b:8.3f}   (target >= 0.95)")
    print(f"post-processing (last byte -> ready): {statistics.median(post):.3f} x download time; "
          f"read the file {statistics.median(reads):.2f} times")
    print(f"  of which: GGUF header parse {header:.2f}s (in parallel with) one-pass sha256+torrent hashing "
          f"{hashing:.2f}s; download took {size / MIB / m:.2f}s")


def breakdown(demo: Path) -> tuple[float, float]:
    """The two parts of post-processing, timed alone on a fresh copy (no cache)."""
    from models_app import gguf_meta
    from torrents_app import creation

    copy = WORK / "copy" / demo.name
    copy.parent.mkdir()
    copy.write_bytes(demo.read_bytes())
    began = time.perf_counter()
    gguf_meta.read_metadata(copy)
    header = time.perf_counter() - began
    began = time.perf_counter()
    creation.file_hashes(copy, piece_size=creation.piece_size_for(copy.stat().st_size))
    creation.torrent_create(content=copy)
    return header, time.perf_counter() - began


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil

        shutil.rmtree(WORK, ignore_errors=True)
