"""Register a local GGUF file as a ready model."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aiportal.errors import ApplicationError
from models_app import services


class Command(BaseCommand):
    help = "Register a local GGUF file as a ready model (source `local`)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--id", dest="model_id", help="Model id (default: from the file name)")
        parser.add_argument("--copy", action="store_true", help="Copy the file into AI_MODEL_DIR instead of using it in place")

    def handle(self, *args, path: Path, model_id: str | None, copy: bool, **options):
        try:
            model = services.model_import_local(path=path, model_id=model_id, copy=copy)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{model.id}: ready ({model.size:,} bytes, sha256 {model.sha256})")
