"""The copy's state machine (SPEC §9): the moves a copy's status may make, and the one writer of it.

A copy is a model's files on one node. Its status is written only through `copy_move`, which
moves it only from a status the table allows, so two writers racing (a download job, the torrent
engine, a cancel) cannot undo each other's work: the loser's update matches no row.
"""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from models_app.models import CopyStatus as S
from models_app.models import ModelCopy

# from -> the statuses it may move to
# Any copy may be removed; a removing copy only goes (its node deletes the files, then the row).
COPY_MOVES: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.DOWNLOADING, S.VERIFYING, S.ERROR, S.REMOVING}),
    # Downloading again: a worker that died mid-way is requeued, or another resumes it.
    S.DOWNLOADING: frozenset({S.DOWNLOADING, S.QUEUED, S.VERIFYING, S.ERROR, S.REMOVING}),
    S.VERIFYING: frozenset({S.QUEUED, S.READY, S.ERROR, S.REMOVING}),
    # A ready copy whose files went missing or broke under the seeder.
    S.READY: frozenset({S.ERROR, S.REMOVING}),
    # Asked for again: the download resumes from what is on disk.
    S.ERROR: frozenset({S.QUEUED, S.REMOVING}),
    S.REMOVING: frozenset(),
}
FETCHING = (S.QUEUED, S.DOWNLOADING, S.VERIFYING)


def copy_sources(to: str) -> list[str]:
    """The statuses a copy may be in to move to `to`."""
    return [status for status, targets in COPY_MOVES.items() if to in targets]


def copy_move(rows: QuerySet[ModelCopy], to: str, **fields) -> int:
    """Move the copies in `rows` that may go to `to`, writing `fields` beside; returns how many moved."""
    if to not in COPY_MOVES:
        raise ValueError(f"{to!r} is not a copy status")
    return rows.filter(status__in=copy_sources(to)).update(status=to, updated_at=timezone.now(), **fields)


def copy_rows(*, model_id: str, node: str) -> QuerySet[ModelCopy]:
    return ModelCopy.objects.filter(model_id=model_id, node=node)
