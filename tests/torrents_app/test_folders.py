from __future__ import annotations

from pathlib import Path

import pytest

from models_app.models import Status
from tests.torrents_app.ggufgen import make_gguf
from tests.torrents_app.helpers import offer, pump, refreshed, torrent_bytes
from torrents_app.sharing import magnet_download_start

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_it_downloads_a_folder_of_split_gguf_parts_and_serves_the_first(settings, foreign, beta, tmp_path):
    folder = tmp_path / "offered" / "Big-Model-GGUF"
    folder.mkdir(parents=True)
    make_gguf(folder / "Big-Model-00001-of-00002.gguf", 700_000, name="Big")
    make_gguf(folder / "Big-Model-00002-of-00002.gguf", 500_000, name="Big")
    (folder / "README.md").write_text("# Big model\n")
    settings.NODE_NAME = "beta"
    model = magnet_download_start(magnet_uri=offer(foreign, torrent_bytes(folder, fmt="v1"), folder.parent))
    pump([beta], lambda: refreshed(model).status == Status.READY)
    model = refreshed(model)
    assert model.file_name == "Big-Model-GGUF/Big-Model-00001-of-00002.gguf"
    assert sorted(f.name for f in model.files.all()) == [
        "Big-Model-GGUF/Big-Model-00001-of-00002.gguf", "Big-Model-GGUF/Big-Model-00002-of-00002.gguf",
        "Big-Model-GGUF/README.md"]
    assert all(f.verified and len(f.sha256) == 64 for f in model.files.all())
    assert Path(model.lead.path, model.file_name).read_bytes() == (folder / "Big-Model-00001-of-00002.gguf").read_bytes()
    assert model.size == sum(p.stat().st_size for p in folder.iterdir())
    beta.stop()
    beta.start()
    pump([beta], lambda: beta.p2p.has(model.pk) and beta.p2p.stats(model.pk).is_seeding)
