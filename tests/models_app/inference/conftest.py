from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from models_app.inference.engine import LlamaEngine
from models_app.services import model_import_local
from tests.models_app.inference.helpers import FAKE_SERVER, Clock, write_tiny_gguf


@pytest.fixture
def fake_llama(settings):
    settings.LLAMA_SERVER_BIN = str(FAKE_SERVER)
    settings.LLAMA_DEFAULT_THREADS = 1
    return FAKE_SERVER


@pytest.fixture
def tiny_model(db, tmp_path):
    return model_import_local(path=write_tiny_gguf(tmp_path / "tiny.gguf"), model_id="tiny")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(db, clock):
    engine = LlamaEngine(node_name=django_settings.NODE_NAME, now=clock)
    engine.start()
    yield engine
    engine.stop()
