"""django-q2 tasks: thin, an id in and a service call."""
from __future__ import annotations


def download_task(model_id: str) -> str:
    from models_app.hub.runner import download_run
    from models_app.hub.services import downloads_reconcile

    try:
        return download_run(model_id=model_id)
    finally:
        downloads_reconcile()


def downloads_reconcile_task() -> int:
    from models_app.hub.services import downloads_reconcile

    return downloads_reconcile()
