"""A real portal for end-to-end tests: migrate, daphne and the node daemon on a file SQLite database.

One per test session (shared by the inference and OpenAI API tests): the demo model is imported
under three ids, the real llama-server serves them.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "e2e-token-for-inference-tests"
MODEL_IDS = ("demo-a", "demo-b", "demo-c")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Portal:
    def __init__(self, workdir: Path, demo_gguf: Path, *, model_ids: tuple[str, ...] = MODEL_IDS,
                 env: dict[str, str] | None = None):
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**self._env(workdir), **(env or {})}
        self.demo_gguf = demo_gguf
        self.model_ids = model_ids
        self.daphne: subprocess.Popen | None = None
        self.node: subprocess.Popen | None = None

    @staticmethod
    def _env(workdir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_LLAMA_", "LLAMA_"))}
        env.update({
            "DATABASE_URL": f"sqlite:///{workdir}/db.sqlite3", "AIPORTAL_RUN_DIR": str(workdir / "run"),
            "AI_MODEL_DIR": str(workdir / "models"), "AI_TORRENT_DIR": str(workdir / "torrents"),
            "AIPORTAL_CHANNEL_LAYER": "memory", "AIPORTAL_ADMIN_TOKEN": TOKEN, "AIPORTAL_ADMIN_PASSWORD": "pw-e2e",
            "DJANGO_SECRET_KEY": "e2e-secret", "NODE_NAME": "e2e-node", "NODE_TICK_SECONDS": "0.1",
            "LLAMA_DEFAULT_CTX": "1024", "P2P_LISTEN": f"127.0.0.1:{_free_port()}",
            "P2P_DHT": "off", "P2P_LSD": "off", "Q_SYNC": "on", "NODE_ENGINES": "llama",
        })
        return env

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:
            return subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> Portal:
        self.manage("migrate", "--noinput", "-v0")
        # One process for the set-up commands: each Django start costs a second on this machine.
        commands = ["call_command('ensure_admin')"] + [
            f"call_command('import_model', {str(self.demo_gguf)!r}, '--id', {model_id!r})" for model_id in self.model_ids]
        self.manage("shell", "-c", "from django.core.management import call_command; " + "; ".join(commands))
        self.daphne = self._spawn("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                             "aiportal.asgi:application"])
        self.start_node()
        self.wait(lambda: httpx.get(f"{self.url}/api/ai/list", headers=self.headers).status_code == 200, "daphne")
        return self

    def start_node(self) -> None:
        self.node = self._spawn("node", [sys.executable, str(ROOT / "manage.py"), "runnode"])

    def stop_node(self) -> None:
        self.node.send_signal(signal.SIGTERM)
        self.node.wait(timeout=30)

    def stop(self) -> None:
        for proc in (self.node, self.daphne):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {TOKEN}"}

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=self.headers, timeout=120, **kwargs)

    def instance_pid(self, model_id: str) -> int:
        """The pid the node daemon recorded, read from the portal's database file."""
        with sqlite3.connect(self.workdir / "db.sqlite3") as db:
            return db.execute("SELECT pid FROM models_app_servedinstance WHERE model_id = ?", (model_id,)).fetchone()[0]

    def instance_key(self, model_id: str) -> str:
        """The API key of the model's llama-server (only the portal's database holds it)."""
        with sqlite3.connect(self.workdir / "db.sqlite3") as db:
            return db.execute("SELECT api_key FROM models_app_servedinstance WHERE model_id = ?",
                              (model_id,)).fetchone()[0]

    def model(self, model_id: str) -> dict:
        return self.api("GET", f"/api/ai/models/{model_id}").json()["result"]

    def wait_status(self, model_id: str, status: str, timeout: float = 60) -> dict:
        return self.wait(lambda: (m := self.model(model_id))["status"] == status and m, f"{model_id} {status}", timeout)

    def wait(self, probe, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if result := probe():
                    return result
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        logs = "\n".join(p.read_text()[-1500:] for p in self.workdir.glob("*.log"))
        raise AssertionError(f"{what} did not happen within {timeout:.0f}s; logs:\n{logs}")


PARIS = [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "What is the capital of France?"}]
