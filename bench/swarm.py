#!/usr/bin/env python
"""How a swarm of portals spreads the load of one Hub file (SPEC §8), against plain Hub downloads.

N independent portal nodes (each its own process, database, model folder and libtorrent session, every
one naming the others in P2P_DHT_BOOTSTRAP, uploads capped at u) download the same Hub file by URL
from the fake Hub, whose uplink is capped at U in total. Three scenarios, in one run:

- "HTTP only": P2P_SWARM_WAIT=0, the baseline: every node downloads the whole file from the Hub.
- "P2P, at once": all N start together with the swarm on; nobody has the file yet.
- "P2P, one had it": one portal downloaded it earlier and seeds it; then the N start together.

Printed per scenario: Hub bytes served / file size (target <= 1.3 with P2P; N without), the last
node's finish / T_min with T_min = max(F/U, N*F/(U + N*u)) (target <= 1.3), and each node's bytes
from peers, from the Hub's web seed and over HTTP.

    .venv/bin/python bench/swarm.py [--nodes 4] [--size-mib 256] [--hub-mibps 20] [--node-mibps 20]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
REPO = "bench/Swarm-GGUF"


def _free_port() -> int:
    with socket.socket(type=socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node(base: str, name: str, port: int, others: list[int], hub_url: str, wait: float, upload: int, go, done,
          stop) -> None:
    """One portal's node daemon (this process's main thread, as runnode) and its download job (a thread of its
    own, as a q2 worker beside the daemon)."""
    base = Path(base)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "aiportal.settings", "DATABASE_URL": f"sqlite:///{base / 'db.sqlite3'}",
        "AIPORTAL_CHANNEL_LAYER": "memory", "AIPORTAL_RUN_DIR": str(base / "run"),
        "AI_MODEL_DIR": str(base / "models"), "AI_TORRENT_DIR": str(base / "torrents"), "NODE_NAME": name,
        "HF_ENDPOINT": hub_url, "P2P_SWARM_WAIT": str(wait), "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    })
    # The bench runs each download job itself (below): the queued copy stays in this node's own database.
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from aiportal.nodes import machine_facts, node_heartbeat
    from models_app.hub import runner
    from models_app.hub.services import download_start
    from models_app.models import AIModel
    from torrents_app.engine import TorrentEngine
    from torrents_app.session import SessionConfig

    config = SessionConfig(listen=f"127.0.0.1:{port}", dht=True, lsd=False, upload_limit=upload,
                           dht_bootstrap=",".join(f"127.0.0.1:{p}" for p in others))
    engine = TorrentEngine(node_name=name, config=config)
    engine.start()

    beat = [0.0]

    def step(seconds: float = 0.05) -> None:
        engine.step()
        if time.monotonic() > beat[0]:  # the heartbeat runnode writes: placement wants an online node
            beat[0] = time.monotonic() + 5
            node_heartbeat(name=name, address="127.0.0.1",
                           facts={**machine_facts(base / "models"), "p2p_port": engine.listen_port()})
        time.sleep(seconds)

    try:
        while not go.is_set():
            step()
        started = time.monotonic()
        model = download_start(url=f"{hub_url}/{REPO}")
        job = threading.Thread(target=_job, args=(runner, model.pk), daemon=True)
        job.start()
        while AIModel.objects.get(pk=model.pk).status not in {"ready", "error"}:
            step(0.02)
        job.join(timeout=60)
        model = AIModel.objects.get(pk=model.pk)
        done.put((name, time.monotonic() - started, model.status, model.error, model.peer_bytes, model.web_seed_bytes,
                  model.http_bytes))
        while not stop.is_set():
            step()
    finally:
        engine.stop()


def _job(runner, model_id: str) -> None:
    from django.db import connection

    try:
        runner.download_run(model_id=model_id)
    finally:
        connection.close()


def _scenario(label: str, *, tmp: Path, hub, n: int, size: int, wait: float, upload: int, seeded_first: bool) -> dict:
    spawn = multiprocessing.get_context("spawn")
    count = n + (1 if seeded_first else 0)
    ports = [_free_port() for _ in range(count)]
    stop, done = spawn.Event(), spawn.Queue()
    gos = [spawn.Event() for _ in range(count)]
    procs = []
    for i in range(count):
        base = tmp / label.replace(" ", "-").replace(",", "") / f"node{i}"
        base.mkdir(parents=True)
        procs.append(spawn.Process(target=_node, args=(str(base), f"node{i}", ports[i], ports[:i] + ports[i + 1:],
                                                       hub.url, wait, upload, gos[i], done, stop)))
        procs[-1].start()
    try:
        time.sleep(8)  # every node up, its DHT routing table filled
        first = None
        if seeded_first:
            gos[0].set()
            first = done.get(timeout=1800)
            time.sleep(6)  # its sha256 record published and stored
        hub.reset_counters()
        for go in gos[1 if seeded_first else 0:]:
            go.set()
        results = [done.get(timeout=1800) for _ in range(n)]
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    failed = [r for r in results if r[2] != "ready"]
    if failed:
        raise SystemExit(f"{label}: {failed[0][0]} ended {failed[0][2]}: {failed[0][3]}")
    return {"label": label, "hub": hub.bytes_served, "results": sorted(results), "first": first}


def _hub_alone(hub, path: Path) -> float:
    """Bytes per second of one plain download of the file from the fake Hub: what its cap U gives one client."""
    import hashlib

    import httpx

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    got, began = 0, time.monotonic()
    with httpx.stream("GET", f"{hub.cdn_url}/lfs/{digest}", timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(MIB):
            got += len(chunk)
    return got / (time.monotonic() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--hub-mibps", type=float, default=20.0, help="the Hub's total upload U")
    parser.add_argument("--node-mibps", type=float, default=20.0, help="each node's upload u")
    parser.add_argument("--only", choices=["http", "at-once", "one-had-it"], action="append",
                        help="run only these scenarios (default: all three)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.fakes.fake_hub import FakeHub
    from tests.torrents_app.ggufgen import make_gguf

    tmp = Path(tempfile.mkdtemp(prefix="aiportal-swarm-"))
    hub = FakeHub().start()
    try:
        path = make_gguf(tmp / "swarm.Q4_0.gguf", args.size_mib * MIB, name="Swarm")
        hub.add_repo(REPO, {path.name: path})
        hub.total_bps = int(args.hub_mibps * MIB)
        size, n = path.stat().st_size, args.nodes
        u, big_u = args.node_mibps * MIB, args.hub_mibps * MIB
        t_min = max(size / big_u, n * size / (big_u + n * u))
        print(f"{n} nodes, {size / MIB:.0f} MiB file, Hub uplink U = {args.hub_mibps:g} MiB/s, node uplink "
              f"u = {args.node_mibps:g} MiB/s, T_min = {t_min:.1f} s; {os.cpu_count()} CPUs shared by all")
        print(f"the fake Hub alone, one plain GET of the file: {_hub_alone(hub, path) / MIB:.1f} MiB/s "
              f"(U = {args.hub_mibps:g})")
        scenarios = {"http": ("HTTP only", 0, False), "at-once": ("P2P, at once", 6, False),
                     "one-had-it": ("P2P, one had it", 6, True)}
        runs = [_scenario(label, tmp=tmp, hub=hub, n=n, size=size, wait=wait, upload=int(u), seeded_first=first)
                for key, (label, wait, first) in scenarios.items() if not args.only or key in args.only]
    finally:
        hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'scenario':<17} {'Hub bytes / F':>13} {'last / T_min':>12}   per node: s, MiB from peers / web seed / HTTP")
    for run in runs:
        last = max(r[1] for r in run["results"])
        nodes = "  ".join(f"{r[1]:.0f}s {r[4] / MIB:.0f}/{r[5] / MIB:.0f}/{r[6] / MIB:.0f}" for r in run["results"])
        print(f"{run['label']:<17} {run['hub'] / size:13.2f} {last / t_min:12.2f}   {nodes}")
    print("Targets with P2P: Hub bytes / F <= 1.3 and last / T_min <= 1.3 (HTTP only: N and about N*F/U / T_min).")
    print("'one had it': the seeding portal's own earlier download is not counted; the N others are.")


if __name__ == "__main__":
    main()
