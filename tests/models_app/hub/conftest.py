from __future__ import annotations

import pytest

from models_app.hub import client
from tests.fakes.fake_hub import FakeHub, tiny_gguf

DEMO_REPO = "TheBloke/SmolLM2-135M-Instruct-GGUF"
DEMO_ID = "TheBloke_SmolLM2-135M-Instruct-GGUF"
SPLIT_REPO = "split-org/Tiny-Split-GGUF"
NO_GGUF_REPO = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
GATED_REPO = "meta-llama/Gated-Tiny-GGUF"
CORRUPT_REPO = "corrupt-org/Tiny-GGUF"
PRIVATE_REPO = "private-org/Private-Tiny-GGUF"
MEDIUM_REPO = "medium-org/Medium-GGUF"
MEDIUM_ID = "medium-org_Medium-GGUF"
MEDIUM_FILE = "medium.Q8_0.gguf"
SMALL_FILE = "smollm2-135m-instruct.Q2_K.gguf"


@pytest.fixture(scope="session")
def fake_hub(demo_gguf):
    hub = FakeHub().start()
    hub.add_repo(DEMO_REPO, {demo_gguf.name: demo_gguf, SMALL_FILE: tiny_gguf(name="small", padding=50_000),
                             "README.md": b"# SmolLM2 GGUF\n", "config.json": b"{}"})
    hub.add_repo(SPLIT_REPO, {f"Q4_K_M/tiny-q4_k_m-0000{n}-of-00003.gguf": tiny_gguf(name="split", padding=300_000 + n,
                                                                                       split=(n, 3))
                              for n in (1, 2, 3)} | {"README.md": b"split"})
    hub.add_repo(NO_GGUF_REPO, {"model.safetensors": bytes(range(256)) * 100, "config.json": b"{}"})
    hub.add_repo("unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF", {"q4.gguf": tiny_gguf(name="ds")})
    hub.add_repo("bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF", {"q8.gguf": tiny_gguf(name="ds8")})
    hub.add_repo(GATED_REPO, {"gated.Q4_0.gguf": tiny_gguf(name="gated")}, gated=True)
    hub.add_repo(MEDIUM_REPO, {MEDIUM_FILE: tiny_gguf(name="medium", padding=24 * 1024 * 1024)})
    hub.add_repo(PRIVATE_REPO, {"private.Q8_0.gguf": tiny_gguf(name="private")}, private=True)
    hub.add_repo(CORRUPT_REPO, {"tiny.Q4_0.gguf": tiny_gguf(name="corrupt", padding=40_000)},
                 wrong_sha256={"tiny.Q4_0.gguf"})
    yield hub
    hub.stop()


@pytest.fixture
def hub(fake_hub, settings):
    fake_hub.slow_bps = fake_hub.cut_after = fake_hub.outage_after = 0
    fake_hub.down = fake_hub.ignore_range = False
    fake_hub.reset_counters()
    settings.HF_ENDPOINT = fake_hub.url
    settings.HF_TOKEN = None
    settings.HF_DOWNLOAD_RETRY_DELAYS = (0.05, 0.05)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    client._info_cache.clear()
    return fake_hub
