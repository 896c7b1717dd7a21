from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.models_app.hub.conftest import DEMO_ID, DEMO_REPO

ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
DEMO_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


@pytest.fixture
def portal_env(tmp_path, hub):
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", AI_MODEL_DIR=str(tmp_path / "models"),
               AI_TORRENT_DIR=str(tmp_path / "torrents"), AIPORTAL_RUN_DIR=str(tmp_path / "run"),
               HF_ENDPOINT=hub.url, AIPORTAL_CHANNEL_LAYER="memory", Q_WORKERS="1", LOG_LEVEL="WARNING",
               DJANGO_SETTINGS_MODULE="aiportal.settings")
    manage(env, "migrate", "--noinput")
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def ask_for_download(env: dict, url: str) -> str:
    return manage(env, "shell", "--no-imports", "-c", f"from models_app.hub.services import download_start; "
                                      f"print(download_start(url={url!r}).pk)")


def start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def row(env: dict) -> tuple:
    with sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite://"), timeout=20) as db:
        found = db.execute("select c.status, c.downloaded_bytes, m.sha256 from models_app_aimodel m "
                           "join models_app_modelcopy c on c.model_id = m.id where m.id = ?",
                           (DEMO_ID,)).fetchone()
    return found or ("", 0, "")


def test_it_resumes_a_killed_download_when_a_worker_starts_again_fetching_only_the_missing_bytes(portal_env, hub, demo_gguf):
    hub.slow_bps = 12 * MIB
    url = f"{hub.url}/{DEMO_REPO}"
    assert ask_for_download(portal_env, url) == DEMO_ID
    worker = start_worker(portal_env)
    try:
        wait_for(lambda: row(portal_env)[1] >= 20 * MIB, what="20 MiB on disk", timeout=90)
    finally:
        stop_worker(worker)
    partial = Path(portal_env["AI_MODEL_DIR"]) / DEMO_ID / f"{demo_gguf.name}.incomplete"
    kept = partial.stat().st_size
    assert row(portal_env)[0] == "downloading"
    assert 0 < kept < demo_gguf.stat().st_size
    hub.slow_bps = 0
    hub.wait_idle()
    hub.reset_counters()
    worker = start_worker(portal_env)
    try:
        status, downloaded, sha256 = wait_for(lambda: row(portal_env)[0] in {"ready", "error"} and row(portal_env),
                                               what="the resumed download to finish", timeout=90)
    finally:
        stop_worker(worker)
    assert (status, downloaded, sha256) == ("ready", demo_gguf.stat().st_size, DEMO_SHA256)
    assert hub.ranges == [f"bytes={kept}-"]
    assert hub.bytes_served == demo_gguf.stat().st_size - kept
