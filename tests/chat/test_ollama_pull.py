"""`ollama pull` against the whole portal (daphne, q2 worker, node daemon) and a fake Hub: the portal's own
download, shown as Ollama's progress stream, then chatted with and deleted through the same client."""
from __future__ import annotations

import ollama
import pytest
import redis

from tests.fakes.fake_hub import FakeHub, tiny_gguf
from tests.web.portal import TOKEN, portal_env, portal_start

REPO = "ollamatest/SmolLM2-135M-Instruct-GGUF"
DEMO_FILE = "smollm2-135m-instruct-q4_1.gguf"
NAME = f"hf.co/{REPO}:Q4_1"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(demo_gguf):
    fake = FakeHub().start()
    fake.add_repo(REPO, {DEMO_FILE: demo_gguf, "smollm2-135m-instruct-q8_0.gguf": tiny_gguf(name="q8", padding=4096),
                         "README.md": b"# SmolLM2\n"})
    fake.add_repo("ollamatest/Only-Safetensors", {"model.safetensors": bytes(1024)})
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def portal(tmp_path_factory, redis_url, hub):
    base = tmp_path_factory.mktemp("ollama-portal")
    url = redis_url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(url).flushdb()
    env = portal_env(base=base, redis_url=url, hf_endpoint=hub.url) | {"NODE_NAME": "ollama-e2e"}
    from tests.web.portal import manage

    manage(env, "migrate", "--noinput", "-v", "0")
    running = portal_start(env=env, log=base / "portal.log")
    running.models = base / "models"
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(portal) -> ollama.Client:
    return ollama.Client(host=portal.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


def test_it_pulls_a_hub_quantization_with_ollamas_progress_then_chats_and_deletes_it(client, hub, portal):
    hub.slow_bps = 30_000_000  # about three seconds for the demo model: progress to watch
    progress = list(client.pull(NAME, stream=True))
    hub.slow_bps = 0

    statuses = [part.status for part in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    pulling = [part for part in progress if part.status.startswith("pulling ") and part.digest]
    file = hub.repos[REPO].files[DEMO_FILE]
    size = file.size
    assert {part.total for part in pulling} == {size}
    completed = [part.completed for part in pulling]
    assert completed == sorted(completed) and completed[-1] == size
    assert any(0 < done < size for done in completed), "the stream showed no progress between start and end"

    listed = {model.model: model for model in client.list().models}
    model_id = "ollamatest_SmolLM2-135M-Instruct-GGUF"
    assert pulling[-1].digest == f"sha256:{file.sha256}"
    assert listed[model_id].digest == file.sha256
    assert listed[model_id].details.quantization_level == "Q4_1"

    answer = client.chat(model=NAME, messages=[{"role": "user", "content": "What is the capital of France?"}],
                         options={"num_predict": 12, "temperature": 0})
    assert answer.message.content.strip()

    folder = portal.models / model_id
    assert (folder / DEMO_FILE).exists()
    assert client.delete(model_id).status == "success"
    assert model_id not in {model.model for model in client.list().models}
    assert not folder.exists()
    with pytest.raises(ollama.ResponseError) as again:
        client.delete(model_id)
    assert again.value.status_code == 404


def test_it_pulls_an_existing_model_again_as_success_without_downloading(client, hub):
    first = client.pull(f"{REPO}:Q8_0")
    hub.reset_counters()
    second = list(client.pull(f"{REPO}:Q8_0", stream=True))

    assert first.status == "success"
    assert second[-1].status == "success"
    assert hub.bytes_served == 0


def test_it_says_which_quantizations_a_repo_has_when_the_one_pulled_is_missing(client):
    with pytest.raises(ollama.ResponseError) as error:
        client.pull(f"hf.co/{REPO}:Q5_K_M", stream=True).__next__()

    assert error.value.status_code == 404
    assert "Q4_1" in error.value.error and "Q8_0" in error.value.error


@pytest.mark.parametrize(("name", "status", "words"), [
    ("hf.co/ollamatest/No-Such-Repo", 404, "No-Such-Repo"),
    ("ollamatest/Only-Safetensors", 422, "no GGUF"),
    ("hf.co/../../etc/passwd", 400, ""),
])
def test_it_refuses_a_pull_it_cannot_do_with_ollamas_error(client, name, status, words):
    with pytest.raises(ollama.ResponseError) as error:
        client.pull(name)

    assert error.value.status_code == status
    assert words in error.value.error
