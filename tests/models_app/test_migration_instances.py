"""The migration to one instance per (model, node) (SPEC §9), run from the schema before it: each model's
instance keeps its node, options, key, error and counters, a model may then be served on a second
node, and going back keeps one instance per model."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from tests.models_app.migrating import migrate, migrate_to_latest

BEFORE = [("models_app", "0010_file_removal")]
AFTER = [("models_app", "0011_instance_per_node")]


@pytest.fixture
def old_apps(transactional_db):
    yield migrate(BEFORE)
    migrate_to_latest()


def test_each_instance_keeps_its_node_and_fields_and_a_second_node_may_serve(old_apps):
    AIModel = old_apps.get_model("models_app", "AIModel")
    Old = old_apps.get_model("models_app", "ServedInstance")
    served = AIModel.objects.create(id="served", name="served", source="local", file_name="s.gguf")
    Old.objects.create(model=served, node="a", desired="serving", state="serving", port=8100, host="10.0.0.3",
                       api_key="k-1", context_size=4096, tokens_generated=77, restarts=2)
    crashed = AIModel.objects.create(id="crashed", name="crashed", source="local")
    Old.objects.create(model=crashed, node="b", desired="stopped", state="error", error="exited with code -4")
    AIModel.objects.create(id="idle", name="idle", source="local")

    new = migrate(AFTER)

    Instance = new.get_model("models_app", "ServedInstance")
    rows = {(i.model_id, i.node): i for i in Instance.objects.all()}
    assert set(rows) == {("served", "a"), ("crashed", "b")}
    kept = rows["served", "a"]
    assert (kept.state, kept.port, kept.host, kept.api_key) == ("serving", 8100, "10.0.0.3", "k-1")
    assert (kept.context_size, kept.tokens_generated, kept.restarts) == (4096, 77, 2)
    assert (rows["crashed", "b"].state, rows["crashed", "b"].error) == ("error", "exited with code -4")
    Instance.objects.create(model_id="served", node="b", desired="serving")  # a second node serves it
    with pytest.raises(IntegrityError), transaction.atomic():
        Instance.objects.create(model_id="served", node="a")  # one instance per model and node

    back = migrate(BEFORE)

    rows = {i.model_id: i for i in back.get_model("models_app", "ServedInstance").objects.all()}
    assert set(rows) == {"served", "crashed"}
    assert rows["served"].node == "b"  # the most recently changed one stays
