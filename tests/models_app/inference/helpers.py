"""Shared pieces of the inference tests: a tiny GGUF, a controllable clock, a poll driving the engine."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import gguf
from django.utils import timezone

FAKE_SERVER = Path(__file__).resolve().parents[2] / "fakes" / "fake_llama_server.py"


def write_tiny_gguf(path: Path) -> Path:
    """A valid GGUF header with llama metadata and no tensors (for the fake server, which never reads it)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test model")
    writer.add_context_length(2048)
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class Clock:
    """The engine's `now`, moved by hand to cross backoff and keep-alive deadlines."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return timezone.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def serve_failed(model_id: str) -> bool:
    """Its llama-server died or could not start (the model itself stays ready)."""
    from models_app.models import ServedInstance

    return ServedInstance.objects.filter(model_id=model_id, state="error").exists()


def drive(engine, probe, *, what: str, timeout: float = 30.0):
    """Run engine steps until probe() is truthy, as the node daemon's loop would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine.step()
        result = probe()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")
