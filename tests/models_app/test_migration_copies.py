"""The migration to copies (SPEC §9), run from the schema before it: every model becomes a model with one
copy on its node (and keeps its instance and torrent), and nothing a person sees changes."""
from __future__ import annotations

import pytest

from tests.models_app.migrating import migrate, migrate_to_latest

BEFORE = [("models_app", "0006_transfersample"), ("torrents_app", "0003_alter_torrent_desired")]


@pytest.fixture
def old_apps(transactional_db):
    yield migrate(BEFORE)
    migrate_to_latest()


def test_every_model_becomes_one_copy_on_its_node_with_its_figures_torrent_and_instance(old_apps):
    AIModel = old_apps.get_model("models_app", "AIModel")
    ServedInstance = old_apps.get_model("models_app", "ServedInstance")
    Torrent = old_apps.get_model("torrents_app", "Torrent")
    TransferSample = old_apps.get_model("models_app", "TransferSample")
    served = AIModel.objects.create(id="served", name="served", source="local", file_name="s.gguf", size=100,
                                    status="serving", node="a", path="/m/served", downloaded_bytes=100,
                                    uploaded_bytes=250, peers=2, seeding=True, info_hash="ab" * 20)
    ServedInstance.objects.create(model=served, node="a", desired="serving", state="serving", port=8100)
    Torrent.objects.create(model=served, node="a", info_hash_v1="ab" * 20, torrent_file=b"d4:infod...ee",
                           desired="seed", state="seeding")
    crashed = AIModel.objects.create(id="crashed", name="crashed", source="local", status="ready", node="b",
                                     path="/m/crashed", error="llama-server exited with code -4", seeding=False)
    ServedInstance.objects.create(model=crashed, node="b", desired="stopped", state="error",
                                  error="llama-server exited with code -4")
    AIModel.objects.create(id="failed", name="failed", source="huggingface", status="error", node="a",
                           path="/m/failed", error="Checksum mismatch", http_bytes=40, download_progress=40.0,
                           task_id="t-1")
    TransferSample.objects.create(model=served, at="2026-12-03T10:00:00Z", upload_rate=5)

    new = migrate([("models_app", "0009_copy_removing"), ("torrents_app", "0004_torrent_per_copy")])

    ModelCopy = new.get_model("models_app", "ModelCopy")
    NewTorrent = new.get_model("torrents_app", "Torrent")
    rows = {c.model_id: c for c in ModelCopy.objects.all()}
    assert set(rows) == {"served", "crashed", "failed"}
    assert (rows["served"].node, rows["served"].path, rows["served"].status) == ("a", "/m/served", "ready")
    assert (rows["served"].downloaded_bytes, rows["served"].uploaded_bytes, rows["served"].peers) == (100, 250, 2)
    # A failed server's message stays with its instance; the file was fine and its copy says so.
    assert (rows["crashed"].status, rows["crashed"].error, rows["crashed"].seeding) == ("ready", "", False)
    assert (rows["failed"].status, rows["failed"].error) == ("error", "Checksum mismatch")
    assert (rows["failed"].http_bytes, rows["failed"].download_progress, rows["failed"].task_id) == (40, 40.0, "t-1")
    torrent = NewTorrent.objects.get()
    assert (torrent.copy_id, torrent.info_hash_v1, bytes(torrent.torrent_file)) == (rows["served"].pk, "ab" * 20,
                                                                                    b"d4:infod...ee")
    assert new.get_model("models_app", "TransferSample").objects.get().node == "a"
    assert new.get_model("models_app", "ServedInstance").objects.get(pk="served").state == "serving"


def test_the_summary_of_the_migrated_rows_is_what_the_model_object_said_before(old_apps):
    AIModel = old_apps.get_model("models_app", "AIModel")
    ServedInstance = old_apps.get_model("models_app", "ServedInstance")
    model = AIModel.objects.create(id="served", name="served", source="local", status="serving", node="a",
                                   path="/m/served", downloaded_bytes=100, uploaded_bytes=250)
    ServedInstance.objects.create(model=model, node="a", desired="serving", state="serving", port=8100)

    migrate_to_latest()

    from models_app.selectors import model_get, model_to_dict

    shown = model_to_dict(model_get(model_id="served"))
    assert (shown["status"], shown["downloadedBytes"], shown["uploadedBytes"]) == ("serving", 100, 250)
    assert [(c["node"], c["status"]) for c in shown["copies"]] == [("a", "ready")]
