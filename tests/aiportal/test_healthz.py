"""`GET /healthz`: no auth; 200 when the database and Redis answer, 503 naming what is down."""
from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port, wait_for
from tests.models_app.inference.portal import ROOT


@pytest.fixture
def redis_layer(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [redis_url]}}}


@pytest.mark.django_db
def test_it_answers_ok_without_a_token_when_the_database_and_redis_answer(anon_api, redis_layer):
    response = anon_api.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_it_answers_503_naming_redis_when_redis_is_down(anon_api, redis_layer, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    response = anon_api.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["redis"] and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down: REDIS_URL: cannot reach Redis at redis://127.0.0.1:")


@pytest.mark.slow
def test_it_answers_503_naming_the_database_when_it_is_down(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DJANGO_SECRET_KEY": "health",
           "AIPORTAL_RUN_DIR": str(tmp_path / "run"), "AIPORTAL_CHANNEL_LAYER": "memory",
           "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/aiportal"}  # no PostgreSQL there
    daphne = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "aiportal.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        response = wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10), what="daphne")
    finally:
        daphne.terminate()
        daphne.wait(timeout=30)

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database"] and body["checks"]["database"].startswith("down: OperationalError")
    assert body["checks"]["redis"] == "not used" and body["nodes"] is None
