from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from models_app.demo import DEMO_SHA256, DEMO_WHEEL
from tests.conftest import CACHE, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "runportal-test-token"


@pytest.fixture
def portal(tmp_path, redis_url):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": redis_url,
        "PORTAL_PORT": str(port),
        "AIPORTAL_RUN_DIR": str(tmp_path / "run"),
        "AI_MODEL_DIR": str(tmp_path / "models"),
        "AI_TORRENT_DIR": str(tmp_path / "torrents"),
        "AIPORTAL_ADMIN_TOKEN": TOKEN,
        "P2P_LISTEN": f"127.0.0.1:{free_port()}",
        "P2P_DHT": "off",
        "P2P_LSD": "off",
    }
    log = open(tmp_path / "portal.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runportal", "--demo-wheel", str(CACHE / "wheels" / DEMO_WHEEL)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    yield proc, f"http://127.0.0.1:{port}", tmp_path / "portal.log", env
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def child_pids(log_path: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"\[portal\] started \w+ \(pid (\d+)\)", log_path.read_text())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_it_starts_the_whole_portal_with_the_demo_model_ready_and_stops_everything_on_ctrl_c(portal):
    proc, url, log_path, _ = portal
    headers = {"Authorization": f"Token {TOKEN}"}
    listing = wait_for(lambda: httpx.get(f"{url}/api/ai/list", headers=headers).json(), what="the portal", timeout=120)
    (demo,) = listing["result"]
    assert (demo["status"], demo["source"], demo["sha256"]) == ("ready", "local", DEMO_SHA256)
    output = log_path.read_text()
    assert f"API token:      {TOKEN}" in output
    assert f"portal:         {url}/" in output
    pids = child_pids(log_path)
    assert len(pids) == 3

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    assert [pid for pid in pids if alive(pid)] == []


def test_it_refuses_a_second_portal_from_the_same_run_folder_and_leaves_the_first_alone(portal):
    proc, url, _, env = portal
    headers = {"Authorization": f"Token {TOKEN}"}
    wait_for(lambda: httpx.get(f"{url}/api/ai/list", headers=headers).json()["ok"], what="the portal", timeout=120)
    second = subprocess.run([sys.executable, str(ROOT / "manage.py"), "runportal"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert second.returncode == 1
    assert "a portal is already running from" in second.stderr
    assert f"(pid {proc.pid})" in second.stderr
    assert proc.poll() is None
    assert httpx.get(f"{url}/api/ai/list", headers=headers).json()["ok"] is True


def test_it_refuses_to_start_when_the_portal_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORTAL_PORT": str(port), "AIPORTAL_RUN_DIR": str(tmp_path / "run")}
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "runportal"], env=env, capture_output=True,
                                text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"CommandError: PORTAL_PORT: 127.0.0.1:{port} is already in use; stop what listens there or choose another PORTAL_PORT"
    )
