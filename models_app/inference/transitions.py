"""The state changes the LlamaEngine records, each one conditional so a concurrent serve/stop request wins."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from models_app.models import AIModel, ServedInstance, ServeState
from models_app.services import model_notify

MAX_RESTARTS = 5


def backoff(restarts: int) -> timedelta:
    return timedelta(seconds=min(60, 2 ** max(restarts - 1, 0)))


def _changed(model_id: str) -> None:
    """The model object shows its instance's state (SPEC §9): tell open pages."""
    model_notify(AIModel(pk=model_id))


def mark_starting(instance: ServedInstance, *, port: int, host: str, api_key: str, pid: int, log_path: str,
                  now: datetime) -> None:
    with transaction.atomic():
        ServedInstance.objects.filter(pk=instance.pk).update(
            state=ServeState.STARTING, port=port, host=host, api_key=api_key, pid=pid, log_path=log_path,
            started_at=None, updated_at=now)
        _changed(instance.pk)


def mark_serving(instance: ServedInstance, *, now: datetime) -> bool:
    with transaction.atomic():
        changed = ServedInstance.objects.filter(pk=instance.pk, desired="serving", state=ServeState.STARTING).update(
            state=ServeState.SERVING, started_at=now, error="", last_used_at=now, updated_at=now)
        if changed:
            _changed(instance.pk)
    return bool(changed)


def mark_failed(instance: ServedInstance, *, message: str, retry: bool, now: datetime) -> None:
    """The server died or could not start: error with the reason; retried with backoff while wanted."""
    restarts = instance.restarts + 1
    wanted = retry and restarts <= MAX_RESTARTS
    if retry and not wanted:
        message = f"{message}\nGave up after {MAX_RESTARTS} restarts; serve it again once the cause is fixed."
    with transaction.atomic():
        ServedInstance.objects.filter(pk=instance.pk).update(
            state=ServeState.ERROR, pid=None, error=message, restarts=restarts, updated_at=now,
            next_start_at=now + backoff(restarts) if wanted else None,
            desired="serving" if wanted else "stopped")
        # The file is as good as before: its copy stays ready (and shared); the instance carries the failure.
        _changed(instance.pk)


def mark_used(instance: ServedInstance, *, now: datetime) -> None:
    ServedInstance.objects.filter(pk=instance.pk).update(last_used_at=now)


def mark_stopping(instance: ServedInstance, *, now: datetime) -> None:
    ServedInstance.objects.filter(pk=instance.pk).update(state=ServeState.STOPPING, updated_at=now)


def mark_stopped(model_id: str, *, now: datetime) -> None:
    """The process is gone; the model is `ready` again unless it is wanted (then the next pass starts it)."""
    with transaction.atomic():
        ServedInstance.objects.filter(pk=model_id).exclude(state=ServeState.ERROR).update(
            state=ServeState.STOPPED, pid=None, port=None, started_at=None, updated_at=now)
        _changed(model_id)


def mark_node_down(node: str, *, now: datetime) -> None:
    """The daemon stops or starts: no process of this node runs; the wanted ones will start again."""
    with transaction.atomic():
        rows = ServedInstance.objects.filter(node=node)
        rows.exclude(state=ServeState.ERROR).update(state=ServeState.STOPPED, pid=None, port=None, started_at=None,
                                                     updated_at=now)
        for model_id in rows.values_list("pk", flat=True):
            _changed(model_id)


def mark_restarts_forgotten(instance: ServedInstance) -> None:
    ServedInstance.objects.filter(pk=instance.pk).update(restarts=0)
