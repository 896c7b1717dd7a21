"""The state changes the LlamaEngine records, each one a move of `models_app.states.INSTANCE_MOVES` and
conditional, so a concurrent serve/stop request wins."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from models_app.models import AIModel, ServedInstance, ServeState
from models_app.services import model_notify
from models_app.states import instance_move, instance_rows

MAX_RESTARTS = 5


def backoff(restarts: int) -> timedelta:
    return timedelta(seconds=min(60, 2 ** max(restarts - 1, 0)))


def _changed(model_id: str) -> None:
    """The model object shows its instances' states (SPEC §9): tell open pages."""
    model_notify(AIModel(pk=model_id))


def _row(instance: ServedInstance):
    return ServedInstance.objects.filter(pk=instance.pk)


def mark_starting(instance: ServedInstance, *, port: int, host: str, api_key: str, pid: int, log_path: str,
                  now: datetime) -> bool:
    """A child was spawned for it; False when the row moved meanwhile (then the child must go)."""
    with transaction.atomic():
        moved = instance_move(_row(instance), ServeState.STARTING, port=port, host=host, api_key=api_key, pid=pid,
                              log_path=log_path, started_at=None, updated_at=now)
        if moved:
            _changed(instance.model_id)
    return bool(moved)


def mark_serving(instance: ServedInstance, *, now: datetime) -> bool:
    with transaction.atomic():
        changed = instance_move(_row(instance).filter(desired="serving"), ServeState.SERVING, started_at=now,
                                error="", last_used_at=now, updated_at=now)
        if changed:
            _changed(instance.model_id)
    return bool(changed)


def mark_failed(instance: ServedInstance, *, message: str, retry: bool, now: datetime) -> None:
    """The server died or could not start: error with the reason; retried with backoff while wanted."""
    restarts = instance.restarts + 1
    wanted = retry and restarts <= MAX_RESTARTS
    if retry and not wanted:
        message = f"{message}\nGave up after {MAX_RESTARTS} restarts; serve it again once the cause is fixed."
    with transaction.atomic():
        moved = instance_move(_row(instance), ServeState.ERROR, pid=None, error=message, restarts=restarts,
                              updated_at=now, next_start_at=now + backoff(restarts) if wanted else None)
        if moved and not wanted:
            _row(instance).update(desired="stopped")
        # The file is as good as before: its copy stays ready (and shared); the instance carries the failure.
        _changed(instance.model_id)


def mark_used(instance: ServedInstance, *, now: datetime) -> None:
    _row(instance).update(last_used_at=now)


def mark_stopping(instance: ServedInstance, *, now: datetime) -> None:
    instance_move(_row(instance), ServeState.STOPPING, updated_at=now)


def mark_stopped(model_id: str, *, node: str, now: datetime) -> None:
    """The process is gone; the instance is stopped unless it failed (then it keeps its error), and the
    next pass starts it again when it is still wanted."""
    with transaction.atomic():
        instance_move(instance_rows(model_id=model_id, node=node), ServeState.STOPPED, pid=None, port=None,
                      started_at=None, updated_at=now)
        _changed(model_id)


def mark_node_down(node: str, *, now: datetime) -> None:
    """The daemon stops or starts: no process of this node runs; the wanted ones will start again."""
    with transaction.atomic():
        rows = ServedInstance.objects.filter(node=node)
        instance_move(rows.exclude(state=ServeState.ERROR), ServeState.STOPPED, pid=None, port=None, started_at=None,
                      updated_at=now)
        for model_id in rows.values_list("model_id", flat=True):
            _changed(model_id)


def mark_restarts_forgotten(instance: ServedInstance) -> None:
    _row(instance).update(restarts=0)
