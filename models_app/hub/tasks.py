"""django-q2 tasks: thin, an id in and a service call."""
from __future__ import annotations

from models_app.hub.runner import download_run
from models_app.hub.services import downloads_reconcile


def download_task(model_id: str) -> str:
    try:
        return download_run(model_id=model_id)
    finally:
        downloads_reconcile()  # the next in line takes the slot this job leaves


def downloads_reconcile_task() -> int:
    return downloads_reconcile()
