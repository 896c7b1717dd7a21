from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from models_app.inference.engine import LlamaEngine
from models_app.inference.services import serve_start, serve_wait
from models_app.models import AIModel
from models_app.services import model_delete, model_import_local
from tests.models_app.inference.helpers import drive

DEMO_ID = "chat-demo"
CONTEXT = 512


@pytest.fixture(scope="module")
def served_demo(django_db_setup, django_db_blocker, demo_gguf, tmp_path_factory):
    """The real demo model served by the real llama-server, shared by a module's tests."""
    run = tmp_path_factory.mktemp("chat-run")
    with override_settings(LOG_DIR=run / "logs", AI_TORRENT_DIR=run / "torrents", AI_MODEL_DIR=run / "models",
                           LLAMA_DEFAULT_THREADS=2,
                           CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        with django_db_blocker.unblock():
            model_import_local(path=demo_gguf, model_id=DEMO_ID)
            serve_start(model_id=DEMO_ID, context_size=CONTEXT)
            engine = LlamaEngine(node_name=django_settings.NODE_NAME)
            engine.start()
            drive(engine, lambda: AIModel.objects.get(pk=DEMO_ID).status == "serving", what="demo serving", timeout=120)
            serve_wait(model_id=DEMO_ID, timeout=1)
            yield DEMO_ID
            engine.stop()
            model_delete(model_id=DEMO_ID)
