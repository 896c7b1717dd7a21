from __future__ import annotations

import pytest
import redis
from django.test import Client
from gguf import LlamaFileType

from aiportal.env import redis_layer_host
from models_app import services
from models_app.models import AIModel
from tests.conftest import chromium
from tests.fakes.fake_hub import FakeHub
from tests.web.portal import (
    ARTIFACTS,
    PASSWORD,
    manage,
    portal_env,
    portal_start,
    tiny_gguf,
)

HUB_REPO = "webtest/TinyLlama-GGUF"
BROKEN_REPO = "webtest/Broken-GGUF"


@pytest.fixture(scope="session")
def web_redis_url(redis_url) -> str:
    """A Redis database of its own for the web tests, on the suite's Redis."""
    return redis_url.rsplit("/", 1)[0] + "/7"


@pytest.fixture
def redis_layer(settings, web_redis_url):
    """The real Redis channel layer as the portal configures it, in a database of its own."""
    host = redis_layer_host(web_redis_url.rsplit("/", 1)[0] + "/8")
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [host]}}}


@pytest.fixture
def web(admin_user) -> Client:
    """Django's test client, logged in as the admin."""
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def tiny(tmp_path) -> AIModel:
    """A ready 1 MiB GGUF model with id `tiny`, imported through the real service."""
    path = tiny_gguf(tmp_path / "tiny.gguf", name="Tiny", megabytes=1)
    return services.model_import_local(path=path, model_id="tiny", copy=True)


@pytest.fixture(scope="session")
def fake_hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    hub = FakeHub().start()
    hub.add_repo(HUB_REPO, {
        "tinyllama-q4_k_m.gguf": tiny_gguf(folder / "a.gguf", name="TinyLlama Q4_K_M", megabytes=6,
                                           file_type=LlamaFileType.MOSTLY_Q4_K_M),
        "tinyllama-q8_0.gguf": tiny_gguf(folder / "b.gguf", name="TinyLlama Q8_0", megabytes=9,
                                         file_type=LlamaFileType.MOSTLY_Q8_0),
        "README.md": b"# TinyLlama GGUF\n",
    })
    hub.add_repo(BROKEN_REPO, {"broken-q4_0.gguf": tiny_gguf(folder / "c.gguf", name="Broken", megabytes=1)},
                 wrong_sha256={"broken-q4_0.gguf"})
    hub.slow_bps = 2_000_000  # slow enough to watch the bar move
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def portal(tmp_path_factory, web_redis_url, fake_hub, demo_gguf):
    ARTIFACTS.mkdir(exist_ok=True)
    base = tmp_path_factory.mktemp("portal")
    redis.Redis.from_url(web_redis_url).flushdb()
    env = portal_env(base=base, redis_url=web_redis_url, hf_endpoint=fake_hub.url)
    log = ARTIFACTS / "portal.log"
    log.write_text("")
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "import_model", str(demo_gguf), "--id", "smollm2-demo", "--copy")
    running = portal_start(env=env, log=log)
    yield running
    running.stop()


@pytest.fixture(scope="package")
def browser():
    yield from chromium()


@pytest.fixture
def page(browser, portal):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=portal.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors = watch_script_errors(tab)
    yield tab
    context.close()
    assert errors == [], "the page's JavaScript failed"


def watch_script_errors(tab) -> list[str]:
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def log_in(tab) -> None:
    tab.goto("/login/")
    tab.get_by_label("Username").fill("admin")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/")


@pytest.fixture(scope="package")
def auth_state(browser, portal) -> dict:
    """The admin's logged-in cookies, made once by logging in through the form."""
    context = browser.new_context(base_url=portal.url)
    log_in(context.new_page())
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def logged_in(browser, portal, auth_state):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=portal.url,
                                  storage_state=auth_state)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors = watch_script_errors(tab)
    tab.goto("/")
    yield tab
    context.close()
    assert errors == [], "the page's JavaScript failed"
