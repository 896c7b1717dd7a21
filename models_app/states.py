"""The state machines of a copy and of an instance (SPEC §9): the moves each may make, and their one writer.

A copy is a model's files on one node; an instance is a llama-server serving it on one node. A
copy's status is written only through `copy_move` and an instance's state only through
`instance_move`, which move a row only from a status its table allows, so two writers racing (a
download job, the torrent engine, a cancel; a node daemon, a stop request) cannot undo each other's
work: the loser's update matches no row.
"""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from models_app.models import CopyStatus as S
from models_app.models import ModelCopy, ServedInstance
from models_app.models import ServeState as I

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
# A copy is made queued (a download or a copy to come) or ready (a file imported where it lies). One that
# failed and is asked for again resumes (error -> queued), except a copy over BitTorrent, made afresh.
COPY_STARTS = frozenset({S.QUEUED, S.READY})


# An instance's `state` is what its node's daemon sees; what a person wants is its `desired` field,
# which services write freely (serving or stopped) and the daemon reads.
INSTANCE_MOVES: dict[str, frozenset[str]] = {
    # Started, or it could not start at all (no binary, port taken).
    I.STOPPED: frozenset({I.STARTING, I.ERROR}),
    # Loaded and answering; unwanted before it was up; its daemon went down; it died while loading.
    I.STARTING: frozenset({I.SERVING, I.STOPPING, I.STOPPED, I.ERROR}),
    I.SERVING: frozenset({I.STOPPING, I.STOPPED, I.ERROR}),
    I.STOPPING: frozenset({I.STOPPED}),
    # Started again after a backoff (or failing to start again); stopped by a person, which clears it.
    I.ERROR: frozenset({I.STARTING, I.ERROR, I.STOPPED}),
}


def _sources(table: dict[str, frozenset[str]], to: str) -> list[str]:
    if to not in table:
        raise ValueError(f"{to!r} is not one of {sorted(table)}")
    return [status for status, targets in table.items() if to in targets]


def copy_sources(to: str) -> list[str]:
    """The statuses a copy may be in to move to `to`."""
    return _sources(COPY_MOVES, to)


def copy_move(rows: QuerySet[ModelCopy], to: str, **fields) -> int:
    """Move the copies in `rows` that may go to `to`, writing `fields` beside; returns how many moved."""
    fields.setdefault("updated_at", timezone.now())
    return rows.filter(status__in=copy_sources(to)).update(status=to, **fields)


def copy_create(*, model, node: str, status: str = S.QUEUED, **fields) -> ModelCopy:
    """A new copy of `model` on `node`, in one of the statuses a copy starts in."""
    if status not in COPY_STARTS:
        raise ValueError(f"a copy starts {' or '.join(sorted(map(str, COPY_STARTS)))}, not {str(status)!r}")
    return ModelCopy.objects.create(model=model, node=node, status=status, **fields)


def instance_move(rows: QuerySet[ServedInstance], to: str, **fields) -> int:
    """Move the instances in `rows` that may go to `to`, writing `fields` beside; returns how many moved."""
    fields.setdefault("updated_at", timezone.now())
    return rows.filter(state__in=_sources(INSTANCE_MOVES, to)).update(state=to, **fields)


def copy_rows(*, model_id: str, node: str) -> QuerySet[ModelCopy]:
    return ModelCopy.objects.filter(model_id=model_id, node=node)


def instance_rows(*, model_id: str, node: str) -> QuerySet[ServedInstance]:
    return ServedInstance.objects.filter(model_id=model_id, node=node)
