"""Run every process of a one-machine portal in the foreground; Ctrl-C stops them all.

Children that die are restarted with a growing delay, so a crash shows in the log
instead of silently leaving the portal half up.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: float = field(default=0.0)

    def start(self, env: dict[str, str], cwd: str | None = None) -> None:
        env = {**env, "AIPORTAL_LOG_NAME": self.name}  # its log file, LOG_DIR/<name>.log (settings.LOGGING)
        self.proc = subprocess.Popen(self.argv, env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)
        self.started = time.monotonic()
        print(f"[portal] started {self.name} (pid {self.proc.pid})", flush=True)


def _die_with_parent() -> None:
    """Linux: a SIGKILLed supervisor must not leave its children running."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, children: list[Child], *, cwd: str, env: dict[str, str] | None = None):
        self.children = children
        self.cwd = cwd
        self.env = env or dict(os.environ)
        self.stopping = False

    def _on_signal(self, *_):
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for child in self.children:
            if child.proc is None:
                child.start(self.env, self.cwd)
        while not self.stopping:
            self.watch_once(time.monotonic())
            time.sleep(0.2)
        self.stop_all()
        return 0

    def watch_once(self, now: float) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                if now - child.started > 60:
                    child.restarts = 0
                delay = min(30.0, 2.0 ** child.restarts)
                print(f"[portal] {child.name} exited with code {code}; restarting in {delay:.0f}s", file=sys.stderr, flush=True)
                child.proc, child.next_start = None, now + delay
                child.restarts += 1
            elif child.proc is None and now >= child.next_start:
                child.start(self.env, self.cwd)

    def stop_all(self, grace: float = 15.0) -> None:
        print("[portal] stopping…", flush=True)
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in reversed(running):
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in running:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"[portal] {child.name} did not stop in {grace:.0f}s; killing it", file=sys.stderr, flush=True)
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        print("[portal] stopped", flush=True)
