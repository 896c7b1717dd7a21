"""A real portal group on one machine: one database, daphne, and per node its own daemon, q2 cluster,
address (127.0.0.x), model folder and run folder, as separate machines would have.

Under `make test` the group shares a PostgreSQL database of its own and a Redis database (channel layer and
q2 broker), as the README's "Several machines" asks of a real group; run alone, it falls back to SQLite,
the in-memory channel layer and the ORM broker.
"""
from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "two-node-token"
PASSWORD = "pw-two-nodes"


@dataclass
class Node:
    name: str
    address: str
    root: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.root / "models"

    def spawn(self, what: str) -> None:
        argv = [sys.executable, str(ROOT / "manage.py"), "runnode" if what == "daemon" else "qcluster"]
        with open(self.root / f"{what}.log", "ab") as log:
            self.procs[what] = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def kill(self, what: str) -> None:
        """As a machine that loses power: no goodbye, and llama-server children die with the daemon."""
        proc = self.procs.pop(what)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, what: str) -> None:
        proc = self.procs.pop(what)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


class Group:
    def __init__(self, workdir: Path, *, hub_url: str, names: tuple[str, ...] = ("a", "b"),
                 env: dict[str, str] | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_LLAMA_", "LLAMA_", "REDIS_URL"))}
        self.database_url = _database(workdir)
        base.update({
            "DATABASE_URL": self.database_url, **_broker(),
            "AIPORTAL_ADMIN_TOKEN": TOKEN, "AIPORTAL_ADMIN_PASSWORD": PASSWORD, "DJANGO_SECRET_KEY": "two-nodes",
            "NODE_TICK_SECONDS": "0.1", "LLAMA_DEFAULT_CTX": "1024", "P2P_DHT": "off", "P2P_LSD": "off",
            "HF_ENDPOINT": hub_url, "Q_WORKERS": "1", **(env or {}),
        })
        self.base = base
        self.nodes: dict[str, Node] = {}
        for n, name in enumerate(names):
            root = workdir / name
            root.mkdir(parents=True, exist_ok=True)
            env = {**base, "NODE_NAME": name, "NODE_ADDRESS": f"127.0.0.{3 + n}", "AIPORTAL_RUN_DIR": str(root / "run"),
                   "AI_MODEL_DIR": str(root / "models"), "AI_TORRENT_DIR": str(root / "torrents"),
                   "P2P_LISTEN": f"127.0.0.{3 + n}:{free_port()}"}
            self.nodes[name] = Node(name, env["NODE_ADDRESS"], root, env)
        self.daphne: subprocess.Popen | None = None

    def start(self) -> Group:
        try:
            return self._start()
        except BaseException:
            self.stop()  # nothing left running when the group could not start
            raise

    def _start(self) -> Group:
        first = next(iter(self.nodes.values()))
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], env=first.env,
                       cwd=ROOT, check=True)
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "ensure_admin"], env=first.env, cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        with open(self.workdir / "daphne.log", "ab") as log:
            self.daphne = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "aiportal.asgi:application"],
                env=first.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        for node in self.nodes.values():
            node.spawn("daemon")
            node.spawn("qcluster")
        self.wait(lambda: {n["name"] for n in self.api("GET", "/api/ai/nodes").json()["result"] if n["online"]}
                  == set(self.nodes), "every node online", timeout=90)
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            for what in list(node.procs):
                node.stop(what)
        if self.daphne is not None:
            self.daphne.terminate()
            self.daphne.wait(timeout=30)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {TOKEN}"}

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=self.headers, timeout=120, **kwargs)

    def query(self, sql: str, *params) -> list[tuple]:
        """Rows of the group's database (`%s` marks a parameter)."""
        if self.database_url.startswith("sqlite:///"):
            with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        with psycopg.connect(self.database_url) as db:
            return db.execute(sql, params).fetchall()

    def instance_key(self, model_id: str, node: str) -> str:
        """The API key of the model's llama-server on `node` (only the group's database holds it)."""
        return self.query("SELECT api_key FROM models_app_servedinstance WHERE model_id = %s AND node = %s",
                          model_id, node)[0][0]

    def tokens_by_node(self, model_id: str) -> dict[str, int]:
        """Tokens each node's instance of the model generated for the portal (what answered where)."""
        return dict(self.query("SELECT node, tokens_generated FROM models_app_servedinstance WHERE model_id = %s",
                               model_id))

    def model(self, model_id: str) -> dict:
        return self.api("GET", f"/api/ai/models/{model_id}").json()["result"]

    def node(self, name: str) -> dict:
        return next(n for n in self.api("GET", "/api/ai/nodes").json()["result"] if n["name"] == name)

    def wait(self, probe, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if result := probe():
                    return result
            except (httpx.HTTPError, KeyError, StopIteration, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {timeout:.0f}s; logs:\n{self.logs()}")

    def logs(self, tail: int = 2000) -> str:
        """The end of every process's log, for a failure's message."""
        return "\n".join(f"--- {p}\n{p.read_text()[-tail:]}" for p in self.workdir.rglob("*.log"))


def _database(workdir: Path) -> str:
    """A fresh PostgreSQL database of the suite's server when `make test` started one, else a SQLite file."""
    server = os.environ.get("AIPORTAL_TEST_PG_URL")
    if not server:
        return f"sqlite:///{workdir}/db.sqlite3"
    name = f"group_{secrets.token_hex(4)}"
    with psycopg.connect(server.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


def _broker() -> dict[str, str]:
    """The suite's Redis (an empty database of it) for the channel layer and q2, else the in-process ones. Only
    under `make test`, whose Redis is its own: a bench run beside someone's REDIS_URL must not empty theirs."""
    url = os.environ.get("REDIS_URL")
    if not url or not os.environ.get("AIPORTAL_TEST_PG_URL"):
        return {"AIPORTAL_CHANNEL_LAYER": "memory"}
    url = url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    return {"REDIS_URL": url}
