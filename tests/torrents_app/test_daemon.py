from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from models_app.services import model_import_local
from tests.torrents_app.ggufgen import make_gguf
from tests.torrents_app.helpers import pump, refreshed

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.sqlite_only]
MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Node:
    """Another portal's node daemon (`manage.py runnode`) with its own SQLite database and folders."""

    def __init__(self, root: Path, template_db: Path):
        self.root, self.db = root, root / "node.sqlite3"
        root.mkdir()
        shutil.copy(template_db, self.db)
        self.env = _env(self.db) | {
            "NODE_NAME": "beta", "AI_MODEL_DIR": str(root / "models"), "AI_TORRENT_DIR": str(root / "torrents"),
            "AIPORTAL_RUN_DIR": str(root / "run"), "P2P_LISTEN": f"127.0.0.1:{_free_port()}", "P2P_DHT": "off",
            "P2P_LSD": "off", "P2P_RESUME_SAVE_SECONDS": "1", "NODE_TICK_SECONDS": "0.1",
        }

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], env=self.env, check=True,
                       cwd=django_settings.BASE_DIR, stdout=subprocess.DEVNULL)

    def start(self, **extra: str) -> subprocess.Popen:
        with open(self.root / "runnode.log", "ab") as log:
            return subprocess.Popen([sys.executable, "manage.py", "runnode"], env=self.env | extra,
                                    cwd=django_settings.BASE_DIR, stdout=log, stderr=log)

    def model(self) -> tuple:
        with sqlite3.connect(self.db, timeout=20) as conn:
            return conn.execute("SELECT c.status, c.download_progress, m.sha256, c.error FROM models_app_aimodel m "
                                "JOIN models_app_modelcopy c ON c.model_id = m.id").fetchone()

    def resume_saved_after(self, moment: float) -> bool:
        files = list((self.root / "torrents").glob("*.resume"))
        return bool(files) and files[0].stat().st_mtime > moment


def _env(db: Path) -> dict:
    return os.environ | {"DATABASE_URL": f"sqlite:///{db}", "AIPORTAL_CHANNEL_LAYER": "memory", "Q_SYNC": "1"}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("template") / "migrated.sqlite3"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=_env(db), check=True,
                   cwd=django_settings.BASE_DIR)
    return db


def test_it_resumes_a_download_from_resume_data_after_the_daemon_is_sigkilled(settings, alpha, tmp_path, template_db):
    settings.NODE_NAME = "alpha"
    (tmp_path / "src").mkdir()
    source = refreshed(model_import_local(path=make_gguf(tmp_path / "src" / "Resumable.gguf", 40 * MIB)))
    pump([alpha], lambda: alpha.p2p.has(source.pk))
    node = Node(tmp_path / "beta", template_db)
    magnet = f"{source.magnet_uri}&x.pe=127.0.0.1:{alpha.listen_port()}"
    node.manage("shell", "-c", f"from torrents_app.services import magnet_download_start as s; s(magnet_uri={magnet!r})")
    first = node.start(P2P_DOWNLOAD_LIMIT=str(4 * MIB))
    pump([alpha], lambda: node.model()[1] >= 40, timeout=90)
    halfway = time.time()
    pump([alpha], lambda: node.resume_saved_after(halfway))
    first.send_signal(signal.SIGKILL)
    first.wait()
    sent_before_restart = alpha.p2p.stats(source.pk).session_uploaded
    assert sent_before_restart < source.size
    second = node.start()
    pump([alpha], lambda: node.model()[0] == "ready", timeout=90)
    second.terminate()
    assert second.wait(timeout=30) == 0
    sent_after_restart = alpha.p2p.stats(source.pk).session_uploaded - sent_before_restart
    assert sent_after_restart < source.size * 0.65
    assert node.model()[2:] == (source.sha256, "")
