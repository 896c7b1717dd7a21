"""Rows for tests that need a model in a given state without running a download: a model and its copy."""
from __future__ import annotations

from django.conf import settings

from models_app.models import AIModel, ModelCopy

COPY_FIELDS = {f.name for f in ModelCopy._meta.concrete_fields} - {"id", "model", "created_at", "updated_at"}
# The model object's serving statuses come from an instance; the file under it is ready.
_FILE_STATUS = {"starting": "ready", "serving": "ready", "stopping": "ready"}


def model_make(*, node: str | None = None, **fields) -> AIModel:
    """A model with one copy on `node` (this node by default); copy fields (status, path, rates…) go to the copy."""
    copy = {name: fields.pop(name) for name in list(fields) if name in COPY_FIELDS}
    copy["status"] = _FILE_STATUS.get(copy.get("status", "ready"), copy.get("status", "ready"))
    model = AIModel.objects.create(**fields)
    ModelCopy.objects.create(model=model, node=node or settings.NODE_NAME, **copy)
    return model


def copy_update(model_id: str, **fields) -> int:
    """Change the model's copies as a node would (its only copy, in most tests)."""
    return ModelCopy.objects.filter(model_id=model_id).update(**fields)
