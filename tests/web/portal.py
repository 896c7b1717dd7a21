"""The whole portal (runportal: daphne, q2 cluster, node daemon) in a subprocess, for browser tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType

from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "web-ui-test-pw"
TOKEN = "web-ui-test-token"


def tiny_gguf(path: Path, *, name: str, megabytes: int, file_type: LlamaFileType = LlamaFileType.MOSTLY_Q4_0) -> Path:
    """A small but well-formed GGUF file (header, metadata, one tensor)."""
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(2048)
    writer.add_file_type(file_type.value)
    writer.add_tensor("filler", np.zeros(megabytes * 1024 * 256, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass
class Portal:
    url: str
    proc: subprocess.Popen
    env: dict[str, str]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def portal_env(*, base: Path, redis_url: str, hf_endpoint: str) -> dict[str, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "aiportal.settings",
        "DATABASE_URL": f"sqlite:///{base / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "AIPORTAL_RUN_DIR": str(base / "run"),
        "AI_MODEL_DIR": str(base / "models"),
        "AI_TORRENT_DIR": str(base / "torrents"),
        "PORTAL_HOST": "127.0.0.1",
        "PORTAL_PORT": str(port),
        "AIPORTAL_ADMIN_PASSWORD": PASSWORD,
        "AIPORTAL_ADMIN_TOKEN": TOKEN,
        "HF_ENDPOINT": hf_endpoint,
        "P2P_LISTEN": f"127.0.0.1:{free_port()}",
        "P2P_DHT": "off",
        "P2P_LSD": "off",
        "Q_WORKERS": "1",
        "NODE_NAME": "web-e2e",
        "NODE_TICK_SECONDS": "0.2",
        "LLAMA_DEFAULT_THREADS": "2",
        "LLAMA_DEFAULT_CTX": "1024",
        "DJANGO_SECRET_KEY": "web-ui-tests-only",
    })
    env.pop("AIPORTAL_CHANNEL_LAYER", None)
    return env


def portal_start(*, env: dict[str, str], log: Path) -> Portal:
    url = f"http://127.0.0.1:{env['PORTAL_PORT']}"
    out = log.open("ab")
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runportal"], env=env, cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    portal = Portal(url=url, proc=proc, env=env, log=log)

    def up() -> bool:
        assert proc.poll() is None, f"runportal exited; see {log}"
        with urllib.request.urlopen(f"{url}/login/", timeout=2) as response:
            return response.status == 200

    try:
        wait_for(up, what="the portal", timeout=90)
    except AssertionError:
        portal.stop()
        raise
    return portal
