"""The portal as `make run` starts it (daphne, the q2 cluster, the node daemon) on a file SQLite
database, wired to a fake Bot API and a fake Hub; Telegram updates are posted to its webhook."""
from __future__ import annotations

import sys

import httpx

from tests.models_app.inference.portal import ROOT, Portal


class BotPortal(Portal):
    def __init__(self, workdir, demo_gguf, *, extra_env: dict[str, str]):
        super().__init__(workdir, demo_gguf)
        self.env.update(extra_env)
        self.env.pop("Q_SYNC", None)
        self.env.update({"Q_WORKERS": "1", "LLAMA_DEFAULT_CTX": "512"})
        self.qcluster = None

    def start(self) -> BotPortal:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("ensure_admin")
        python, manage = sys.executable, str(ROOT / "manage.py")
        self.daphne = self._spawn("daphne", [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                             "aiportal.asgi:application"])
        self.qcluster = self._spawn("qcluster", [python, manage, "qcluster"])
        self.start_node()
        self.wait(lambda: httpx.get(f"{self.url}/login/").status_code == 200, "daphne")
        return self

    def stop(self) -> None:
        for proc in (self.qcluster,):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        super().stop()

    def post_update(self, update: dict, *, secret: str) -> httpx.Response:
        return httpx.post(f"{self.url}/telegram/webhook/", json=update, timeout=30,
                          headers={"X-Telegram-Bot-Api-Secret-Token": secret})
