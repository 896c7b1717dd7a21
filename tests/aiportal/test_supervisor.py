from __future__ import annotations

import subprocess
import sys
import time

from aiportal.supervisor import Child, Supervisor
from tests.conftest import wait_for


def test_it_restarts_a_child_that_dies_after_a_delay():
    child = Child("crashy", [sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor([child], cwd=".")
    child.start({}, ".")
    first = child.proc
    first.wait(10)
    now = time.monotonic()
    supervisor.watch_once(now)
    assert child.proc is None
    assert child.next_start == now + 1.0
    supervisor.watch_once(now + 1.0)
    assert child.proc is not None and child.proc.pid != first.pid
    child.proc.wait(10)
    supervisor.watch_once(now + 1.5)
    assert child.next_start == now + 1.5 + 2.0


def test_it_stops_every_child_with_sigterm():
    children = [Child(f"sleeper{i}", [sys.executable, "-c", "import time; time.sleep(60)"]) for i in range(2)]
    supervisor = Supervisor(children, cwd=".")
    for child in children:
        child.start({}, ".")
    supervisor.stop_all(grace=10)
    assert [child.proc.returncode for child in children] == [-15, -15]


def test_it_kills_a_child_that_ignores_sigterm():
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = Child("stubborn", [sys.executable, "-u", "-c", stubborn])
    supervisor = Supervisor([child], cwd=".")
    child.proc = subprocess.Popen(child.argv, stdout=-1, start_new_session=True)
    wait_for(lambda: child.proc.stdout.readline() == b"ready\n", what="the stubborn child")
    supervisor.stop_all(grace=0.5)
    assert child.proc.returncode == -9
