"""The copy's and the instance's state machines (SPEC §9): where a copy may start, and one way to make it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models_app.models import AIModel, CopyStatus, ModelCopy, ServeState, Source
from models_app.states import COPY_MOVES, COPY_STARTS, INSTANCE_MOVES, copy_create

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_a_copy_starts_queued_or_ready_and_never_half_way():
    model = AIModel.objects.create(id="m", name="m", source=Source.HUGGINGFACE)

    assert copy_create(model=model, node="a").status == CopyStatus.QUEUED
    assert copy_create(model=model, node="b", status=CopyStatus.READY).status == CopyStatus.READY
    with pytest.raises(ValueError, match="not 'downloading'"):
        copy_create(model=model, node="c", status=CopyStatus.DOWNLOADING)
    assert sorted(ModelCopy.objects.values_list("node", flat=True)) == ["a", "b"]


def test_every_status_has_its_moves_and_removing_is_the_end():
    assert set(COPY_MOVES) == set(CopyStatus.values) and COPY_STARTS <= set(COPY_MOVES)
    assert set(INSTANCE_MOVES) == set(ServeState.values)
    assert COPY_MOVES[CopyStatus.REMOVING] == frozenset()


def test_the_portal_makes_copies_only_through_copy_create():
    made = []
    for package in ("aiportal", "chat", "models_app", "torrents_app", "telegram_bot"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts or path == ROOT / "models_app" / "states.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr in {"create", "get_or_create", "update_or_create",
                                                                      "bulk_create"} \
                        and ast.unparse(node.value) == "ModelCopy.objects":
                    made.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert made == []
