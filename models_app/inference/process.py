"""The llama-server process adapter: the only code that starts, probes and stops those processes.

Primitives in and out (paths, ports, pids); no Django models. Each child gets its own session
(Ctrl-C on the portal's terminal reaches the node daemon, which stops children in order) and a
parent-death signal, so a killed daemon never leaves a server holding its port.
"""
from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from models_app.models import server_url

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServerSpec:
    binary: Path
    model_path: Path
    port: int
    context_size: int
    threads: int
    gpu_layers: int
    alias: str
    log_path: Path
    host: str = "127.0.0.1"
    key_path: Path | None = None  # a file holding the one API key this server accepts
    embeddings: bool = False
    # llama-server's pooling for embeddings, when the model names none (a chat model): mean of its tokens
    pooling: str = ""
    metrics: bool = False

    @property
    def url(self) -> str:
        return server_url(self.host, self.port)


def server_argv(spec: ServerSpec) -> list[str]:
    argv = [
        str(spec.binary), "--host", spec.host, "--port", str(spec.port), "-m", str(spec.model_path),
        "-c", str(spec.context_size), "-t", str(spec.threads), "-ngl", str(spec.gpu_layers),
        "--alias", spec.alias, "--no-webui",
    ]
    if spec.embeddings:
        argv += ["--embeddings"] + (["--pooling", spec.pooling] if spec.pooling else [])
    if spec.metrics:
        argv += ["--metrics"]
    if spec.key_path is not None:
        # From a file, so the key is not in the process list for every local user to read.
        argv += ["--api-key-file", str(spec.key_path)]
    return argv


def key_file_write(path: Path, key: str) -> Path:
    """The API key, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return path


try:
    # Looked up once here, so the child between fork and exec only calls it (no dlopen, no locks).
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess:
    """One running llama-server child."""

    def __init__(self, popen: subprocess.Popen, spec: ServerSpec):
        self.popen = popen
        self.spec = spec

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


def server_spawn(spec: ServerSpec) -> ServerProcess:
    """Start llama-server with its output appended to the log file; raises OSError when it cannot start."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "ab") as log:
        log.write(f"\n==> {' '.join(server_argv(spec))}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            server_argv(spec), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            # The hook only calls prctl(2) through a pointer resolved at import time.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
    return ServerProcess(popen, spec)


def server_health(url: str, *, timeout: float = 0.3) -> int | None:
    """HTTP status of /health (503 while loading, 200 ready; no key needed), or None when nothing answers."""
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code
    except httpx.HTTPError:
        return None


REBUILD_COMMAND = "make llama-rebuild"


def exit_description(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def exit_advice(code: int) -> str:
    """What a person can do about a server that died this way ("" when the log says it best)."""
    if code == -signal.SIGILL:
        return (f"This llama-server was built for CPU instructions this machine cannot run; "
                f"`{REBUILD_COMMAND}` rebuilds it for this machine. ")
    if code == -signal.SIGKILL:
        return "Something killed it (often the kernel, out of memory: try a smaller context). "
    if code in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT):
        return "It crashed; if it crashes again with the same model, try a smaller context or another build. "
    return ""


def server_busy(url: str, key: str, *, timeout: float = 1.0) -> bool:
    """A slot is answering a request (`/slots`); False when that cannot be told."""
    try:
        slots = httpx.get(f"{url}/slots", headers={"Authorization": f"Bearer {key}"}, timeout=timeout).json()
        return any(slot.get("is_processing") for slot in slots)
    except (httpx.HTTPError, ValueError, AttributeError, TypeError):
        return False


def log_rotate(path: Path, *, max_bytes: int, keep: int) -> bool:
    """Past `max_bytes`, copy the log to `<log>.1` (older ones move up to `<log>.<keep>`) and empty it.

    Copy and truncate, as logrotate's copytruncate: the running llama-server keeps writing to its
    O_APPEND descriptor, now at the start of the emptied file."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except OSError:
        return False
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)
    return True


def log_tail(path: Path, *, lines: int = 12, max_bytes: int = 4096) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _socket(host: str) -> socket.socket:
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with _socket(host) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with _socket(host) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@functools.lru_cache(maxsize=8)
def _problem_cached(path: str, mtime: float) -> str:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        out = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        return f"exit code {done.returncode}: {out[-1] if out else 'no output'}"
    return ""


def binary_problem(path: Path) -> str:
    """Why the binary cannot run (`--version` fails), or "" when it runs."""
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        return str(exc)
    return _problem_cached(str(path), mtime)


_DEVICE = re.compile(r"^\s+(?P<id>[^:]+): (?P<name>.*) \((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")
MIB = 1024 * 1024


def binary_devices(path: Path) -> list[dict]:
    """The GPUs (and other devices) this llama-server can use, as `--list-devices` prints them."""
    try:
        done = subprocess.run([str(path), "--list-devices"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    devices = []
    for line in done.stdout.decode(errors="replace").splitlines():
        match = _DEVICE.match(line)
        if match:
            devices.append({"id": match["id"].strip(), "name": match["name"].strip(),
                            "memoryTotal": int(match["total"]) * MIB, "memoryFree": int(match["free"]) * MIB})
    return devices


def binary_version(path: Path) -> str:
    """`version: 0.6.0-dev (build 0, commit unknown)` → `0.6.0-dev (build 0, commit unknown)`."""
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in (done.stderr + done.stdout).decode(errors="replace").splitlines():
        if line.startswith("version:"):
            return line.removeprefix("version:").strip()[:200]
    return ""


def binary_backends(path: Path) -> list[str]:
    """The ggml backends built beside the binary (libggml-cpu.so → cpu), base and umbrella left out."""
    names = {lib.name.split(".so")[0].removeprefix("libggml-") for lib in path.parent.glob("libggml-*.so*")}
    return sorted(names - {"base"})


def pid_runs_llama_server(pid: int, alias: str) -> bool:
    """A process left by an earlier daemon: still alive and serving this alias."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    try:
        return argv[argv.index(b"--alias") + 1] == alias.encode()
    except (ValueError, IndexError):
        return False


def pid_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
